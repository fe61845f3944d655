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
import json
import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from metaie_utils.core.bio import LABEL2ID, LABELS, validate_instances
from metaie_utils.core.errors import UserError
from metaie_utils.core.params import ParamsError
from metaie_utils.models.checkpoint import (
    TRAINING_FILE,
    load_model,
    load_tokenizer,
    model_card,
    model_window,
    resolve_backbone,
)

log = logging.getLogger(__name__)




IGNORE = -100


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
    min_epochs: float = 0.0  # with max_steps > 0: the step cap rises to at least this many epochs (0 = the cap alone)
    num_layers: int = 0
    precision: str = "auto"
    device: str = "auto"
    seed: int = 0
    eval_steps: int = 0
    log_steps: int = 10
    save_steps: int = 500
    class_weight: str = "none"  # "none" | "balanced": cross-entropy weights n / (3 n_tag) over the B/I/O tags of the training set

    def __post_init__(self) -> None:
        checks = [
            (self.lr > 0, "lr", "a positive float such as 5e-5"),
            (self.epochs > 0 or self.max_steps > 0, "epochs", "> 0 (or set max_steps > 0)"),
            (self.batch_size >= 1, "batch_size", "an int >= 1"),
            (self.min_epochs >= 0, "min_epochs", "0 (the max_steps cap alone) or a number of epochs > 0"),
            (self.grad_accum >= 1, "grad_accum", "an int >= 1"),
            (0 <= self.warmup_ratio < 1, "warmup_ratio", "a fraction in [0, 1)"),
            (self.weight_decay >= 0, "weight_decay", ">= 0"),
            (self.max_length == 0 or self.max_length >= 8, "max_length", "0 (the backbone's window) or an int >= 8 sub-tokens"),
            (self.num_layers >= 0, "num_layers", "0 (all layers) or the number of layers to keep"),
            (self.precision in ("auto", "fp32", "fp16", "bf16"), "precision", '"auto", "fp32", "fp16" or "bf16"'),
            (self.class_weight in ("none", "balanced"), "class_weight", '"none" or "balanced"'),
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

    from metaie_utils.core.bio import bio_spans
    from metaie_utils.core.metrics import prf

    pred = np.asarray(logits).argmax(-1)
    labels = np.asarray(labels)
    gold_sets, pred_sets = [], []
    for p_row, l_row in zip(pred, labels):
        m = l_row != IGNORE
        gold_sets.append(set(bio_spans([LABELS[i] for i in l_row[m]])))
        pred_sets.append(set(bio_spans([LABELS[i] for i in p_row[m]])))
    r = prf(gold_sets, pred_sets)
    return {"span_precision": r["precision"], "span_recall": r["recall"], "span_f1": r["f1"]}


def tag_weights(feats: Sequence[dict]) -> list[float]:
    """Balanced cross-entropy weights of the tags in ``feats`` (label ids 0..2, ``IGNORE`` skipped), in
    label-id order: ``n / (3 * n_tag)`` (scikit-learn's "balanced"), so the mean weight over the training
    tokens is 1 and the loss keeps its scale. A tag absent from the set gets weight 1.

    >>> [round(w, 2) for w in tag_weights([{"labels": [0, 0, 0, 1, 2, -100]}])]
    [0.56, 1.67, 1.67]
    """
    import numpy as np
    from sklearn.utils.class_weight import compute_class_weight

    y = np.array([t for f in feats for t in f["labels"] if t != IGNORE])
    present = np.unique(y)
    w = dict(zip(present.tolist(), compute_class_weight("balanced", classes=present, y=y).tolist()))
    return [float(w.get(i, 1.0)) for i in range(len(LABELS))]


def weighted_token_loss(weights: Sequence[float]):
    """A ``Trainer(compute_loss_func=...)``: weighted token cross-entropy summed over the labelled tokens and
    divided by their number in the accumulated batch (the Trainer's own normalization, so gradient
    accumulation stays exact)."""
    import torch

    w = torch.tensor(list(weights), dtype=torch.float32)

    def loss(outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        flat = logits.reshape(-1, logits.shape[-1]).float()
        tot = torch.nn.functional.cross_entropy(flat, labels.reshape(-1).to(flat.device), weight=w.to(flat.device),
                                                ignore_index=IGNORE, reduction="sum")
        n = num_items_in_batch if num_items_in_batch is not None else (labels != IGNORE).sum()
        return tot / torch.as_tensor(n, device=flat.device).clamp(min=1)

    return loss


def route_trainer_logs(trainer: Any, logger: logging.Logger | None = None) -> None:
    """Send a Hugging Face Trainer's per-step log dicts (loss, lr, grad norm) to ``logger`` (default: this
    module's), which a run's log file records (:meth:`metaie_utils.core.runs.Run.log`), instead of printing
    them into notebook cells; the progress bar (when the Trainer shows one) stays. Both trainers of this
    layer (the sequence labeler here, :mod:`metaie_utils.models.generative`) use it."""
    target = logger or log
    from transformers.trainer_callback import PrinterCallback, ProgressCallback, TrainerCallback

    class _ToLogger(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_local_process_zero and logs:
                target.info("step %d: %s", state.global_step,
                         {k: (round(v, 5) if isinstance(v, float) else v) for k, v in logs.items() if k != "total_flos"})

    class _BarOnly(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # the bar, without the dict printed under it
            return

    had_bar = any(isinstance(c, ProgressCallback) for c in trainer.callback_handler.callbacks)
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if had_bar:
        trainer.add_callback(_BarOnly())
    trainer.add_callback(_ToLogger())


def _is_finished(output_dir: Path) -> bool:
    f = output_dir / TRAINING_FILE
    if not f.is_file():
        return False
    try:
        return bool(json.loads(f.read_text()).get("finished"))
    except json.JSONDecodeError:
        return False


class _SampleCounter:
    """Counts the training samples the model actually sees: a forward pre-hook that adds the batch size of
    every forward pass made in training mode (transformers' ``train_samples_per_second`` assumes full
    accumulation steps; an epoch that ends on a short one sees fewer). Evaluation passes are not counted."""

    def __init__(self, model: Any):
        self.n = 0
        self.handle = model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module: Any, args: tuple, kwargs: dict) -> None:
        if module.training:
            x = kwargs.get("input_ids")
            if x is None and args:
                x = args[0]
            self.n += int(x.shape[0]) if hasattr(x, "shape") else 0


def last_complete_checkpoint(ckpt_dir: str | Path) -> str | None:
    """The newest ``checkpoint-N`` under ``ckpt_dir`` that a resume can read, or None.

    A process killed while the Trainer saves leaves a torn folder (weights and optimizer written, no
    ``trainer_state.json``, which the Trainer writes after them); resuming from it fails with
    FileNotFoundError, so torn folders are skipped (and logged), and an older complete one is used.
    """
    import re as _re

    d = Path(ckpt_dir)
    found = sorted(((int(m.group(1)), p) for p in d.iterdir() if p.is_dir() and (m := _re.fullmatch(r"checkpoint-(\d+)", p.name))),
                   reverse=True) if d.is_dir() else []
    for _, p in found:
        if (p / "trainer_state.json").is_file():
            return str(p)
        log.warning("skipping the torn checkpoint %s (no trainer_state.json: the run was killed while saving it)", p)
    return None


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
    from transformers import (
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from metaie_utils.core.device import pick_device, training_precision

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
    precision = training_precision(recipe.precision, device)
    path = resolve_backbone(init)
    set_seed(recipe.seed)
    tok = load_tokenizer(path)
    model = load_model(path, recipe.num_layers)
    max_length = recipe.max_length or model_window(tok, model.config)  # 0: the backbone's window, as extraction
    feats, n_trunc = encode_instances(train, tok, max_length, recipe.label_all_subtokens)
    eval_feats, n_trunc_eval = (encode_instances(eval_instances, tok, max_length, False, ignore_prefix=True)
                                if eval_instances else (None, 0))
    if n_trunc:
        log.warning("%d of %d training instances exceed max_length=%d sub-tokens and were truncated",
                    n_trunc, len(train), max_length)

    weights = tag_weights(feats) if recipe.class_weight == "balanced" else None
    steps_per_epoch = math.ceil(len(feats) / (recipe.batch_size * recipe.grad_accum))
    max_steps = recipe.max_steps
    if max_steps > 0 and recipe.min_epochs > 0:  # a large support set gets at least min_epochs passes
        max_steps = max(max_steps, math.ceil(recipe.min_epochs * steps_per_epoch))
    eval_strategy = "no" if not eval_feats else ("steps" if recipe.eval_steps else "epoch")
    args = TrainingArguments(
        output_dir=str(ckpt_dir),
        learning_rate=recipe.lr,
        num_train_epochs=recipe.epochs,
        max_steps=max_steps,
        per_device_train_batch_size=recipe.batch_size,
        per_device_eval_batch_size=max(recipe.batch_size, 32),
        gradient_accumulation_steps=recipe.grad_accum,
        warmup_steps=recipe.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps (transformers 5)
        weight_decay=recipe.weight_decay,
        lr_scheduler_type="cosine",
        # fused AdamW: one kernel per step instead of one per tensor op; on a CPU (torch >= 2.4) it took 14 ms
        # per step over MiniLM-L6's 22.6M parameters against 93-148 ms unfused, a third of a few-shot step
        optim="adamw_torch_fused" if device.startswith("cuda") or device == "cpu" else "adamw_torch",
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
    seen = _SampleCounter(model)
    trainer = Trainer(
        model=model, args=args, train_dataset=feats, eval_dataset=eval_feats,
        data_collator=DataCollatorForTokenClassification(tok, label_pad_token_id=IGNORE),
        processing_class=tok,
        compute_metrics=(lambda ep: span_f1_from_logits(ep.predictions, ep.label_ids)) if eval_feats else None,
        compute_loss_func=weighted_token_loss(weights) if weights else None,
    )
    route_trainer_logs(trainer)
    last = last_complete_checkpoint(ckpt_dir) if resume and ckpt_dir.is_dir() else None
    if last:
        log.info("resuming from %s", last)
    result = trainer.train(resume_from_checkpoint=last)
    seen.handle.remove()
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
        "max_length": max_length,  # the window actually used (recipe.max_length 0 = the backbone's)
        "tag_weights": dict(zip(LABELS, weights)) if weights else None,
        "global_step": trainer.state.global_step,
        "n_params": int(sum(p.numel() for p in model.parameters())),
        "train_runtime_s": result.metrics.get("train_runtime"),
        "train_samples_per_second": result.metrics.get("train_samples_per_second"),  # transformers' nominal count
        "samples_seen": seen.n,  # training samples the model actually saw (this process; a resumed run counts from the resume)
        "resumed_from": last,
        "data": {**(provenance or {}), "n_train": len(train), "n_eval": len(eval_instances or []),
                 "truncated": n_trunc, "truncated_eval": n_trunc_eval},
        "final_eval": final_eval,
        "log_history": trainer.state.log_history,
        "finished": True,
    }
    (output_dir / "README.md").write_text(model_card(info), encoding="utf-8")
    from metaie_utils.core.io import atomic_write_text

    atomic_write_text(output_dir / TRAINING_FILE, json.dumps(info, indent=2, default=str) + "\n")
    if ckpt_dir.is_dir():
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    return output_dir


