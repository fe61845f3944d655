"""Stage 04 (notebook ``04_train_meta_model``): meta-training data, the authors' CoNLL2003 protocol, ``train``.

Training itself is :func:`metaie_utils.models.finetune` (the same function fine-tunes few-shot in stage 05).
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any, ClassVar, Sequence

from metaie_utils.core.bio import load_instances, split_instance
from metaie_utils.core.errors import UserError
from metaie_utils.core.io import sha256_file
from metaie_utils.core.params import ParamsError, StageConfig
from metaie_utils.core.paths import data_dir, resolve
from metaie_utils.models import finetune
from metaie_utils.models.checkpoint import read_training_info
from metaie_utils.models.trainer import TrainRecipe, train_token_classifier


class TrainConfig(StageConfig):
    """Parameters of notebook ``04_train_meta_model`` (every field is a flat key of params/*.yaml)."""

    stage: ClassVar[str] = "04_train_meta_model"
    metrics_keys: ClassVar[tuple[str, ...]] = ("n_train", "n_heldout", "n_params", "global_step", "heldout_span_f1",
                                               "train_samples_per_second")
    upstream: ClassVar[dict[str, str]] = {"input_dir": "03_convert_bio"}

    input_dir: str = "metaie_reference/distill/metaie.json"  # 03 run dir, or an instances file (see resolve_input)
    backbone: str = "minilm-l6"  # alias of metaie_utils.assets, a local path, or a Hub name (roberta-large)
    num_layers: int = 0  # 0 = all encoder layers; k = keep the first k
    architecture: str = "seqlabel"  # "seqlabel" | "generative"
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N" | "mps"
    precision: str = "auto"  # "auto" | "fp32" | "fp16" | "bf16"
    max_length: int = 128  # sub-tokens per (label : sentence) sequence; longer ones are truncated and counted
    label_all_subtokens: bool = False  # False = first sub-token only (paper); True = every sub-token
    meta_lr: float = 3e-4  # meta-training peak learning rate (AdamW; MiniLM-L6, measured: README)
    meta_epochs: float = 6.0  # meta-training epochs (6 over make run's ~600 instances)
    meta_batch_size: int = 16  # per-device batch
    meta_grad_accum: int = 2  # gradient accumulation steps (effective batch = batch x accum x devices)
    meta_warmup_ratio: float = 0.06  # fraction of steps with linear warmup, [0, 1)
    meta_weight_decay: float = 0.01  # AdamW weight decay
    meta_max_steps: int = -1  # -1 = epochs decide; >0 caps optimizer steps
    meta_max_instances: int = 0  # 0 = all training instances; N = a seeded sample of N
    heldout_fraction: float = 0.05  # held-out share when the input has no heldout.json, [0, 0.5]
    eval_steps: int = 0  # 0 = evaluate the held-out slice at the end of each epoch; N = every N steps
    log_steps: int = 10  # log the training loss every N optimizer steps
    save_steps: int = 200  # checkpoint (for resuming) every N optimizer steps
    protocol_eval: bool = False  # run the authors' CoNLL2003 5-shot protocol section
    protocol_inits: str = "vanilla,meta"  # comma list of "vanilla" (the backbone) and "meta" (this run's model)
    protocol_lr: float = 3e-4  # fine-tuning learning rate of the protocol
    protocol_epochs: float = 30.0  # fine-tuning epochs of the protocol
    protocol_batch_size: int = 16  # fine-tuning batch of the protocol
    protocol_max_test: int = 0  # 0 = the full test file (13,812 records); N = its first N sentences

    def recipe(self) -> "TrainRecipe":
        """The meta-training recipe of this config."""
        return TrainRecipe(
            lr=self.meta_lr, epochs=self.meta_epochs, batch_size=self.meta_batch_size, grad_accum=self.meta_grad_accum,
            warmup_ratio=self.meta_warmup_ratio, weight_decay=self.meta_weight_decay, max_length=self.max_length,
            label_all_subtokens=self.label_all_subtokens, max_steps=self.meta_max_steps, num_layers=self.num_layers,
            precision=self.precision, device=self.device, seed=self.seed, eval_steps=self.eval_steps,
            log_steps=self.log_steps, save_steps=self.save_steps,
        )

    def protocol_recipe(self) -> "TrainRecipe":
        """The few-shot fine-tuning recipe of the authors' protocol section."""
        return dataclasses.replace(self.recipe(), lr=self.protocol_lr, epochs=self.protocol_epochs,
                                   batch_size=self.protocol_batch_size, grad_accum=1, max_steps=-1, num_layers=0,
                                   warmup_ratio=0.1, eval_steps=0, save_steps=20, log_steps=5)


def resolve_input(path: str | Path) -> Path:
    """Where ``input_dir`` points: an absolute path, a repo-relative path, else a data-dir-relative path.

    >>> resolve_input("metaie_reference/distill/metaie.json").name  # doctest: +SKIP
    'metaie.json'
    """
    p = Path(path).expanduser()
    cands = [p] if p.is_absolute() else [resolve(p)]
    if not p.is_absolute():
        d = data_dir(required=False)
        cands.append(d / p)
    for c in cands:
        if c.exists():
            return c
    raise UserError(
        f"input_dir {str(path)!r} was not found (looked at {', '.join(str(c) for c in cands)}). Point it at a "
        f"03_convert_bio run directory (outputs/03_convert_bio/<run>), at an instances JSON/JSONL file, or at "
        f"a path inside the data folder such as metaie_reference/distill/metaie.json."
    )


def read_instances(path: str | Path) -> list[dict]:
    """Instances from a JSON list or a JSON Lines file, validated (``words`` and ``ner`` of equal length).

    >>> read_instances("metaie_reference/dataset/train.5-shot.conll2003.json")[0]["ner"][:2]  # doctest: +SKIP
    ['O', 'O']
    """
    return load_instances(resolve_input(path))




def load_training_data(input_dir: str | Path, heldout_fraction: float = 0.1, seed: int = 0,
                       max_instances: int = 0) -> tuple[list[dict], list[dict], dict[str, Any]]:
    """``(train, heldout, provenance)`` from a 03 run directory or an instances file.

    A run directory gives ``instances.json`` (+ ``heldout.json`` when present). Otherwise a seeded
    ``heldout_fraction`` of the instances is held out (at least one instance when there are two or more).
    ``max_instances > 0`` samples that many training instances (seeded). ``provenance`` records the input
    path, its sha256, and the counts.
    """
    if not 0 <= heldout_fraction <= 0.5:
        raise ParamsError(f"heldout_fraction = {heldout_fraction!r} must be in [0, 0.5].")
    p = resolve_input(input_dir)
    if p.is_dir():
        f = p / "instances.json"
        if not f.is_file():
            raise UserError(f"{p} has no instances.json: point input_dir at a finished 03_convert_bio run directory.")
        train = read_instances(f)
        h = p / "heldout.json"
        heldout = read_instances(h) if h.is_file() else None
    else:
        f, train, heldout = p, read_instances(p), None
    if heldout is None:
        rng = random.Random(seed)
        idx = list(range(len(train)))
        rng.shuffle(idx)
        n_h = int(round(len(train) * heldout_fraction))
        if heldout_fraction > 0 and len(train) >= 2:
            n_h = max(1, n_h)
        hset = set(idx[:n_h])
        heldout = [x for i, x in enumerate(train) if i in hset]
        train = [x for i, x in enumerate(train) if i not in hset]
    n_all = len(train)
    if max_instances and max_instances < len(train):
        rng = random.Random(seed)
        train = rng.sample(train, max_instances)
    if not train:
        raise UserError(f"{f} gave no training instances; check the 03 run (label_stats.csv) or the file.")
    prov = {"input": str(f), "sha256": sha256_file(f), "n_train": len(train), "n_train_available": n_all,
            "n_heldout": len(heldout), "heldout_fraction": heldout_fraction}
    return train, heldout, prov


def protocol_queries(records: Sequence[dict]) -> tuple[list[list[str]], list[list[str]], list[list[tuple]]]:
    """Group the authors' test records (one per sentence x label, consecutive) into sentences.

    A new sentence starts when the sentence words change or when a label repeats, so repeated
    sentences of the test set (e.g. the same headline in two documents) stay separate, as in the
    authors' evaluation (CoNLL2003: 13,812 records -> 3,453 sentences x 4 labels).
    Returns ``(sentences, labels_per_sentence, gold_per_sentence)`` where gold holds
    ``(label, word_start, word_end)`` tuples over the sentence words.

    >>> s, l, g = protocol_queries([{"words": ["Person", ":", "Tom", "ran"], "ner": ["O", "O", "B", "O"]},
    ...                             {"words": ["Location", ":", "Tom", "ran"], "ner": ["O", "O", "O", "O"]}])
    >>> s, l, g
    ([['Tom', 'ran']], [['Person', 'Location']], [[('Person', 0, 1)]])
    """
    from metaie_utils.core.bio import bio_spans

    sents: list[list[str]] = []
    labels: list[list[str]] = []
    gold: list[list[tuple]] = []
    for rec in records:
        lw, sw, _ = split_instance(rec)
        label = " ".join(lw)
        if not sents or sents[-1] != sw or label in labels[-1]:
            sents.append(sw)
            labels.append([])
            gold.append([])
        labels[-1].append(label)
        gold[-1].extend((label, s, e) for s, e in bio_spans(rec["ner"][len(lw) + 1:]))
    return sents, labels, gold


def score_protocol(sentences: Sequence[Sequence[str]], gold: Sequence[Sequence[tuple]],
                   pred: Sequence[Sequence[Any]]) -> dict[str, dict]:
    """Offset-exact and the authors' string-match micro P/R/F1 for grouped sentences.

    ``pred[i]`` holds :class:`~metaie_utils.extraction.Span` objects (word offsets ``word_start/word_end``).
    """
    from metaie_utils.core.metrics import prf, string_prf

    g_off = [{(lab, s, e) for lab, s, e in g} for g in gold]
    p_off = [{(sp.label, sp.word_start, sp.word_end) for sp in p} for p in pred]
    g_str = [[(lab, " ".join(w[s:e])) for lab, s, e in g] for w, g in zip(sentences, gold)]
    p_str = [[(sp.label, " ".join(w[sp.word_start:sp.word_end])) for sp in p] for w, p in zip(sentences, pred)]
    return {"offset": prf(g_off, p_off), "string": string_prf(g_str, p_str)}


def authors_protocol(init: str, output_dir: str | Path, recipe: TrainRecipe, max_test: int = 0,
                     train_file: str = "metaie_reference/dataset/train.5-shot.conll2003.json",
                     test_file: str = "metaie_reference/dataset/test.conll2003.json",
                     batch_size: int = 64, resume: bool = True) -> dict[str, Any]:
    """The authors' CoNLL2003 5-shot protocol end to end on their own files.

    Fine-tunes ``init`` on the 80 support instances, queries every test sentence with its 4 labels
    (conflicts resolved by confidence, as the paper) and scores offset-exact micro-F1 and the authors'
    string-match micro-F1. Returns ``{"offset": prf, "string": prf, "n_sentences", "n_records", "model"}``.
    """
    from metaie_utils.models.extractor import MetaIE

    train = read_instances(train_file)
    test = read_instances(test_file)
    sents, labels, gold = protocol_queries(test)
    if max_test:
        sents, labels, gold = sents[:max_test], labels[:max_test], gold[:max_test]
    model_dir = train_token_classifier(train, init, Path(output_dir), recipe, resume=resume,
                                       provenance={"input": str(resolve_input(train_file)),
                                                   "sha256": sha256_file(resolve_input(train_file))})
    ie = MetaIE.from_pretrained(model_dir, device=recipe.device, batch_size=batch_size, max_length=recipe.max_length)
    pred = ie.extract(sents, labels, conflict="confidence")
    scores = score_protocol(sents, gold, pred)
    return {**scores, "n_sentences": len(sents), "n_records": sum(len(x) for x in labels), "model": str(model_dir)}


def _cmd_train(args) -> int:
    from metaie_utils.core.params import parse_set

    over = parse_set(args.set or [])
    fields = {f.name for f in dataclasses.fields(TrainRecipe)}
    bad = sorted(set(over) - fields)
    if bad:
        raise ParamsError(f"--set {bad}: not TrainRecipe options; known: {', '.join(sorted(fields))}.")
    recipe = TrainRecipe(**{"num_layers": args.num_layers, **over})
    train, heldout, prov = load_training_data(args.input, args.heldout_fraction, recipe.seed, args.max_instances)
    out = finetune(train, args.backbone, Path(args.output), recipe, args.architecture, heldout or None,
                   resume=not args.no_resume, **({"provenance": prov} if args.architecture == "seqlabel" else {}))
    info = read_training_info(out)
    print(json.dumps({"model": str(out), "global_step": info.get("global_step"), "data": info.get("data"),
                      "final_eval": info.get("final_eval")}, indent=2, default=str))
    return 0


def register_cli(sub) -> None:
    p = sub.add_parser("train", help="train a MetaIE token classifier on BIO instances (stage 04 / few-shot)",
                       description="Train a B/I/O tagger on instances {'words','ner'}; writes a save_pretrained folder.")
    p.add_argument("--input", required=True, help="03_convert_bio run directory or an instances JSON/JSONL file")
    p.add_argument("--output", required=True, help="checkpoint folder to write (save_pretrained + metaie_training.json)")
    p.add_argument("--backbone", default="minilm-l6", help="assets alias, local folder or Hub name (e.g. roberta-large)")
    p.add_argument("--num-layers", type=int, default=0, help="keep only the first k encoder layers (0 = all)")
    p.add_argument("--architecture", default="seqlabel", choices=["seqlabel", "generative"])
    p.add_argument("--heldout-fraction", type=float, default=0.1, help="held-out share when the input has no heldout.json")
    p.add_argument("--max-instances", type=int, default=0, help="train on a seeded sample of N instances (0 = all)")
    p.add_argument("--no-resume", action="store_true", help="retrain from scratch even if checkpoints exist")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="TrainRecipe option, repeatable: lr, epochs, batch_size, grad_accum, warmup_ratio, weight_decay, "
                        "max_length, label_all_subtokens, max_steps, precision, device, seed, eval_steps, log_steps, save_steps")
    p.set_defaults(func=_cmd_train)
