"""Load a B/I/O token classifier in ANY label order and hand it back as ``O=0, B=1, I=2``.

A token-classification checkpoint says what each output row of its head means in ``config.id2label``.
Checkpoints disagree on the order: the authors' ``run_ner.py`` sorts the tag names, so their models
(e.g. ``KomeijiForce/roberta-large-metaie``) have ``B=0, I=1, O=2``; this project trains ``O=0, B=1,
I=2`` (``training.LABELS``). Passing ``id2label`` to ``AutoConfig.from_pretrained`` only renames the
rows, it does not move them, so a checkpoint read that way changes meaning (its ``O`` row is then
called ``I``). Here the rows are mapped **by name**:

1. :func:`checkpoint_label_order` reads the checkpoint's own config and returns the permutation
   ``perm`` with ``perm[j]`` = the checkpoint row of ``("O", "B", "I")[j]``; ``None`` when the checkpoint
   has no 3-way token-classification head (a plain encoder, or a tagger with another number of labels),
   which then gets a fresh O/B/I head.
2. :func:`load_token_classifier` loads ``AutoModelForTokenClassification`` with the checkpoint's own
   label map (optionally keeping only the first ``num_layers`` layers), reorders the head's weight and
   bias rows with :func:`permute_head` and rewrites ``config.id2label``/``label2id`` to ``O, B, I``, so
   all code downstream (training labels, ``span_f1_from_logits``, extraction) may assume ``O=0, B=1, I=2``.

Accepted label names (:func:`tag_of`), decided here and kept strict so that a head of another task is
never silently read as B/I/O:

- ``"O"``, ``"B"``, ``"I"`` in any case, with surrounding blanks ignored;
- ``"B-X"`` / ``"I-X"`` (also ``B_X``, ``I_X``) with the **same** suffix ``X`` for B and I, e.g.
  ``B-SPAN``/``I-SPAN``, next to a plain ``"O"`` (a one-type BIO tag set written in the CoNLL style).

Each of O, B and I must appear exactly once. Anything else in a 3-way token-classification head (e.g.
``PER/LOC/ORG``, the generic ``LABEL_0..2`` of a head saved without names, ``B-PER/I-LOC/O``) raises
:class:`LabelOrderError`, which names the checkpoint and its labels.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from metaie_utils.core.errors import UserError

OBI = ("O", "B", "I")
HEAD_NAMES = ("classifier", "score", "classification_head", "output", "out_proj", "head")
_PREFIXED = re.compile(r"^([BI])[-_](.+)$", re.IGNORECASE)


class LabelOrderError(UserError, ValueError):
    """A 3-way token-classification head whose labels are not one B/I/O tag set."""

    def __init__(self, path: str, labels: Sequence[str], reason: str):
        self.path, self.labels = str(path), list(labels)
        super().__init__(
            f"{path}: its 3-way token-classification head has the labels {self.labels} ({reason}); a MetaIE "
            f"tagger needs the tags O, B, I (or O, B-X, I-X with one X). Fix config.json's id2label if the rows "
            f"do mean B/I/O, or start from the plain encoder instead.")


def tag_of(name: Any) -> tuple[str, str] | None:
    """``(tag, suffix)`` of one label name, or ``None`` when it is not a B/I/O spelling.

    >>> tag_of("b"), tag_of(" O "), tag_of("I-SPAN"), tag_of("B_ent"), tag_of("LABEL_0"), tag_of("O-X")
    (('B', ''), ('O', ''), ('I', 'SPAN'), ('B', 'ent'), None, None)
    """
    s = str(name).strip()
    if s.upper() in OBI:
        return s.upper(), ""
    m = _PREFIXED.match(s)
    return (m.group(1).upper(), m.group(2)) if m else None


def _id2label_list(id2label: Mapping[Any, Any] | Sequence[Any]) -> list[str]:
    if isinstance(id2label, Mapping):
        items = sorted(((int(k), str(v)) for k, v in id2label.items()))
        if [k for k, _ in items] != list(range(len(items))):
            raise ValueError(f"id2label keys {[k for k, _ in items]} are not 0..{len(items) - 1}")
        return [v for _, v in items]
    return [str(v) for v in id2label]


def label_permutation(id2label: Mapping[Any, Any] | Sequence[Any], path: str | Path = "<config>") -> list[int]:
    """``perm`` with ``perm[j]`` = the row whose label is ``OBI[j]``; new rows = ``old_rows[perm]``.

    >>> label_permutation({0: "B", 1: "I", 2: "O"})      # the authors' (sorted) order
    [2, 0, 1]
    >>> label_permutation({0: "O", 1: "B", 2: "I"})      # this project's order
    [0, 1, 2]
    >>> label_permutation(["I-SPAN", "O", "B-SPAN"])
    [1, 2, 0]
    >>> label_permutation({0: "PER", 1: "LOC", 2: "ORG"}, "ckpt")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    metaie_utils.models.labels.LabelOrderError: ckpt: its 3-way ... ['PER', 'LOC', 'ORG'] (not B/I/O names: ...
    """
    labels = _id2label_list(id2label)
    if len(labels) != 3:
        raise LabelOrderError(str(path), labels, f"{len(labels)} labels, not 3")
    tags = [tag_of(x) for x in labels]
    bad = [x for x, t in zip(labels, tags) if t is None]
    if bad:
        raise LabelOrderError(str(path), labels, f"not B/I/O names: {bad}")
    names = [t for t, _ in tags]  # type: ignore[misc]
    if sorted(names) != sorted(OBI):
        raise LabelOrderError(str(path), labels, "each of O, B, I must appear exactly once")
    suffix = {t: s for t, s in tags}  # type: ignore[misc]
    if suffix["O"] or suffix["B"] != suffix["I"]:
        raise LabelOrderError(str(path), labels, "B and I must share one type suffix and O must be plain 'O'")
    return [names.index(t) for t in OBI]


def _read_config(path_or_config: Any):
    if hasattr(path_or_config, "id2label"):
        return path_or_config
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(path_or_config))


def is_token_classifier(config) -> bool:
    """The config was saved from a ``*ForTokenClassification`` model."""
    return any(str(a).endswith("ForTokenClassification") for a in (getattr(config, "architectures", None) or []))


def checkpoint_label_order(path_or_config: Any, path: str | Path | None = None) -> list[int] | None:
    """Permutation of the checkpoint's head rows to ``O, B, I``; ``None`` when a fresh head is needed.

    - labels that are a B/I/O set (:func:`tag_of`) -> their permutation (whatever the architecture says);
    - a ``*ForTokenClassification`` checkpoint with 3 labels that are not a B/I/O set -> :class:`LabelOrderError`;
    - anything else (a plain encoder, a tagger with 2 or 9 labels, a sequence classifier) -> ``None``.
    """
    cfg = _read_config(path_or_config)
    where = str(path if path is not None else getattr(cfg, "_name_or_path", "") or path_or_config)
    labels = _id2label_list(getattr(cfg, "id2label", None) or {})
    try:
        return label_permutation(labels, where)
    except LabelOrderError:
        if is_token_classifier(cfg) and len(labels) == 3:
            raise
        return None


def find_head(model, num_labels: int | None = None):
    """``(name, module)`` of the ``nn.Linear`` that outputs the ``num_labels`` logits.

    The only Linear with ``out_features == num_labels``, or, when there are several, the one whose
    last name part is a usual head name (``classifier`` for BERT/RoBERTa/DeBERTa/ModernBERT, ``score``
    for decoder models, ...). Raises ``ValueError`` when none or no single one is found.
    """
    import torch

    n = int(num_labels if num_labels is not None else model.config.num_labels)
    cands = [(k, m) for k, m in model.named_modules() if isinstance(m, torch.nn.Linear) and m.out_features == n]
    if len(cands) > 1:
        named = [(k, m) for k, m in cands if k.rsplit(".", 1)[-1] in HEAD_NAMES]
        cands = named[-1:] if named else cands
    if len(cands) != 1:
        raise ValueError(f"{type(model).__name__}: cannot find the {n}-way output Linear "
                         f"(candidates: {[k for k, _ in cands] or 'none'}).")
    return cands[0]


def permute_head(model, perm: Sequence[int], labels: Sequence[str] = OBI):
    """Reorder the head's output rows in place (``new[j] = old[perm[j]]``) and name them ``labels``."""
    import torch

    perm = [int(p) for p in perm]
    if sorted(perm) != list(range(len(labels))):
        raise ValueError(f"perm {perm} is not a permutation of 0..{len(labels) - 1}")
    _, head = find_head(model, len(perm))
    if perm != list(range(len(perm))):
        idx = torch.tensor(perm, device=head.weight.device)
        with torch.no_grad():
            head.weight.copy_(head.weight.index_select(0, idx).clone())
            if head.bias is not None:
                head.bias.copy_(head.bias.index_select(0, idx).clone())
    model.config.id2label = {i: t for i, t in enumerate(labels)}
    model.config.label2id = {t: i for i, t in enumerate(labels)}
    return model


def _truncate(cfg, num_layers: int, path: str) -> None:
    from metaie_utils.core.params import ParamsError

    if not num_layers:
        return
    n = getattr(cfg, "num_hidden_layers", None)
    if n is None:
        raise ParamsError(f"num_layers = {num_layers}: {path} has no num_hidden_layers to truncate; use 0.")
    if num_layers > n:
        raise ParamsError(f"num_layers = {num_layers} but {path} has only {n} layers; use 0 (all) or <= {n}.")
    cfg.num_hidden_layers = num_layers  # weights of the first k layers load; the rest are dropped


def _from_pretrained_fresh_head(auto_cls: Any, path: str, cfg: Any, **kw: Any):
    """``from_pretrained`` for an encoder that gets a fresh O/B/I head, without transformers' LOAD REPORT table.

    The report lists the newly initialised ``classifier.*`` weights and the unused pooler on every
    few-shot fine-tune of a plain encoder, which is expected; it becomes one debug line here. Weights
    missing *outside* the head (a truncated or mismatched checkpoint) are still a warning, naming them.
    """
    import logging

    # transformers 5 runs its tensor-parallel plan check whenever modeling_utils' level is >= WARNING and logs every
    # "not sharded" layer of a single-device model through its own logger: quiet both for this load
    tlogs = [logging.getLogger(n) for n in ("transformers.modeling_utils", "transformers.distributed.tensor_parallel")]
    old = [t.level for t in tlogs]
    for t in tlogs:
        t.setLevel(logging.ERROR)
    try:
        model, info = auto_cls.from_pretrained(path, config=cfg, ignore_mismatched_sizes=True,
                                               output_loading_info=True, **kw)
    finally:
        for t, lv in zip(tlogs, old):
            t.setLevel(lv)
    head = getattr(model, "base_model_prefix", "") or ""

    def in_head(key: str) -> bool:
        return key.startswith("classifier.") or key.startswith("score.")

    missing = [k for k in info.get("missing_keys", []) or [] if not in_head(k)]
    mism = [k for k in (info.get("mismatched_keys") or []) if not in_head(k[0] if isinstance(k, (tuple, list)) else k)]
    log = logging.getLogger(__name__)
    if missing or mism:
        log.warning("%s: encoder weights newly initialised (not in the checkpoint): %s", path, ", ".join(
            map(str, (missing + mism)[:8])) + (" ..." if len(missing) + len(mism) > 8 else ""))
    log.debug("%s: fresh O/B/I head (%s model); unused checkpoint weights: %s", path, head,
              ", ".join(info.get("unexpected_keys", []) or []) or "none")
    return model


def load_token_classifier(path: str | Path, num_layers: int = 0, **kw: Any):
    """``AutoModelForTokenClassification`` from ``path`` with ``O=0, B=1, I=2``, head rows mapped by name.

    A B/I/O tagger in any label order keeps its trained head (rows permuted); a plain encoder or a
    tagger with another number of labels gets a fresh O/B/I head; a 3-way tagger whose labels are not
    B/I/O raises :class:`LabelOrderError`. ``num_layers=k`` keeps the first k encoder layers
    (:class:`~metaie_utils.params.ParamsError` when the model has fewer or none). ``kw`` go to
    ``from_pretrained`` (e.g. ``dtype``).
    """
    from transformers import AutoConfig, AutoModelForTokenClassification

    path = str(path)
    cfg = AutoConfig.from_pretrained(path)
    perm = checkpoint_label_order(cfg, path)
    if perm is None:  # fresh head: the config names O/B/I, mismatched head weights are dropped
        cfg = AutoConfig.from_pretrained(path, num_labels=len(OBI), id2label=dict(enumerate(OBI)),
                                         label2id={t: i for i, t in enumerate(OBI)})
        _truncate(cfg, num_layers, path)
        model = _from_pretrained_fresh_head(AutoModelForTokenClassification, path, cfg, **kw)
        return permute_head(model, [0, 1, 2])  # checks the head exists; names stay O/B/I
    _truncate(cfg, num_layers, path)
    model = AutoModelForTokenClassification.from_pretrained(path, config=cfg, **kw)
    return permute_head(model, perm)
