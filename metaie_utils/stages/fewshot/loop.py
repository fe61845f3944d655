"""Stage 05: few-shot evaluation of any initialization on any IE dataset (the paper's Section 4 protocol).

For every dataset x seed, one K-shot support set is sampled from the train split (dev for datasets
without one) and shared by every initialization, so the comparison is paired. Each initialization
(``vanilla`` backbone, the ``metaie`` checkpoint of stage 04, the ``ner-distill`` and ``multiie``
baselines of :mod:`metaie_utils.baselines`) is fine-tuned with the SAME recipe (``fewshot_*`` keys) on
the support set's instances, then scored on the (optionally capped) test split; ``llm-icl`` prompts the
teacher with the K-shot support sentences as in-context examples instead of fine-tuning.

Products in the run directory::

    results.csv                 one row per dataset x initialization x seed x sub-task (fractions 0..1)
    counts.jsonl                per-sentence (tp, n_pred, n_gold) of each results row (paired bootstrap: `summary`)
    summary.csv                 mean and std over seeds, as percentages
    support/<dataset>/seed<k>.json   the sampled support sets (indices, type counts, instances)
    work/                       per-(dataset, init, seed) fine-tuning folders (deleted unless keep_models)

The loop is resumable: a (dataset, initialization, seed) whose rows are already in ``results.csv`` is
skipped, and results are appended as soon as they exist, so a crash loses at most one fine-tune.

>>> sample_support([{"PER"}, {"LOC"}, {"PER", "LOC"}, set()], lambda ex: ex, k=1, seed=0)  # doctest: +SKIP
[2]
"""

from __future__ import annotations

import csv
import json
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Mapping, Sequence

from pydantic import field_validator

from metaie_utils.core.io import atomic_write_text
from metaie_utils.core.params import StageConfig, recipe_differences, recorded_recipe  # noqa: F401  (re-exported)
from metaie_utils.core.paths import resolve
from metaie_utils.core.stats import append_counts, counts_records
from metaie_utils.stages.fewshot.support import (
    SAMPLERS,
    FewShotError,
    _user_error,
    add_negatives,
    capped_test,
    jsonable,
    mention_counter,
    sample_support,
    short_types,
    support_split,
    support_type_counts,
)
from metaie_utils.tasks.registry import FIXED_SUPPORT
from metaie_utils.tasks.spec import spec_slug

INITIALIZATIONS: tuple[str, ...] = ("vanilla", "metaie", "ner-distill", "multiie", "llm-icl")




RESULT_FIELDS = [
    "dataset", "task", "initialization", "seed", "subtask", "precision", "recall", "f1",
    "tp", "n_gold", "n_pred", "n_test", "test_cap", "shots", "n_support", "n_instances", "recipe", "note",
    "support_n_pred", "collapsed", "pretrain_sources", "pretrain_instances", "max_length", "train_truncated", "test_windowed",
    "train_precision", "train_steps", "train_samples", "train_s", "train_attempts",
]






class EvalConfig(StageConfig):
    """Parameters of ``notebooks/05_fewshot_eval`` (one flat namespace with the other stages)."""

    stage: ClassVar[str] = "05_fewshot_eval"
    metrics_keys: ClassVar[tuple[str, ...]] = ("rows", "datasets", "initializations", "scores")
    upstream: ClassVar[dict[str, str]] = {"meta_model": "04_train_meta_model"}
    # a finished run asked again with more of these (a superset) is extended, not refused: results.csv keeps
    # every finished fine-tune and the loop runs only the missing ones (e.g. llm-icl added to the CPU grid)
    extendable: ClassVar[tuple[str, ...]] = ("datasets", "initializations")

    meta_model: str = ""  # 04 run dir (its model/), a checkpoint path or Hub name; "" = skip metaie
    datasets: list[str] = ["conll2003", "conll04", "casie", "qasrl", "absa-14res", "aste-14res"]  # names of tasks.DATASETS (or aliases); conll2003-authors = the authors' fixed 5-shot set
    initializations: list[str] = ["vanilla", "metaie"]  # subset of INITIALIZATIONS
    shots: int = 5  # K: mentions (NER), relations/events/... per type in the support set
    fewshot_sampler: str = "greedy"  # "greedy" (until every type has K mentions) | "per-type" (K sentences per type, the authors' 20 for CoNLL03)
    fewshot_seeds: int = 1  # support sets / fine-tunes per dataset: seeds seed, seed+1, ...
    test_cap: int = 50  # 0 = the full test split; else a fixed random subset of this many sentences
    backbone: str = "minilm-l6"  # vanilla initialization and baselines' backbone (alias, path or Hub name)
    num_layers: int = 0  # 0 = every encoder layer; k = keep the first k (same meaning as stage 04)
    architecture: str = "seqlabel"  # "seqlabel" | "generative" (same meaning as stage 04)
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N" | "mps"
    fewshot_lr: float = 3e-4  # learning rate of the few-shot fine-tune (paper, roberta-large: 1e-5)
    fewshot_epochs: float = 100  # epochs over the support instances (paper: 100)
    fewshot_batch_size: int = 8  # per-device batch size
    fewshot_grad_accum: int = 1  # gradient accumulation steps (effective batch = batch_size * grad_accum)
    fewshot_max_length: int = 0  # sub-tokens per query in few-shot training AND extraction; 0 = the backbone's window (512)
    fewshot_max_steps: int = 300  # 0 = epochs decide; n > 0 caps optimizer steps (the same budget for every init)
    fewshot_min_epochs: float = 3  # with fewshot_max_steps > 0: the cap rises to at least this many epochs over the fine-tune's instances (0 = the cap alone)
    fewshot_neg_share: float = 0.5  # 0.5: chosen by the recipe comparison (README); 0 = every all-O instance is trained on; s in (0, 1): all-O instances are sampled (seeded) down to at most this share
    fewshot_collapse_retries: int = 1  # a fine-tune that predicts no span on its own support sentences is trained again from its initialization with twice the step budget, up to this many times (0 = never); the same rule for every initialization
    fewshot_class_weight: str = "none"  # "none" | "balanced": B/I/O cross-entropy weights n / (3 n_tag) over the fine-tune's tags
    fewshot_precision: str = "auto"  # few-shot training: "auto" (bf16/fp16 on a GPU; on a CPU bf16 where it has AMX/AVX512-BF16 units, else fp32) | "fp32" (exact) | "bf16" (autocast; on a CPU only with AMX/AVX512-BF16 units) | "fp16" (CUDA)
    eval_batch_size: int = 64  # (sentence, label) queries per forward pass at test time
    gold_anchor_rows: bool = True  # two-stage tasks also score stage 2 on the gold anchors (<subtask>@gold rows)
    fewshot_workers: int = 0  # fine-tunes run at once, in worker processes: 0 = one per CPU core (one thread each) on a CPU, 1 on a GPU
    keep_models: bool = False  # True keeps every fine-tuned checkpoint under work/ (large)
    baseline_instances: int = 0  # 0 = match MetaIE's instance count; n = this many pre-training instances
    ner_responses: str = ""  # NER responses.jsonl (or its 02 run dir); "" = distill now on MetaIE's sentences (and more, to match its instance count)
    ner_prompt: str = "ner-icl-v1"  # ner-distill's prompt: ner-icl-v1 (in-context NER demonstrations, the paper's setup) | ner-v1 (zero-shot)
    multiie_datasets: list[str] = ["ncbi-disease", "semeval2010-task8", "casie"]  # human IE data of multiie
    icl_test_cap: int = 20  # test sentences prompted per dataset for llm-icl (0 = the test_cap subset)
    teacher: str = "local:qwen2.5-0.5b"  # llm-icl / ner-distill teacher (same meaning as stage 02)
    base_url: str = ""  # remote teachers only: "" = the OpenAI API (same meaning as stage 02)
    api_key_env: str = "OPENAI_API_KEY"  # environment variable holding the key (remote teachers)

    @field_validator("initializations")
    @classmethod
    def _known_inits(cls, v: list[str]) -> list[str]:
        bad = [i for i in v if i not in INITIALIZATIONS]
        if bad:
            raise ValueError(f"unknown initializations {bad}; choose from {list(INITIALIZATIONS)}")
        return v

    @field_validator("datasets")
    @classmethod
    def _specs_parse(cls, v: list[str]) -> list[str]:
        from metaie_utils.tasks.spec import check_dataset_arg, is_spec

        return [check_dataset_arg(d) if is_spec(d) else d for d in v]

    @field_validator("fewshot_sampler")
    @classmethod
    def _known_sampler(cls, v: str) -> str:
        if v not in SAMPLERS:
            raise ValueError(f"unknown sampler {v!r}; choose from {list(SAMPLERS)}")
        return v

    @field_validator("fewshot_precision")
    @classmethod
    def _known_precision(cls, v: str) -> str:
        if v not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(f"fewshot_precision {v!r}: use auto, fp32, bf16 or fp16")
        return v

    @field_validator("shots", "fewshot_seeds")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"must be >= 1, got {v}")
        return v

    @property
    def seeds(self) -> list[int]:
        """``[seed, seed + 1, ...]``, one per support set."""
        return [self.seed + i for i in range(self.fewshot_seeds)]


def fewshot_precision(cfg: EvalConfig) -> str:
    """The precision few-shot training runs in: ``cfg.fewshot_precision``, with ``"auto"`` resolved on this
    machine (:func:`metaie_utils.core.device.pick_fewshot_precision`: bf16 on a CPU with bf16 units, else fp32).

    >>> fewshot_precision(EvalConfig(fewshot_precision="fp32"))
    'fp32'
    """
    if cfg.fewshot_precision != "auto":
        return cfg.fewshot_precision
    from metaie_utils.core.device import pick_device, pick_fewshot_precision

    return pick_fewshot_precision(pick_device(cfg.device))


def recipe_dict(cfg: EvalConfig) -> dict[str, Any]:
    """The few-shot recipe of ``cfg`` as a plain dict (recorded in results.csv); ``precision`` is the one the
    fine-tunes run in (``"auto"`` resolved), so a resumed run cannot mix fp32 and bf16 fine-tunes.

    >>> recipe_dict(EvalConfig())["lr"]
    0.0003
    """
    return {
        "lr": cfg.fewshot_lr,
        "epochs": cfg.fewshot_epochs,
        "batch_size": cfg.fewshot_batch_size,
        "grad_accum": cfg.fewshot_grad_accum,
        "max_steps": cfg.fewshot_max_steps,
        "min_epochs": cfg.fewshot_min_epochs,
        "neg_share": cfg.fewshot_neg_share,
        "class_weight": cfg.fewshot_class_weight,
        "collapse_retries": cfg.fewshot_collapse_retries,
        "precision": fewshot_precision(cfg),
        "num_layers": cfg.num_layers,
        "architecture": cfg.architecture,
    }


def recipe_string(recipe: Mapping[str, Any]) -> str:
    """``{"lr": 1e-4, "epochs": 20}`` -> ``"lr=0.0001;epochs=20"``."""
    return ";".join(f"{k}={v}" for k, v in recipe.items())


@dataclass
class Backend:
    """The functions the loop calls, injectable for tests. Defaults: the package's real modules.

    - ``get_dataset(name) -> dataset`` (:func:`metaie_utils.tasks.get_dataset`)
    - ``score(dataset, gold_list, pred_list) -> {subtask: prf}`` (:func:`metaie_utils.tasks.score`)
    - ``train(instances, init, output_dir, cfg, seed) -> Path`` (fine-tune with the few-shot recipe)
    - ``load_extractor(path, cfg) -> extractor`` (:func:`metaie_utils.extraction.load_extractor`)
    - ``icl_extractor(cfg, support_examples, dataset) -> extractor`` (``llm-icl``)
    - ``build_init(name, cfg) -> str | None`` (checkpoint of an initialization; None = skip it)
    """

    get_dataset: Callable[[str], Any] | None = None
    score: Callable[[Any, list, list], dict] | None = None
    train: Callable[[list, str, Path, EvalConfig, int], Path] | None = None
    load_extractor: Callable[[Path, EvalConfig], Any] | None = None
    icl_extractor: Callable[[EvalConfig, list, Any], Any] | None = None
    build_init: Callable[[str, EvalConfig], "str | None"] | None = None
    notes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.get_dataset is None:
            self.get_dataset = _real_get_dataset
        if self.score is None:
            from metaie_utils import tasks

            self.score = tasks.score
        if self.train is None:
            self.train = train_fewshot
        if self.load_extractor is None:
            self.load_extractor = _real_load_extractor
        if self.icl_extractor is None:
            from metaie_utils.stages.fewshot.baselines import icl_extractor

            self.icl_extractor = icl_extractor
        if self.build_init is None:
            self.build_init = resolve_initialization


def _real_load_extractor(path: Path, cfg: EvalConfig) -> Any:
    from metaie_utils.models import load_extractor

    return load_extractor(path, device=cfg.device, batch_size=cfg.eval_batch_size, max_length=cfg.fewshot_max_length)


def known_datasets() -> list[str]:
    """Every dataset name :func:`load_eval_dataset` accepts."""
    from metaie_utils import tasks

    return sorted(set(tasks.DATASETS) | set(getattr(tasks, "ALIASES", {})) | set(FIXED_SUPPORT))


def _real_get_dataset(name: str) -> Any:
    from metaie_utils import tasks
    from metaie_utils.tasks.spec import is_spec

    base = FIXED_SUPPORT.get(name, name)
    if base not in tasks.DATASETS and base not in getattr(tasks, "ALIASES", {}) and not is_spec(base):
        raise _user_error(f"Unknown dataset {name!r}. Known datasets: {', '.join(known_datasets())}.")
    return tasks.get_dataset(base)


def meta_model_path(meta_model: str) -> str | None:
    """The MetaIE checkpoint named by ``meta_model``: a 04 run dir (-> its ``model/``), a checkpoint
    folder, or a Hub name; ``""`` -> None (the metaie initialization is skipped)."""
    if not meta_model:
        return None
    p = resolve(meta_model)
    if p.is_dir():
        return str(p / "model") if (p / "model").is_dir() else str(p)
    if "/" in meta_model and not meta_model.startswith((".", "/", "~")):
        return meta_model  # a Hub name (e.g. KomeijiForce/roberta-large-metaie)
    raise _user_error(
        f"meta_model={meta_model!r} is neither a directory ({p} does not exist) nor a Hub name. Point it at a "
        f"04_train_meta_model run directory (outputs/04_train_meta_model/<run_name>), its model/ folder, or set "
        f"meta_model='' to skip the metaie initialization."
    )


def resolve_initialization(name: str, cfg: EvalConfig) -> str | None:
    """Checkpoint (path or Hub name) to fine-tune for initialization ``name``; None = skip it.

    ``vanilla`` -> the backbone; ``metaie`` -> :func:`meta_model_path`; ``ner-distill`` / ``multiie``
    -> built (or reused) by :mod:`metaie_utils.baselines`; ``llm-icl`` -> "" (no checkpoint).
    """
    if name == "vanilla":
        return cfg.backbone  # an alias, path or Hub name: training.resolve_backbone resolves it
    if name == "metaie":
        return meta_model_path(cfg.meta_model)
    if name == "ner-distill":
        from metaie_utils.stages.fewshot.baselines import ner_distilled_checkpoint

        return str(ner_distilled_checkpoint(cfg))
    if name == "multiie":
        from metaie_utils.stages.fewshot.baselines import multiie_checkpoint

        return str(multiie_checkpoint(cfg))
    if name == "llm-icl":
        return ""
    raise FewShotError(f"unknown initialization {name!r}; choose from {list(INITIALIZATIONS)}")


def fewshot_recipe(cfg: EvalConfig, seed: int | None = None):
    """The :class:`metaie_utils.training.TrainRecipe` of the few-shot fine-tune (same for every init)."""
    from metaie_utils.models.trainer import TrainRecipe

    seed = cfg.seed if seed is None else seed
    return TrainRecipe(
        lr=cfg.fewshot_lr,
        epochs=cfg.fewshot_epochs,
        batch_size=cfg.fewshot_batch_size,
        grad_accum=cfg.fewshot_grad_accum,
        max_steps=cfg.fewshot_max_steps if cfg.fewshot_max_steps > 0 else -1,
        min_epochs=cfg.fewshot_min_epochs,
        num_layers=cfg.num_layers,
        max_length=cfg.fewshot_max_length,  # 0: the backbone's window, the same as extraction's
        device=cfg.device,
        seed=seed,
        log_steps=10,
        save_steps=100_000,  # a few-shot fine-tune is minutes: no intermediate checkpoints
        class_weight=cfg.fewshot_class_weight,
        precision=fewshot_precision(cfg),
    )


def subsample_negatives(instances: Sequence[dict], share: float, seed: int) -> list[dict]:
    """``instances`` with the all-O ones (no B tag) sampled, seeded, down to at most ``share`` of the result;
    positives are all kept and the order is kept. ``share <= 0`` (or no positive instance) keeps everything.

    >>> pos, neg = {"ner": ["O", "B"]}, {"ner": ["O", "O"]}
    >>> len(subsample_negatives([pos, neg, neg, neg, neg], 0.5, 0))
    2
    """
    if share <= 0:
        return list(instances)
    if share >= 1:
        raise FewShotError(f"fewshot_neg_share = {share!r}: use 0 (keep every all-O instance) or a share in (0, 1).")
    pos = [i for i, inst in enumerate(instances) if "B" in inst.get("ner", ())]
    posset = set(pos)
    neg = [i for i in range(len(instances)) if i not in posset]
    keep = round(share / (1 - share) * len(pos))
    if not pos or len(neg) <= keep:
        return list(instances)
    kept = set(pos) | set(random.Random(seed).sample(neg, keep))
    return [inst for i, inst in enumerate(instances) if i in kept]


def train_fewshot(instances: list[dict], init: str, output_dir: Path, cfg: EvalConfig, seed: int) -> Path:
    """Fine-tune ``init`` on ``instances`` with the few-shot recipe of ``cfg`` -> checkpoint folder."""
    from metaie_utils.models import finetune

    kw = {"progress": False} if cfg.architecture == "seqlabel" else {}
    recipe = fewshot_recipe(cfg, seed)
    instances = subsample_negatives(instances, cfg.fewshot_neg_share, seed)
    return Path(finetune(instances, init, Path(output_dir), recipe, architecture=cfg.architecture, resume=True, **kw))


def read_results(path: Path) -> list[dict[str, Any]]:
    """Rows of a results.csv (empty when the file does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def append_results(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Append rows to results.csv (header written once), flushed to disk right away.

    A file started by an older version whose header lacks some of :data:`RESULT_FIELDS` (``train_s`` and the
    like) is first rewritten, atomically, with those columns added at the end (empty in its old rows), so a
    resumed old run neither misaligns its columns nor drops what the new rows record. Columns of the old
    header that are not in :data:`RESULT_FIELDS` are kept.
    """
    import io

    path = Path(path)
    new = not path.is_file() or path.stat().st_size == 0
    fields = list(RESULT_FIELDS)
    if not new:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            old_fields = list(reader.fieldnames or [])
            missing = [k for k in RESULT_FIELDS if k not in old_fields]
            old_rows = list(reader) if missing else []
        fields = old_fields + missing
        if missing:
            buf = io.StringIO(newline="")
            w = csv.DictWriter(buf, fieldnames=fields, restval="", extrasaction="ignore")
            w.writeheader()
            w.writerows(old_rows)
            atomic_write_text(path, buf.getvalue())
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new:
            w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in fields})
        f.flush()


def collapse_flag(n_pred_test: Any, n_pred_support: Any) -> str:
    """Why a fine-tune counts as collapsed: ``"support"`` (it predicts nothing on its own support sentences),
    ``"test"`` (nothing on the test sentences), ``"support+test"``, or ``""``. Unknown counts never flag.

    >>> collapse_flag(0, 12), collapse_flag(3, 0), collapse_flag(0, 0), collapse_flag(5, 7), collapse_flag("", "")
    ('test', 'support', 'support+test', '', '')
    """
    def zero(v: Any) -> bool:
        try:
            return int(v) == 0
        except (TypeError, ValueError):
            return False

    return "+".join(w for w, v in (("support", n_pred_support), ("test", n_pred_test)) if zero(v))


def collapse_report(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per collapsed (dataset, sub-task, initialization, seed), with the recipe that produced it."""
    out = []
    for r in rows:
        if r.get("collapsed"):
            out.append(f"collapsed ({r['collapsed']} predictions: none): {r['dataset']} / {r['subtask']} / "
                       f"{r['initialization']} seed {r['seed']} (test n_pred {r.get('n_pred')}, support n_pred "
                       f"{r.get('support_n_pred')}); recipe {r.get('recipe')}")
    return out


def summarize(rows: Sequence[Mapping[str, Any]]):
    """results rows -> summary DataFrame: mean and std over seeds per dataset x sub-task x init, in %.

    Columns: dataset, subtask, initialization, n_seeds, f1, f1_std, precision, precision_std, recall,
    recall_std, n_test, test_cap, shots.
    """
    import pandas as pd

    from metaie_utils.core.metrics import mean_std

    cols = ["dataset", "subtask", "initialization", "n_seeds", "f1", "f1_std", "precision", "precision_std",
            "recall", "recall_std", "n_pred", "collapsed", "n_test", "test_cap", "shots"]
    df = pd.DataFrame(list(rows))
    if df.empty:
        return pd.DataFrame(columns=cols)
    for c in ("precision", "recall", "f1"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    df = df.dropna(subset=["f1"])
    out = []
    for (ds, sub, init), g in df.groupby(["dataset", "subtask", "initialization"], sort=False):
        row: dict[str, Any] = {"dataset": ds, "subtask": sub, "initialization": init, "n_seeds": len(g)}
        for c in ("f1", "precision", "recall"):
            m, s = mean_std(g[c].tolist())
            row[c], row[f"{c}_std"] = round(100 * m, 2), round(100 * s, 2)
        row["n_pred"] = round(float(pd.to_numeric(g["n_pred"], errors="coerce").mean()), 1) if "n_pred" in g else None
        row["collapsed"] = (f"{int((g['collapsed'].fillna('').astype(str) != '').sum())}/{len(g)}"
                            if "collapsed" in g else "")
        row["n_test"] = g["n_test"].iloc[0]
        row["test_cap"] = g["test_cap"].iloc[0]
        row["shots"] = g["shots"].iloc[0]
        out.append(row)
    return pd.DataFrame(out, columns=cols)


def summary_table(summary) -> Any:
    """Wide F1 table: rows dataset/sub-task, columns initialization, cells "mean ± std"."""
    import pandas as pd

    if summary.empty:
        return pd.DataFrame()
    col = summary["collapsed"] if "collapsed" in summary else [""] * len(summary)
    mark = [" (collapsed " + c + ")" if c and not str(c).startswith("0/") else "" for c in col]
    cell = summary.assign(cell=[f"{m:.2f} ± {s:.2f}{k}" for m, s, k in zip(summary["f1"], summary["f1_std"], mark)])
    t = cell.pivot_table(index=["dataset", "subtask"], columns="initialization", values="cell", aggfunc="first", sort=False)
    order = [i for i in INITIALIZATIONS if i in t.columns] + [c for c in t.columns if c not in INITIALIZATIONS]
    return t[order]


def stage_metrics(summary, cfg: "EvalConfig") -> dict[str, Any]:
    """Stage 05's metrics.json: ``rows`` (summary rows), ``datasets``, ``initializations`` and ``scores``
    (:func:`summary_metrics`)."""
    collapsed = int(sum(1 for c in summary.get("collapsed", []) if c and not str(c).startswith("0/")))
    return {"rows": int(len(summary)), "datasets": list(cfg.datasets), "initializations": list(cfg.initializations),
            "collapsed_cells": collapsed, "scores": summary_metrics(summary)}


def summary_metrics(summary) -> dict[str, Any]:
    """The summary as nested dict for metrics.json: ``{dataset: {subtask: {init: {"f1", "f1_std", ...}}}}``."""
    out: dict[str, Any] = {}
    for r in summary.to_dict("records"):
        out.setdefault(r["dataset"], {}).setdefault(r["subtask"], {})[r["initialization"]] = {
            k: (float(r[k]) if k != "n_seeds" else int(r[k]))
            for k in ("f1", "f1_std", "precision", "precision_std", "recall", "recall_std", "n_seeds")
        }
    return out


def _flatten_instances(dataset: Any, examples: Iterable[Any]) -> list[dict]:
    return [inst for ex in examples for inst in dataset.instances(ex)]


def prepare_support(dataset: Any, name: str, cfg: EvalConfig, seed: int, run_dir: Path) -> tuple[list, list[dict], dict]:
    """Sample (or load) the support set of ``name`` for ``seed`` and save it under ``support/``.

    Returns (support examples, their training instances, the saved record). A support file already in
    ``run_dir`` (a resumed run) is reused as is, so every initialization sees the same set.
    """
    path = Path(run_dir) / "support" / spec_slug(name) / f"seed{seed}.json"
    split = support_split(dataset)
    pool = dataset.load(split)
    counts_of = mention_counter(dataset)
    if name in FIXED_SUPPORT and not path.is_file():
        idx, record = list(range(len(pool))), None  # the authors' fixed support set, the same for every seed
    elif path.is_file():
        record = json.loads(path.read_text())
        if record.get("shots") != cfg.shots or record.get("n_pool") != len(pool):
            raise FewShotError(f"{path} holds a support set for shots={record.get('shots')} over {record.get('n_pool')} "
                               f"examples, this run asks for shots={cfg.shots} over {len(pool)}: use a new run_name.")
        idx = record["indices"]
    else:
        idx = sample_support(pool, dataset.example_types, cfg.shots, seed, counts_of=counts_of,
                             types=dataset.types(pool), method=cfg.fewshot_sampler, where=f"the {split} split of {name}")
        if getattr(dataset, "support_negatives", False):  # e.g. event-free sentences, in their natural share
            idx = add_negatives(pool, idx, dataset.example_types, seed)
        record = None
    support = [pool[i] for i in idx]
    instances = _flatten_instances(dataset, support)
    if record is None:
        record = {"dataset": name, "split": split, "seed": seed, "shots": cfg.shots, "n_pool": len(pool),
                  "fixed": name in FIXED_SUPPORT,
                  "indices": idx, "n_sentences": len(idx), "n_instances": len(instances),
                  "n_type_free": sum(1 for ex in support if not set(dataset.example_types(ex))),
                  "sampler": "fixed" if name in FIXED_SUPPORT else cfg.fewshot_sampler,
                  "type_counts": support_type_counts(support, dataset.example_types, counts_of),
                  "short_types": short_types(pool, dataset.example_types, cfg.shots, counts_of),
                  "examples": [jsonable(ex) for ex in support], "instances": instances}
        path.parent.mkdir(parents=True, exist_ok=True)  # written once, before any job; a unique tmp name all
        atomic_write_text(path, json.dumps(record, ensure_ascii=False) + "\n")  # the same (workers never race)
    return support, instances, record


def _score_rows(scores: Mapping[str, Mapping[str, Any]], base: Mapping[str, Any],
                support_scores: Mapping[str, Mapping[str, Any]] | None = None) -> list[dict]:
    rows = []
    for sub, m in scores.items():
        r = dict(base)
        sup = (support_scores or {}).get(sub, {}).get("n_pred", "")
        r.update(subtask=sub, precision=m["precision"], recall=m["recall"], f1=m["f1"],
                 tp=m.get("tp", ""), n_gold=m.get("n_gold", ""), n_pred=m.get("n_pred", ""),
                 support_n_pred=sup, collapsed=collapse_flag(m.get("n_pred", ""), sup))
        rows.append(r)
    return rows


def dataset_key(name: str) -> str:
    """The registered dataset a name or spec reads (aliases resolved, options dropped).

    >>> dataset_key("casie:events=typed"), dataset_key("ncbi_disease"), dataset_key("conll-bio:train=a.txt")
    ('casie', 'ncbi-disease', 'conll-bio:train=a.txt')
    """
    from metaie_utils.tasks.registry import ALIASES, GENERIC_READERS

    kind = name.split(":", 1)[0].strip()
    kind = ALIASES.get(kind, kind)
    return name if kind in GENERIC_READERS else kind  # a user's files: the whole spec names them


def multiie_sources(dataset: str, sources: Sequence[str]) -> tuple[list[str], list[str]]:
    """(kept, excluded) MultiIE sources for evaluating ``dataset``: a source that is the evaluated dataset
    is dropped, so MultiIE never pre-trains on the set it is scored on.

    >>> multiie_sources("casie", ["ncbi-disease", "semeval2010-task8", "casie"])
    (['ncbi-disease', 'semeval2010-task8'], ['casie'])
    >>> multiie_sources("conll2003", ["ncbi_disease", "casie"])
    (['ncbi_disease', 'casie'], [])
    """
    target = dataset_key(dataset)
    kept = [s for s in sources if dataset_key(s) != target]
    return kept, [s for s in sources if dataset_key(s) == target]


def _pretrain_counts(ckpt: Any) -> dict[str, Any]:
    """``pretrain_instances`` (and, for ner-distill, the sentences asked against MetaIE's) of a baseline
    checkpoint, from the ``baseline.json`` beside it; nothing for other checkpoints."""
    try:
        info = json.loads((Path(str(ckpt)).parent / "baseline.json").read_text())
    except (OSError, ValueError, TypeError):
        return {}
    st = info.get("settings") or {}
    out: dict[str, Any] = {"pretrain_instances": info.get("n_instances", st.get("n", ""))}
    if "n_sentences" in st:
        out["note"] = (f"ner-distill: {out['pretrain_instances']} instances ({st.get('n_requested')} asked) from "
                       f"{st['n_sentences']} sentences; MetaIE's {st.get('n_metaie_sentences')} sentences")
    return out


def _window_counts(model_dir: Any) -> dict[str, Any]:
    """``max_length``, the number of truncated training instances, the precision, optimizer steps, samples
    actually seen and seconds of a fine-tune, from the ``metaie_training.json`` the trainer writes (nothing
    when there is none, e.g. a test backend)."""
    try:
        info = json.loads((Path(model_dir) / "metaie_training.json").read_text())
    except (OSError, ValueError, TypeError):
        return {}
    data = info.get("data") or {}
    ml = info.get("max_length", "")
    steps, batch = info.get("global_step"), info.get("effective_batch")
    rt = info.get("train_runtime_s")
    return {"max_length": ml, "train_truncated": f"{data.get('truncated', 0)}/{data.get('n_train', '')}",
            "train_precision": info.get("precision", ""), "train_steps": steps if steps is not None else "",
            "train_samples": info.get("samples_seen", ""), "train_s": round(rt, 1) if isinstance(rt, (int, float)) else ""}


def gold_anchor_key(subtask: str) -> str:
    """The results sub-task of ``subtask`` scored on gold anchors (relations given the gold entities, arguments
    given the gold triggers, ASTE aspects given the gold opinion terms).

    >>> gold_anchor_key("relation")
    'relation@gold'
    """
    return f"{subtask}@gold"


def _cpu_cores() -> int:
    from metaie_utils.llm.teacher import usable_cores

    return usable_cores()


def fewshot_workers(cfg: EvalConfig, n_jobs: int) -> int:
    """Worker processes of the few-shot loop: ``cfg.fewshot_workers``, where 0 means one per CPU core (one
    thread each) on a CPU and 1 on a GPU; never more than the jobs left.

    >>> fewshot_workers(EvalConfig(fewshot_workers=3), 2), fewshot_workers(EvalConfig(fewshot_workers=1), 9)
    (2, 1)
    """
    n = cfg.fewshot_workers
    if n < 0:
        raise FewShotError(f"fewshot_workers = {n!r}: use 0 (one per CPU core) or the number of fine-tunes to run at once.")
    if n == 0:
        from metaie_utils.core.device import pick_device

        try:
            n = 1 if pick_device(cfg.device) != "cpu" else _cpu_cores()
        except Exception:  # torch missing: nothing to parallelise
            n = 1
    return max(1, min(n, n_jobs))


def _picklable(obj: Any) -> bool:
    import pickle

    try:
        pickle.dumps(obj)
        return True
    except Exception:
        return False


def _init_worker(threads: int) -> None:
    """A worker process of the few-shot loop: ``threads`` intra-op threads, so workers do not contend; it dies
    with its parent (a killed kernel left both workers fine-tuning for nobody)."""
    import os

    from metaie_utils.core.device import die_with_parent

    die_with_parent()

    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[k] = str(threads)
    import torch

    torch.set_num_threads(threads)
    try:  # a worker's stderr is the terminal's: no per-load "Loading weights" bars there (the parent shows progress)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def _job_in_worker(backend: Backend, cfg: EvalConfig, run_dir: Path, name: str, seed: int, init: str, ckpt: str,
                   recipe: str, extra: Mapping[str, Any] | None = None) -> dict:
    ds = backend.get_dataset(name)
    return run_job(backend, cfg, run_dir, ds, name, seed, init, ckpt, recipe, extra)


def doubled_budget(cfg: EvalConfig, times: int = 1) -> EvalConfig:
    """``cfg`` with its few-shot step budget doubled ``times`` times: the step cap and its floor in epochs, or
    the epochs when they decide (``fewshot_max_steps: 0``, the authors' recipe).

    >>> c = doubled_budget(EvalConfig(fewshot_max_steps=300, fewshot_min_epochs=3))
    >>> c.fewshot_max_steps, c.fewshot_min_epochs, c.fewshot_epochs
    (600, 6.0, 100)
    >>> doubled_budget(EvalConfig(fewshot_max_steps=0, fewshot_epochs=100)).fewshot_epochs
    200.0
    """
    k = 2 ** times
    if cfg.fewshot_max_steps > 0:
        return cfg.model_copy(update={"fewshot_max_steps": cfg.fewshot_max_steps * k,
                                      "fewshot_min_epochs": float(cfg.fewshot_min_epochs * k)})
    return cfg.model_copy(update={"fewshot_epochs": float(cfg.fewshot_epochs * k)})


def support_collapsed(scores: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The sub-tasks on which a fine-tune predicts no span on its own support sentences although they hold some.

    >>> support_collapsed({"opinion": {"n_pred": 0, "n_gold": 26}, "triplet": {"n_pred": 3, "n_gold": 30}, "x": {"n_pred": 0, "n_gold": 0}})
    ['opinion']
    """
    return [sub for sub, m in scores.items()
            if collapse_flag("", m.get("n_pred", "")) == "support" and int(m.get("n_gold") or 0) > 0]


def fit_support(backend: Backend, ds: Any, support: list, instances: list, ckpt: str, out: Path, cfg: EvalConfig,
                seed: int) -> tuple[Path, Any, dict, int]:
    """Fine-tune ``ckpt`` on the support instances and check the model on its own support sentences; a model
    that predicts nothing on a sub-task whose support holds spans has not fitted its training data (14lap ASTE's
    vanilla opinion stage on seed 0: 300 steps, no opinion term predicted anywhere), so it is trained again from
    ``ckpt`` with twice the step budget, up to ``cfg.fewshot_collapse_retries`` times. The rule looks at the
    support set only, never at the test sentences, and is the same for every initialization.
    -> (model dir, its extractor, its support scores, attempts)."""
    golds = [ds.gold(ex) for ex in support]
    attempt = 0
    while True:
        run_cfg = doubled_budget(cfg, attempt) if attempt else cfg
        model_dir = backend.train(instances, ckpt, out, run_cfg, seed)
        extractor = backend.load_extractor(model_dir, run_cfg)
        scores = backend.score(ds, golds, ds.predict(extractor, support, cfg.eval_batch_size))
        attempt += 1
        if attempt > cfg.fewshot_collapse_retries or not support_collapsed(scores):
            return model_dir, extractor, scores, attempt
        if callable(getattr(extractor, "close", None)):
            extractor.close()
        del extractor
        if Path(out).is_dir():  # from the initialization again, not resumed from the collapsed model
            shutil.rmtree(out, ignore_errors=True)


def run_job(backend: Backend, cfg: EvalConfig, run_dir: Path, ds: Any, name: str, seed: int, init: str, ckpt: str,
            recipe: str, extra: Mapping[str, Any] | None = None) -> dict:
    """One (dataset, seed, initialization): fine-tune on the support set (written by :func:`prepare_support`),
    extract on the capped test split, score -> ``{"key", "rows", "counts", "log"}`` for the caller to record
    (one process records, so parallel workers never write the same file)."""
    support, instances, rec = prepare_support(ds, name, cfg, seed, run_dir)
    test = capped_test(ds.load("test"), cfg.test_cap)
    base = {"dataset": name, "task": getattr(ds, "task", ""), "initialization": init, "seed": seed,
            "n_test": len(test), "test_cap": cfg.test_cap, "shots": cfg.shots,
            "n_support": rec.get("n_sentences", len(support)), "n_instances": len(instances),
            "recipe": recipe, "note": "", **(extra or {})}
    work = run_dir / "work" / spec_slug(name) / init / f"seed{seed}"
    if init == "llm-icl":
        cap = cfg.icl_test_cap or cfg.test_cap
        test = capped_test(test, cap) if cap else test
        base.update(n_test=len(test), test_cap=cap, recipe=f"icl;teacher={cfg.teacher};k={cfg.shots}")
        extractor = backend.icl_extractor(cfg, instances, ds)
        support_scores = None  # a prompted teacher has no fit to check
    else:
        model_dir, extractor, support_scores, attempts = fit_support(backend, ds, support, instances, ckpt, work / "model",
                                                                     cfg, seed)
        base.update(_window_counts(model_dir), train_attempts=attempts)
    anchored = tuple(getattr(ds, "gold_anchor_subtasks", ()) or ()) if cfg.gold_anchor_rows else ()
    try:  # the extractor has already read the support sentences (the collapse check): count the test's queries only
        asked0, windowed0 = getattr(extractor, "n_queries", 0), getattr(extractor, "n_windowed", 0)
        preds = ds.predict(extractor, test, cfg.eval_batch_size)
        if anchored:  # stage 2 again on the gold anchors: a weak first stage told apart from a weak second one
            for p, gp in zip(preds, ds.predict(extractor, test, cfg.eval_batch_size, anchors="gold")):
                p.update({gold_anchor_key(k): gp.get(k, set()) for k in anchored})
        if getattr(extractor, "n_queries", 0) - asked0:  # test queries longer than the window: read in windows, not cut
            base["test_windowed"] = f"{extractor.n_windowed - windowed0}/{extractor.n_queries - asked0}"
    finally:
        if callable(getattr(extractor, "close", None)):
            extractor.close()
    golds = [ds.gold(ex) for ex in test]
    for g in golds:
        g.update({gold_anchor_key(k): g.get(k, set()) for k in anchored})
    # per-sentence counts (counts.jsonl) are recorded with the rows, so every results row has them after a crash
    # or a resume: `python -m metaie_utils summary RUN_DIR` pairs initializations over them (bootstrap intervals)
    test_ids = [getattr(ex, "id", None) or str(k) for k, ex in enumerate(test)]
    subtasks = list(getattr(ds, "subtasks", None) or sorted({k for g in golds for k in g} - {gold_anchor_key(k) for k in anchored}))
    subtasks += [gold_anchor_key(k) for k in anchored]
    counts = counts_records(name, init, seed, test_ids, golds, preds, subtasks)
    rows = _score_rows(backend.score(ds, golds, preds), base, support_scores)
    del extractor
    if init != "llm-icl" and not cfg.keep_models and work.exists():
        shutil.rmtree(work, ignore_errors=True)
    lines = collapse_report(rows)
    lines.append(f"{name} {init} seed{seed}: " + ", ".join(f"{r['subtask']} F1={100 * r['f1']:.2f}" for r in rows))
    return {"key": (name, init, str(seed)), "rows": rows, "counts": list(counts), "log": lines}


def run_fewshot(
    cfg: EvalConfig, run_dir: str | Path, backend: Backend | None = None, log: Callable[[str], None] = print
) -> list[dict[str, Any]]:
    """The few-shot loop: datasets x seeds x initializations -> rows of ``results.csv`` (all of them).

    Resumable: (dataset, initialization, seed) triples already in ``run_dir/results.csv`` are skipped.
    Initializations that cannot be built (e.g. ``metaie`` with ``meta_model=""``) are skipped with a note
    (``notes.json``), not an error.
    """
    from tqdm.auto import tqdm

    backend = backend or Backend()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    results_path = run_dir / "results.csv"
    recorded = read_results(results_path)
    done = {(r["dataset"], r["initialization"], str(r["seed"])) for r in recorded}
    notes: dict[str, str] = dict(backend.notes)
    recipe = recipe_string(recipe_dict(cfg))
    for r in recorded:  # a resumed run never mixes two few-shot recipes in one results.csv
        diff = (recipe_differences(recorded_recipe(r), recipe) if r.get("initialization") != "llm-icl" else {})
        if diff:
            detail = ", ".join(f"{k}: recorded {a}, asked {b}" for k, (a, b) in diff.items())
            raise FewShotError(f"{results_path} holds fine-tunes made with another few-shot recipe ({detail}; first "
                               f"{r['dataset']} / {r['initialization']} / seed {r['seed']}). Resume with the recorded "
                               f"recipe, or write to another run name.")

    # Resolve every initialization once (baselines are built / reused here).
    inits: dict[str, str] = {}
    for name in cfg.initializations:
        if name == "metaie" and not cfg.meta_model:
            notes["metaie"] = "skipped: meta_model is '' (no MetaIE checkpoint given)"
            log(f"note: {notes['metaie']}")
            continue
        if name == "multiie":  # built per evaluated dataset, never on the dataset under evaluation (below)
            inits[name] = ""
            continue
        ckpt = backend.build_init(name, cfg)
        if ckpt is None:
            notes.setdefault(name, "skipped: no checkpoint")
            continue
        inits[name] = ckpt
    multiie: dict[tuple[str, ...], str | None] = {}

    def init_for(init: str, dataset: str) -> tuple[str | None, dict]:
        """(checkpoint, extra results fields) of ``init`` for ``dataset``: MultiIE drops its sources that are
        the evaluated dataset (the paper's MultiIE is out of distribution for every test set)."""
        if init == "ner-distill":
            return inits[init], _pretrain_counts(inits[init])
        if init != "multiie":
            return inits[init], {}
        kept, excluded = multiie_sources(dataset, cfg.multiie_datasets)
        if not kept:
            return None, {}
        if tuple(kept) not in multiie:
            multiie[tuple(kept)] = backend.build_init("multiie", cfg.model_copy(update={"multiie_datasets": list(kept)}))
        note = f"multiie without {'+'.join(excluded)} (the evaluated dataset)" if excluded else ""
        return multiie[tuple(kept)], {**_pretrain_counts(multiie[tuple(kept)]), "pretrain_sources": "+".join(kept), "note": note}
    datasets = {}
    for name in cfg.datasets:
        datasets[name] = backend.get_dataset(name)

    # seed-major: every dataset gets its first seed (all initializations, side by side) before any gets its
    # second, so a long grid cut short still has paired cells on every dataset
    jobs = []
    for s in cfg.seeds:
        for d in cfg.datasets:
            for i in inits:
                if (d, i, str(s)) in done:
                    continue
                ckpt, extra = init_for(i, d)
                if ckpt is None:
                    notes[f"{i}/{d}"] = f"skipped: every {i} source is the evaluated dataset {d}"
                    continue
                jobs.append((d, s, i, ckpt, extra))
    for name, seed in dict.fromkeys((d, s) for d, s, *_ in jobs):  # one support set per (dataset, seed), shared
        prepare_support(datasets[name], name, cfg, seed, run_dir)  # by every initialization, written before any job

    def record(out: dict) -> None:
        append_counts(run_dir / "counts.jsonl", out["counts"])
        append_results(results_path, out["rows"])
        done.add(out["key"])
        for line in out["log"]:
            log(line)

    workers = fewshot_workers(cfg, len(jobs))
    if workers > 1 and not _picklable(backend):
        log(f"few-shot: fewshot_workers={cfg.fewshot_workers} needs a picklable Backend (module-level functions); "
            "this one is not, so the fine-tunes run one after another")
        workers = 1
    bar = tqdm(total=len(jobs), desc="few-shot", unit="run")
    if workers <= 1:
        for name, seed, init, ckpt, extra in jobs:
            bar.set_postfix_str(f"{name} {init} seed{seed}")
            record(run_job(backend, cfg, run_dir, datasets[name], name, seed, init, ckpt, recipe, extra))
            bar.update()
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        threads = max(1, _cpu_cores() // workers)
        log(f"few-shot: {len(jobs)} fine-tunes on {workers} worker processes, {threads} thread(s) each")
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                 initializer=_init_worker, initargs=(threads,)) as pool:
            futs = {pool.submit(_job_in_worker, backend, cfg, run_dir, name, seed, init, ckpt, recipe, extra): (name, seed, init)
                    for name, seed, init, ckpt, extra in jobs}
            failed: list[tuple[tuple, BaseException]] = []
            for fut in as_completed(futs):
                name, seed, init = futs[fut]
                if fut.exception() is not None:  # the others still finish and are recorded; the run then fails
                    failed.append(((name, init, seed), fut.exception()))
                    log(f"{name} {init} seed{seed}: failed: {fut.exception()!r}")
                    continue
                bar.set_postfix_str(f"{name} {init} seed{seed} done")
                record(fut.result())
                bar.update()
        if failed:
            bar.close()
            (name, init, seed), err = failed[0]
            raise FewShotError(f"{len(failed)} of {len(jobs)} few-shot fine-tunes failed, first {name} / {init} / seed {seed}: "
                               f"{err!r}. The finished ones are in {results_path}; rerun to retry the rest.") from err
    bar.close()
    (run_dir / "notes.json").write_text(json.dumps(notes, indent=2) + "\n")
    if not cfg.keep_models:
        _remove_empty_dirs(run_dir / "work")
    return read_results(results_path)


def _remove_empty_dirs(root: Path) -> None:
    """Delete empty folders under ``root`` (and ``root`` itself when it ends up empty), deepest first."""
    if not root.is_dir():
        return
    for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(d.iterdir()):
            d.rmdir()
    if not any(root.iterdir()):
        root.rmdir()


def write_summary(run_dir: str | Path) -> Any:
    """Read ``results.csv``, write ``summary.csv`` (percentages) and return the summary DataFrame."""
    run_dir = Path(run_dir)
    summary = summarize(read_results(run_dir / "results.csv"))
    summary.to_csv(run_dir / "summary.csv", index=False)
    return summary


PROTOCOL_SEEDS = 3  # the paper's protocol: mean ± std over 3 support sets (the `evaluate` default)


def _files_set(files: Sequence[str], key: str) -> bool:
    """Whether any of the params ``files`` sets ``key`` (``read_yaml`` names a missing or malformed file)."""
    from metaie_utils.core.params import read_yaml

    return any(key in read_yaml(f) for f in files)


def config_from_args(args) -> EvalConfig:
    """The CLI's EvalConfig: ``params/defaults.yaml`` + ``--params`` files + ``--set`` pairs + the flags."""
    from metaie_utils.core.params import load_params, parse_set, stage_config

    overrides: dict[str, Any] = parse_set(args.set or [])
    overrides["meta_model"] = args.model
    overrides["datasets"] = list(args.dataset)
    for flag, key in (("shots", "shots"), ("seeds", "fewshot_seeds"), ("seed", "seed"), ("test_cap", "test_cap"),
                      ("backbone", "backbone"), ("init", "initializations"), ("run_name", "run_name")):
        v = getattr(args, flag)
        if v not in (None, "", []):
            overrides[key] = v
    if "fewshot_seeds" not in overrides and not _files_set(args.params or [], "fewshot_seeds"):
        overrides["fewshot_seeds"] = PROTOCOL_SEEDS  # evaluate follows the paper; make run's defaults.yaml uses 1
    params = load_params(args.params or [], overrides)
    cfg = stage_config("05_fewshot_eval", params)
    if not cfg.meta_model and "metaie" in cfg.initializations and args.init is None:
        cfg = cfg.model_copy(update={"initializations": [i for i in cfg.initializations if i != "metaie"]})
    return cfg


def _cmd_evaluate(args) -> int:
    from metaie_utils.core.runs import recording_stop, start_run, stop_on_sigterm
    from metaie_utils.plots import save
    from metaie_utils.plots.eval import plot_results

    cfg = config_from_args(args)
    for d in cfg.datasets:
        _real_get_dataset(d)  # unknown names fail here, listing the known ones
    run = start_run(cfg)
    print(f"run directory: {run.dir}")
    with stop_on_sigterm(), recording_stop(run.dir):  # an error, Ctrl-C or kill -TERM: the manifest says so
        run_fewshot(cfg, run.dir)
        summary = write_summary(run.dir)
        save(plot_results(summary), run.dir / "fewshot_f1.png")
        run.finish(stage_metrics(summary, cfg))
    print(summary_table(summary).to_string())
    for line in collapse_report(read_results(run.dir / "results.csv")):
        print(line)
    return 0


def register_cli(subparsers) -> None:
    """``evaluate --model DIR --dataset NAME [--shots K --seeds N --test-cap N --backbone NAME]``."""
    p = subparsers.add_parser(
        "evaluate", help="few-shot fine-tune and score initializations on IE datasets (stage 05)",
        description="K-shot fine-tune each initialization on seeded support sets, score on the (capped) test "
                    "split and print F1 (mean ± std over seeds). Unset flags come from params/defaults.yaml "
                    "(+ --params files, --set pairs).",
    )
    p.add_argument("--model", default="", help="MetaIE checkpoint: 04 run dir, model folder or Hub name ('' = skip metaie)")
    p.add_argument("--dataset", action="append", required=True, help="dataset name (repeatable), e.g. conll2003")
    p.add_argument("--shots", type=int, default=None, help="K per type (default 5)")
    p.add_argument("--seeds", type=int, default=None,
                   help=f"number of support sets / seeds (default {PROTOCOL_SEEDS}, the paper's protocol, unless a "
                        f"--params file or --set fewshot_seeds=N says otherwise)")
    p.add_argument("--seed", type=int, default=None,
                   help="the run's seed: support sets seed..seed+N-1, and the seed of the ner-distill / multiie "
                        "pre-training (their instance subsample), so --seed 2 --seeds 1 pre-trains other baselines "
                        "than a run from seed 0 does; to redo one support set of a run, start from the run's seed")
    p.add_argument("--test-cap", type=int, default=None, help="test sentences per dataset, 0 = all")
    p.add_argument("--backbone", default=None, help="vanilla backbone (default: minilm-l6)")
    p.add_argument("--init", action="append", default=None,
                   help=f"initialization (repeatable; default from params): {', '.join(INITIALIZATIONS)}")
    p.add_argument("--run-name", default=None, help="run directory name under outputs/05_fewshot_eval")
    p.add_argument("--params", action="append", help="params files layered over params/defaults.yaml")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one parameter (repeatable), e.g. fewshot_max_steps=20")
    p.set_defaults(func=_cmd_evaluate)
