"""``python -m metaie_utils finetune``: few-shot fine-tune a (meta) model on one dataset, keep the model.

::

    python -m metaie_utils finetune --model outputs/04_train_meta_model/cpu --shots 5 --output my-model \\
        --dataset conll-bio:train=my/train.txt,test=my/test.txt [--params F] [--set fewshot_max_steps=40] [--eval]
    python -m metaie_utils extract --model my-model --input texts.txt      # labels come from the folder

It is the few-shot loop of stage 05 for one dataset, one seed and one initialization, with the model
kept: the K-shot support set is the seeded sample of :func:`metaie_utils.fewshot.prepare_support`
(``--shots 0``: the whole train split), the recipe is the ``fewshot_*`` keys (``params/defaults.yaml``
+ ``--params`` + ``--set``, as for ``evaluate``), training is :func:`metaie_utils.fewshot.train_fewshot`.

``DIR`` is a ``save_pretrained`` folder (``extract`` and :func:`metaie_utils.extraction.load_extractor`
load it) plus :data:`FINETUNE_FILE`, which records the dataset spec, the ``labels`` (the query labels of
the dataset's first stage, e.g. the entity type names), shots, seed, support size and the recipe, and
``support.json`` (the sampled support set, for ``--shots K > 0``). ``--eval`` scores the test split and
stores the scores in the record.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from metaie_utils.core.errors import UserError
from metaie_utils.core.io import atomic_write_text
from metaie_utils.models.checkpoint import (  # noqa: F401  (re-exported)
    FINETUNE_FILE,
    read_finetune_info,
    recorded_labels,
)

FORMAT = "metaie-finetune-v1"


def first_stage_labels(ds: Any) -> list[str]:
    """The label strings a dataset queries in its first stage (what ``extract`` asks by default).

    NER: the entity label words; RE: the entity label words (none without an entity stage); EE:
    ``Event trigger`` (typed: ``<event> trigger``); ABSA: ``<Polarity> aspect term``; ASTE: ``<Polarity> opinion term``; SRL: none
    (its queries need a predicate).
    """
    task = getattr(ds, "task", "")
    if task == "ner":
        return list(ds.labels.values())
    if task == "re":
        return list(ds.entity_labels.values()) if getattr(ds, "entity_stage", True) else []
    if task == "ee":
        from metaie_utils.tasks.ee import UNTYPED_TRIGGER, trigger_label

        return [trigger_label(v) for v in ds.event_labels.values()] if ds.typed else [UNTYPED_TRIGGER]
    if task in ("absa", "aste"):
        from metaie_utils.tasks.absa import POLARITIES, aspect_label, opinion_label

        return [(aspect_label if task == "absa" else opinion_label)(p) for p in POLARITIES]
    return []






def _dataset(spec: str) -> Any:
    from metaie_utils.tasks.spec import is_spec, load_spec

    if is_spec(spec):
        return load_spec(spec)
    from metaie_utils.stages.fewshot.loop import _real_get_dataset

    return _real_get_dataset(spec)


def _init_checkpoint(model: str) -> str:
    """``--model``: a 04 run dir (its model/), a checkpoint folder, an assets alias or a Hub name."""
    from metaie_utils.core.paths import resolve
    from metaie_utils.stages.fewshot.loop import meta_model_path

    if not model:
        raise UserError("--model is empty; give a MetaIE checkpoint (04 run dir or model folder), an assets alias "
                        "such as minilm-l6 (vanilla) or a Hub name.")
    if Path(model).expanduser().is_dir():
        return meta_model_path(str(Path(model).expanduser().resolve()))
    if resolve(model).is_dir():
        return meta_model_path(model)
    return model  # alias or Hub name: training.resolve_backbone resolves it (and names what is wrong)


def config_for(args) -> Any:
    """The EvalConfig of ``finetune``: defaults.yaml + ``--params`` + ``--set`` + the flags (``evaluate``'s rules)."""
    from metaie_utils.stages.fewshot.loop import config_from_args

    ns = argparse.Namespace(model=args.model, dataset=[args.dataset], shots=args.shots or None, seeds=1, seed=args.seed,
                            test_cap=args.test_cap, backbone=None, init=["vanilla"], run_name=None,
                            params=args.params, set=args.set)
    return config_from_args(ns)


def run_finetune(spec: str, model: str, output: str | Path, cfg: Any, shots: int, seed: int, evaluate: bool = False,
                 overwrite: bool = False, log=print) -> dict[str, Any]:
    """Fine-tune ``model`` on ``shots`` shots (0 = the whole train split) of ``spec``; write ``output``.

    Returns the record written to ``output/metaie_finetune.json``. A folder that already holds the same
    fine-tune (same dataset, shots, seed, init and recipe) is reused; a different one is an error unless
    ``overwrite``.
    """
    from metaie_utils.models.checkpoint import TRAINING_FILE, read_training_info
    from metaie_utils.stages.fewshot.loop import (
        _flatten_instances,
        _real_load_extractor,
        prepare_support,
        recipe_dict,
        train_fewshot,
    )
    from metaie_utils.stages.fewshot.support import (
        capped_test,
        mention_counter,
        support_split,
        support_type_counts,
    )
    from metaie_utils.tasks import score
    from metaie_utils.tasks.spec import spec_slug

    if shots < 0:
        raise UserError(f"--shots {shots}: use K >= 1 for a K-shot sample or 0 for the whole train split.")
    out = Path(output).expanduser()
    init = _init_checkpoint(model)
    want = {"dataset": spec, "shots": shots, "seed": seed, "init": init, "recipe": recipe_dict(cfg)}
    old = read_finetune_info(out)
    occupied = (out.is_dir() and any(out.iterdir())) or out.is_file()
    if occupied:
        same = old and all(old.get(k) == v for k, v in want.items()) and (out / TRAINING_FILE).is_file()
        if overwrite:
            shutil.rmtree(out) if out.is_dir() else out.unlink()
            shutil.rmtree(out.with_name(out.name + "-checkpoints"), ignore_errors=True)
        elif not same:
            what = (f"a fine-tune of {old.get('dataset')!r} (shots={old.get('shots')}, seed={old.get('seed')})" if old
                    else "other files")
            raise UserError(f"--output {out} already holds {what}; choose a new folder or pass --overwrite.")
    ds = _dataset(spec)
    split = support_split(ds)
    if shots > 0:
        with tempfile.TemporaryDirectory(prefix="metaie-finetune-") as tmp:
            c = cfg.model_copy(update={"shots": shots})
            support, instances, record = prepare_support(ds, spec_slug(spec), c, seed, Path(tmp))
        record = {**record, "dataset": spec}
    else:
        support = ds.load(split)
        instances = _flatten_instances(ds, support)
        record = None
    if not instances:
        raise UserError(f"{spec}: the {split} split gave no training instances.")
    log(f"fine-tuning {init} on {len(support)} sentences ({len(instances)} instances) of {spec} -> {out}")
    model_dir = train_fewshot(instances, init, out, cfg, seed)
    info = {
        "format": FORMAT,
        **want,
        "task": getattr(ds, "task", ""),
        "labels": first_stage_labels(ds),
        "split": split,
        "sampler": cfg.fewshot_sampler if shots else "all",
        "n_support": len(support),
        "n_instances": len(instances),
        "type_counts": support_type_counts(support, ds.example_types, mention_counter(ds)),
        "support_indices": record["indices"] if record else None,
        "global_step": read_training_info(model_dir).get("global_step"),
    }
    if record is not None:
        (Path(model_dir) / "support.json").write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    if evaluate:
        if "test" not in ds.splits:
            raise UserError(f"--eval: {spec} has no test split (give test=PATH in the spec).")
        test = capped_test(ds.load("test"), cfg.test_cap)
        ie = _real_load_extractor(Path(model_dir), cfg)
        preds = ds.predict(ie, test, cfg.eval_batch_size)
        info["eval"] = {"n_test": len(test), "test_cap": cfg.test_cap,
                        "scores": score(ds, [ds.gold(ex) for ex in test], preds)}
    atomic_write_text(Path(model_dir) / FINETUNE_FILE,
                      json.dumps(info, indent=2, ensure_ascii=False, default=str) + "\n")
    return info


def _cmd_finetune(args) -> int:
    cfg = config_for(args)
    seed = cfg.seed
    info = run_finetune(args.dataset, args.model, args.output, cfg, args.shots, seed, evaluate=args.eval,
                        overwrite=args.overwrite)
    brief = {k: info.get(k) for k in ("dataset", "task", "labels", "shots", "seed", "n_support", "n_instances", "global_step")}
    brief["model"] = str(Path(args.output).expanduser())
    if "eval" in info:
        brief["eval"] = {sub: {k: round(m[k], 4) for k in ("precision", "recall", "f1")}
                         for sub, m in info["eval"]["scores"].items()}
    print(json.dumps(brief, indent=2, ensure_ascii=False))
    return 0


def register_cli(sub) -> None:
    p = sub.add_parser(
        "finetune", help="few-shot fine-tune a model on one dataset (a name or your own files as a spec) and keep it",
        description="K-shot fine-tune --model on a seeded support set of the dataset's train split (--shots 0: the "
                    "whole split) with the few-shot recipe (fewshot_* keys of params/defaults.yaml, --params, --set). "
                    "Writes a folder that `extract --model DIR` loads; it records the labels, so --labels is optional there.",
    )
    p.add_argument("--model", required=True, help="initialization: 04 run dir, checkpoint folder, assets alias (minilm-l6) or Hub name")
    p.add_argument("--dataset", required=True,
                   help="dataset name or spec, e.g. conll-bio:train=my/train.txt,test=my/test.txt (metaie_utils/tasks/spec.py)")
    p.add_argument("--shots", type=int, default=5, help="K per type (default 5); 0 = the whole train split")
    p.add_argument("--output", required=True, help="model folder to write")
    p.add_argument("--seed", type=int, default=None, help="support-set and training seed (default: params `seed`)")
    p.add_argument("--eval", action="store_true", help="score the test split after training (capped by --test-cap)")
    p.add_argument("--test-cap", type=int, default=None, help="with --eval: test sentences, 0 = all (default: params test_cap)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output folder")
    p.add_argument("--params", action="append", help="params files layered over params/defaults.yaml")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one parameter (repeatable), e.g. fewshot_max_steps=40")
    p.set_defaults(func=_cmd_finetune)
