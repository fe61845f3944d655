"""Micro precision / recall / F1 for extraction tuples, offset-exact and the authors' string variant.

Two scorers:

- :func:`prf` (the standard one, used for every number we report): each example contributes a SET of
  hashable tuples, e.g. ``(start, end, "Person")`` with word offsets. A prediction is correct when the
  identical tuple is in the gold set of the SAME example. Duplicates inside one example collapse
  (sets), so a model cannot score twice on one gold tuple.
- :func:`string_prf` (the authors' ``SeqLabel-NER-MetaIE-Confidence.ipynb`` evaluation, reproduced for
  comparison only): per sentence, the gold is the LIST of ``(label, span text)`` over all occurrences,
  the prediction the list of ``(label, span text)``; ``tp`` counts predictions whose pair occurs
  anywhere in that sentence's gold list (membership, not one-to-one matching). See
  :func:`string_prf` for how this differs from offset-exact matching.

Both return fractions (0..1 for :func:`prf`; the authors' variant can exceed 1, see below) and define
0/0 as 0.0.

>>> prf([{(0, 2, "Person")}, set()], [{(0, 2, "Person"), (3, 4, "Location")}, set()])["precision"]
0.5
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

__all__ = ["prf", "string_prf", "span_strings", "mean_std", "safe_div"]


def safe_div(num: float, den: float) -> float:
    """``num / den`` with 0/0 (and x/0) defined as 0.0.

    >>> safe_div(1, 2), safe_div(0, 0)
    (0.5, 0.0)
    """
    return float(num) / float(den) if den else 0.0


def _counts_to_prf(tp: int, n_gold: int, n_pred: int) -> dict:
    p = safe_div(tp, n_pred)
    r = safe_div(tp, n_gold)
    f = safe_div(2 * p * r, p + r)
    return {"precision": p, "recall": r, "f1": f, "tp": int(tp), "n_gold": int(n_gold), "n_pred": int(n_pred)}


def _check_lengths(gold: Sequence, pred: Sequence) -> None:
    if len(gold) != len(pred):
        raise ValueError(
            f"gold has {len(gold)} examples but pred has {len(pred)}: pass one collection of tuples per "
            f"example to both, in the same order (an example without predictions gets an empty set)."
        )


def prf(gold: Sequence[Iterable[Hashable]], pred: Sequence[Iterable[Hashable]]) -> dict:
    """Micro P/R/F1 over per-example sets of tuples (offset-exact when the tuples hold offsets).

    ``gold[i]`` and ``pred[i]`` are iterables of hashable tuples of example ``i``; each is turned into a
    set, so duplicates count once. ``tp = sum |gold_i & pred_i|``.

    Returns ``{"precision", "recall", "f1", "tp", "n_gold", "n_pred"}`` (fractions 0..1; 0/0 -> 0.0).

    >>> gold = [{(0, 2, "PER"), (5, 6, "LOC")}, {(1, 2, "ORG")}]
    >>> pred = [{(0, 2, "PER"), (5, 7, "LOC")}, set()]       # one hit, one boundary error, one miss
    >>> r = prf(gold, pred)
    >>> (r["tp"], r["n_gold"], r["n_pred"], round(r["precision"], 3), round(r["recall"], 3), round(r["f1"], 3))
    (1, 3, 2, 0.5, 0.333, 0.4)
    >>> prf([set()], [set()])["f1"]
    0.0
    """
    _check_lengths(gold, pred)
    tp = n_gold = n_pred = 0
    for g, p in zip(gold, pred):
        gs, ps = set(g), set(p)
        tp += len(gs & ps)
        n_gold += len(gs)
        n_pred += len(ps)
    return _counts_to_prf(tp, n_gold, n_pred)


def string_prf(gold: Sequence[Iterable[Hashable]], pred: Sequence[Iterable[Hashable]]) -> dict:
    """The authors' string-match P/R/F1 over per-sentence collections of ``(label, span text)``.

    Reproduces the counting of the authors' evaluation notebook (``KomeijiForce/MetaIE``,
    ``SeqLabel-NER-MetaIE-Confidence.ipynb``), where per sentence ``REF`` and ``PRED`` are Python LISTS:

    - ``n_gold += len(gold_i)``: every gold occurrence counts, so a name that occurs twice in a sentence
      is two gold items with the same string;
    - ``n_pred += len(pred_i)``;
    - ``tp += number of items of pred_i that are ``in`` gold_i`` (membership, not one-to-one matching).

    Differences from offset-exact :func:`prf` (why our headline numbers use :func:`prf`):

    1. Positions are ignored: predicting "Paris" at the wrong one of two occurrences is a hit.
    2. Repeated strings: one prediction of a string that occurs twice gives tp=1 of n_gold=2 (as with
       offsets), but two predictions (e.g. both occurrences, which the authors keep as separate items when
       their confidences differ) of a string that occurs ONCE in the gold both count as hits, so tp can
       exceed the number of distinct gold matches (precision is inflated; tp may even exceed n_gold).
    3. Pass lists, not sets, to reproduce the authors' duplicates; sets give a deduplicated variant.

    The authors build the span text as the detokenized sub-word span (for RoBERTa, the words joined by
    single spaces) and drop predicted strings whose words do not occur in the input; use
    ``" ".join(words[s:e])`` to build strings from word offsets. Conflicting labels on the same string
    were resolved before counting (higher confidence wins), which is decoding, not scoring.

    >>> gold = [[("Location", "Paris"), ("Location", "Paris")], [("Person", "Tom")]]
    >>> pred = [[("Location", "Paris")], [("Person", "Tom"), ("Person", "Tom")]]
    >>> r = string_prf(gold, pred)
    >>> (r["tp"], r["n_gold"], r["n_pred"])
    (3, 3, 3)
    """
    _check_lengths(gold, pred)
    tp = n_gold = n_pred = 0
    for g, p in zip(gold, pred):
        gl, pl = list(g), list(p)
        gset = set(gl)
        n_gold += len(gl)
        n_pred += len(pl)
        tp += sum(1 for x in pl if x in gset)
    return _counts_to_prf(tp, n_gold, n_pred)


def span_strings(tokens: Sequence[str], spans: Iterable[tuple]) -> list[tuple[str, str]]:
    """``(start, end, label)`` word spans of one sentence -> the authors' ``(label, span text)`` items
    for :func:`string_prf` (words joined by single spaces, as their RoBERTa decoding gives). Extra tuple
    fields after the label are ignored; order and duplicates are kept.

    >>> span_strings(["Paris", "is", "not", "Paris"], [(0, 1, "LOC"), (3, 4, "LOC")])
    [('LOC', 'Paris'), ('LOC', 'Paris')]
    """
    return [(str(sp[2]), " ".join(tokens[sp[0]:sp[1]])) for sp in spans]


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0.0 for one value) of a list of scores.

    >>> m, s = mean_std([0.5, 0.7]); round(m, 4), round(s, 4)
    (0.6, 0.1414)
    >>> mean_std([0.3])
    (0.3, 0.0)
    """
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("mean_std() got no values: pass the per-seed scores (at least one).")
    m = sum(vals) / len(vals)
    if len(vals) == 1:
        return m, 0.0
    var = sum((v - m) ** 2 for v in vals) / (len(vals) - 1)
    return m, math.sqrt(var)


def aggregate_scores(scores: Any, metric: str = "f1", group: str = "label") -> Any:
    """Mean and std of ``metric`` per (task, initialization, ``group``) over points that differ only in seed.

    One point per group keeps the 05 run's own std (over its few-shot seeds); several take the sample
    std over points. Other numeric point columns (n_params, n_sentences, ...) keep their mean.
    """
    import pandas as pd

    from metaie_utils.core.metrics import mean_std

    if metric not in scores:
        raise KeyError(f"metric {metric!r} is not in the sweep scores; columns: {list(scores.columns)}")
    rows = []
    for (task, init, g), d in scores.groupby(["task", "initialization", group], sort=False, dropna=False):
        vals = d[metric].astype(float).tolist()
        m, s = mean_std(vals)
        if len(vals) == 1 and f"{metric}_std" in d:
            s = float(d[f"{metric}_std"].iloc[0]) if pd.notna(d[f"{metric}_std"].iloc[0]) else 0.0
        row = {"task": task, "initialization": init, group: g, "mean": m, "std": s, "n_points": len(vals)}
        for c in ("n_params", "n_sentences", "n_instances"):
            if c in d:
                v = pd.to_numeric(d[c], errors="coerce")
                row[c] = float(v.mean()) if v.notna().any() else None
        rows.append(row)
    return pd.DataFrame(rows)


def data_size_curve(scores: Any, metric: str = "f1") -> Any:
    """Scores of a data-size sweep -> ``(task, n_sentences, mean, std)`` rows for the curve.

    The metaie initialization of each point sits at its distilled-sentence count (stage 03's
    ``sentences``); the vanilla initialization (no meta-training, the same few-shot protocol and seeds)
    is the point at 0 sentences, averaged over the points' identical vanilla runs.
    """
    import pandas as pd

    if scores is None or len(scores) == 0:
        return pd.DataFrame(columns=["task", "n_sentences", "mean", "std", "initialization"])
    agg = aggregate_scores(scores, metric)
    meta = agg[agg["initialization"] != "vanilla"].copy()
    van = agg[agg["initialization"] == "vanilla"]
    rows = [meta]
    if len(van):
        v = van.groupby("task", sort=False).agg(mean=("mean", "mean"), std=("std", "mean")).reset_index()
        v["n_sentences"], v["initialization"], v["label"] = 0.0, "vanilla", "0 (vanilla)"
        rows.append(v)
    out = pd.concat(rows, ignore_index=True)
    return out.sort_values(["task", "initialization", "n_sentences"]).reset_index(drop=True)


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
