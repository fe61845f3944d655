"""Paired uncertainty for few-shot results: per-sentence counts, micro F1 and a paired bootstrap.

The few-shot protocol (stage 05) scores every initialization on the SAME test sentences, and the
support set of seed ``s`` is the same for every initialization, so "MetaIE minus baseline" is a paired
comparison. Uncertainty comes from two sources: which test sentences were drawn and which support set
(seed) was drawn. :func:`paired_bootstrap` resamples both, with the same indices for both systems.

Per-sentence counts live in ``RUN_DIR/counts.jsonl``, one JSON object per line and per
(dataset, subtask, initialization, seed)::

    {"dataset": "conll2003", "subtask": "entity", "initialization": "metaie", "seed": 1,
     "test_ids": ["test-17", ...], "counts": [[tp, n_pred, n_gold], ...]}

``counts[i]`` belongs to ``test_ids[i]``, in test-sentence order; summed over sentences they equal the
``tp``, ``n_pred`` and ``n_gold`` of the matching ``results.csv`` row. Lines are appended one at a time
(:func:`append_counts`); when a key occurs twice (a resumed run), the last line wins.

Micro F1 from counts is ``2 tp / (n_pred + n_gold)`` (0 when that is 0/0), which equals the harmonic
mean of micro precision and recall of :func:`metaie_utils.metrics.prf`.

This module depends only on numpy, pandas and the standard library.

>>> example_counts([{(0, 1, "PER"), (2, 3, "LOC")}], [{(0, 1, "PER"), (0, 1, "PER"), (4, 5, "ORG")}])
[(1, 2, 2)]
>>> round(micro_f1([[1, 2, 2], [0, 0, 1]]), 4)
0.4
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "COUNT_FIELDS",
    "append_counts",
    "counts_record",
    "counts_records",
    "example_counts",
    "format_table",
    "micro_f1",
    "paired_bootstrap",
    "read_counts",
    "summary_table",
]

COUNT_FIELDS = ("tp", "n_pred", "n_gold")  # the order of the three numbers of each sentence
RECORD_KEYS = ("dataset", "subtask", "initialization", "seed")
# Display order of initializations (the same names as metaie_utils.fewshot.INITIALIZATIONS).
_INIT_ORDER = ("vanilla", "metaie", "ner-distill", "multiie", "llm-icl")


# --------------------------------------------------------------------------------------------------
# Per-sentence counts and counts.jsonl
# --------------------------------------------------------------------------------------------------


def example_counts(gold_list: Sequence[Iterable[Hashable]], pred_list: Sequence[Iterable[Hashable]]) -> list[tuple[int, int, int]]:
    """Per example ``(tp, n_pred, n_gold)`` over sets of hashable tuples (duplicates count once, as in
    :func:`metaie_utils.metrics.prf`; summing the triples gives prf's counts).

    >>> example_counts([{(0, 2, "P")}, set()], [[(0, 2, "P"), (0, 2, "P")], [(1, 2, "L")]])
    [(1, 1, 1), (0, 1, 0)]
    """
    if len(gold_list) != len(pred_list):
        raise ValueError(
            f"gold has {len(gold_list)} examples but pred has {len(pred_list)}: pass one collection of tuples "
            f"per example to both, in the same order (an example without predictions gets an empty set)."
        )
    out = []
    for g, p in zip(gold_list, pred_list):
        gs, ps = set(g), set(p)
        out.append((len(gs & ps), len(ps), len(gs)))
    return out


def _seed_key(seed: Any) -> str:
    """Seeds compare as strings of integers: 1, "1" and 1.0 are the same seed."""
    try:
        f = float(seed)
    except (TypeError, ValueError):
        return str(seed)
    return str(int(f)) if f.is_integer() else str(seed)


def _check_counts(counts: Any, where: str) -> np.ndarray:
    arr = np.asarray(counts, dtype=np.int64) if len(counts) else np.zeros((0, 3), dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"{where}: counts must be a list of [tp, n_pred, n_gold] triples, got shape {arr.shape}.")
    if (arr < 0).any() or (arr[:, 0] > np.minimum(arr[:, 1], arr[:, 2])).any():
        bad = int(np.flatnonzero((arr < 0).any(1) | (arr[:, 0] > np.minimum(arr[:, 1], arr[:, 2])))[0])
        raise ValueError(f"{where}: sentence {bad} has counts {arr[bad].tolist()}; need 0 <= tp <= min(n_pred, n_gold).")
    return arr


def counts_record(dataset: str, subtask: str, initialization: str, seed: int | str,
                  test_ids: Sequence[Any], counts: Sequence[Sequence[int]]) -> dict[str, Any]:
    """One line of counts.jsonl (validated): ``counts[i] = (tp, n_pred, n_gold)`` of ``test_ids[i]``.

    >>> counts_record("d", "entity", "metaie", 1, ["a", "b"], [(1, 1, 2), (0, 0, 0)])["counts"]
    [[1, 1, 2], [0, 0, 0]]
    """
    where = f"counts of {dataset}/{subtask}/{initialization}/seed {seed}"
    if len(test_ids) != len(counts):
        raise ValueError(f"{where}: {len(test_ids)} test ids but {len(counts)} count triples; pass one per test sentence.")
    arr = _check_counts(list(counts), where)
    try:
        seed_val: int | str = int(seed)
    except (TypeError, ValueError):
        seed_val = str(seed)
    return {"dataset": str(dataset), "subtask": str(subtask), "initialization": str(initialization), "seed": seed_val,
            "test_ids": [str(i) for i in test_ids], "counts": arr.tolist()}


def counts_records(dataset: str, initialization: str, seed: int | str, test_ids: Sequence[Any],
                   gold_list: Sequence[Mapping[str, Iterable[Hashable]]], pred_list: Sequence[Mapping[str, Iterable[Hashable]]],
                   subtasks: Iterable[str]) -> list[dict[str, Any]]:
    """One record per sub-task from per-example ``{subtask: set of tuples}`` dicts (what
    :func:`metaie_utils.tasks.score` takes); a missing sub-task key is an empty set.

    >>> recs = counts_records("d", "metaie", 0, ["s1"], [{"entity": {(0, 1, "P")}}], [{"entity": set()}], ["entity"])
    >>> recs[0]["subtask"], recs[0]["counts"]
    ('entity', [[0, 0, 1]])
    """
    out = []
    for sub in subtasks:
        c = example_counts([g.get(sub, set()) for g in gold_list], [p.get(sub, set()) for p in pred_list])
        out.append(counts_record(dataset, sub, initialization, seed, test_ids, c))
    return out


def append_counts(path: str | Path, record: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> Path:
    """Append one record (or several) to counts.jsonl, flushed and fsynced right away.

    Crash-safe: each record is one line; a torn last line left by a crash is ended with a newline first
    (and skipped by :func:`read_counts`), so it never corrupts the next record.
    """
    path = Path(path)
    recs = [record] if isinstance(record, Mapping) else list(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    torn = False
    if path.is_file() and path.stat().st_size > 0:
        with path.open("rb") as f:
            f.seek(-1, os.SEEK_END)
            torn = f.read(1) != b"\n"
    with path.open("a", encoding="utf-8") as f:
        if torn:
            f.write("\n")
        for r in recs:
            missing = [k for k in (*RECORD_KEYS, "test_ids", "counts") if k not in r]
            if missing:
                raise ValueError(f"counts record lacks {missing}; build it with counts_record().")
            f.write(json.dumps(dict(r), ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return path


def read_counts(path: str | Path) -> list[dict[str, Any]]:
    """Records of counts.jsonl, or of its gzip'd copy ``counts.jsonl.gz`` (kept results, e.g. docs/results/cpu),
    ([] when neither exists). Unreadable lines (a torn last line) are skipped; when a (dataset, subtask,
    initialization, seed) occurs twice, the last record wins."""
    import gzip

    path = Path(path)
    gz = path.with_name(path.name + ".gz")
    if not path.is_file() and not gz.is_file():
        return []
    by_key: dict[tuple, dict] = {}
    with (path.open(encoding="utf-8") if path.is_file() else gzip.open(gz, "rt", encoding="utf-8")) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(r, dict) or any(k not in r for k in (*RECORD_KEYS, "test_ids", "counts")):
                continue
            key = (str(r["dataset"]), str(r["subtask"]), str(r["initialization"]), _seed_key(r["seed"]))
            by_key.pop(key, None)  # keep file order of the surviving (last) records
            by_key[key] = r
    return list(by_key.values())


# --------------------------------------------------------------------------------------------------
# F1 and the paired bootstrap
# --------------------------------------------------------------------------------------------------


def _f1_from_sums(tp: np.ndarray, n_pred: np.ndarray, n_gold: np.ndarray) -> np.ndarray:
    den = n_pred + n_gold
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, 2.0 * tp / np.where(den > 0, den, 1), 0.0)


def micro_f1(counts_array: Any) -> float | np.ndarray:
    """Micro F1 (fraction) of ``(..., n_sentences, 3)`` counts ``[tp, n_pred, n_gold]``, summed over
    sentences: a float for one set of sentences, an array for stacked ones (e.g. one F1 per seed).

    >>> micro_f1([[1, 2, 2]]), micro_f1([[0, 0, 0]])
    (0.5, 0.0)
    >>> micro_f1([[[1, 1, 1]], [[0, 1, 1]]]).tolist()
    [1.0, 0.0]
    """
    arr = np.asarray(counts_array, dtype=np.float64)
    if arr.ndim < 2 or arr.shape[-1] != 3:
        raise ValueError(f"micro_f1 needs (..., n_sentences, 3) counts [tp, n_pred, n_gold], got shape {arr.shape}.")
    s = arr.sum(axis=-2)
    f = _f1_from_sums(s[..., 0], s[..., 1], s[..., 2])
    return float(f) if f.ndim == 0 else f


def _as_3d(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]  # one seed
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"{name} must be (n_seeds, n_sentences, 3) counts [tp, n_pred, n_gold], got shape {arr.shape}.")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} has {arr.shape[0]} seeds and {arr.shape[1]} sentences: need at least one of each.")
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ValueError(f"{name} holds negative or non-finite counts.")
    return arr


def _first_difference(x: Sequence, y: Sequence) -> str:
    for i, (u, v) in enumerate(zip(x, y)):
        if u != v:
            return f"position {i}: {u!r} vs {v!r}"
    return f"lengths {len(x)} vs {len(y)}"


def paired_bootstrap(a: Any, b: Any, n_boot: int = 2000, seed: int = 0, level: float = 0.95, *,
                     ids_a: Sequence | None = None, ids_b: Sequence | None = None,
                     seeds_a: Sequence | None = None, seeds_b: Sequence | None = None) -> dict[str, Any]:
    """Paired bootstrap of ``F1(a) - F1(b)`` over test sentences and seeds (F1 as fractions).

    ``a`` and ``b`` are ``(n_seeds, n_sentences, 3)`` counts ``[tp, n_pred, n_gold]`` paired by seed
    (same support set) and sentence (same test sentence); a 2-D ``(n_sentences, 3)`` array is one seed.
    Each replicate draws seed indices and sentence indices with replacement, THE SAME for ``a`` and
    ``b`` (and the same sentence draw for every seed, since every seed is scored on the same sentences),
    computes each drawn seed's micro F1 on the drawn sentences, averages over the drawn seeds and takes
    ``a - b``. With one seed only sentences are resampled.

    Returns ``{"diff", "lo", "hi", "p", "n_boot", "n_seeds", "n_sentences", "level"}``: ``diff`` is the
    point estimate on the full data (mean over seeds of the per-seed F1 difference), ``lo``/``hi`` the
    percentile interval at ``level``, ``p`` the two-sided bootstrap p-value: twice the share of
    replicates on the other side of 0 from ``diff`` (ties with 0 count as the other side; capped at 1;
    1.0 when ``diff`` is 0; 0.0 means below ``1 / n_boot``).

    ``ids_a``/``ids_b`` (test sentence ids) and ``seeds_a``/``seeds_b``, when given, must be equal:
    otherwise a ValueError says what differs.

    >>> a = [[[1, 1, 1]] * 50]; r = paired_bootstrap(a, a, n_boot=200)
    >>> (r["diff"], r["lo"], r["hi"], r["p"])
    (0.0, 0.0, 0.0, 1.0)
    """
    if ids_a is not None and ids_b is not None and list(map(str, ids_a)) != list(map(str, ids_b)):
        raise ValueError(f"the test sentence ids of a and b differ ({len(ids_a)} vs {len(ids_b)} ids; first difference at "
                         f"{_first_difference(list(map(str, ids_a)), list(map(str, ids_b)))}): a paired bootstrap needs "
                         f"both systems scored on the same sentences in the same order.")
    if seeds_a is not None and seeds_b is not None and list(map(_seed_key, seeds_a)) != list(map(_seed_key, seeds_b)):
        raise ValueError(f"the seeds of a {list(seeds_a)} and b {list(seeds_b)} differ: a paired bootstrap needs the same "
                         f"support sets (seeds) in the same order for both systems.")
    A, B = _as_3d(a, "a"), _as_3d(b, "b")
    if A.shape != B.shape:
        raise ValueError(f"a has {A.shape[0]} seeds x {A.shape[1]} sentences but b has {B.shape[0]} seeds x "
                         f"{B.shape[1]} sentences: pairing needs the same seeds and test sentences for both.")
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}.")
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}.")
    n_boot = int(n_boot)
    S, N, _ = A.shape
    diff = float(np.mean(micro_f1(A) - micro_f1(B)))

    # (N, S*3) per system; a replicate's per-seed sums are (sentence multiplicities) @ counts.
    AB = np.concatenate([A.transpose(1, 0, 2).reshape(N, S * 3), B.transpose(1, 0, 2).reshape(N, S * 3)], axis=1)
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, 4_000_000 // max(N, 1)))
    reps = np.empty(n_boot, dtype=np.float64)
    for start in range(0, n_boot, chunk):
        c = min(chunk, n_boot - start)
        idx = rng.integers(0, N, size=(c, N))
        w = np.bincount((idx + (np.arange(c) * N)[:, None]).ravel(), minlength=c * N).reshape(c, N)
        sums = (w.astype(np.float64) @ AB).reshape(c, 2, S, 3)
        f = _f1_from_sums(sums[..., 0], sums[..., 1], sums[..., 2])  # (c, 2, S)
        if S > 1:
            sidx = rng.integers(0, S, size=(c, S))
            fa = np.take_along_axis(f[:, 0], sidx, axis=1).mean(1)
            fb = np.take_along_axis(f[:, 1], sidx, axis=1).mean(1)
        else:
            fa, fb = f[:, 0, 0], f[:, 1, 0]
        reps[start:start + c] = fa - fb
    alpha = (1.0 - float(level)) / 2.0
    lo, hi = np.quantile(reps, [alpha, 1.0 - alpha])
    if diff > 0:
        p = min(1.0, 2.0 * float(np.mean(reps <= 0)))
    elif diff < 0:
        p = min(1.0, 2.0 * float(np.mean(reps >= 0)))
    else:
        p = 1.0
    return {"diff": diff, "lo": float(lo), "hi": float(hi), "p": p, "n_boot": n_boot,
            "n_seeds": int(S), "n_sentences": int(N), "level": float(level)}


# --------------------------------------------------------------------------------------------------
# The summary table
# --------------------------------------------------------------------------------------------------

SUMMARY_COLUMNS = [
    "dataset", "subtask", "initialization", "n_seeds", "f1", "f1_std", "n_pred", "n_test", "reference",
    "diff", "diff_lo", "diff_hi", "level", "p", "n_boot", "n_paired_seeds", "n_sentences", "n_collapsed", "note",
]


def _num(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v


def _mean_std(vals: Sequence[float]) -> tuple[float, float]:
    v = np.asarray(vals, dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def _seed_sort(keys: Iterable[str]) -> list[str]:
    return sorted(keys, key=lambda k: (0, int(k), "") if k.lstrip("-").isdigit() else (1, 0, k))


def _pair(ref: str, init: str, ref_seeds: list[str], base_seeds: list[str], counts: dict, results: dict,
          group: tuple[str, str]) -> tuple[np.ndarray | None, np.ndarray | None, list[str], int, str]:
    """Counts arrays (n_seeds, n_sentences, 3) of ``ref`` and ``init`` aligned by seed and test id, the
    seeds used, the sentences used and a note (arrays None when there is nothing to pair)."""
    ds, sub = group
    notes = []
    common = [s for s in ref_seeds if s in set(base_seeds)]
    if not common:
        return None, None, [], 0, f"seeds do not pair ({ref}: {ref_seeds}, {init}: {base_seeds})"
    if len(common) < max(len(ref_seeds), len(base_seeds)):
        notes.append(f"paired on seeds {common} only ({ref}: {ref_seeds}, {init}: {base_seeds})")
    lacking = [f"{name} seed {s}" for s in common for name in (ref, init) if (ds, sub, name, s) not in counts]
    usable = [s for s in common if (ds, sub, ref, s) in counts and (ds, sub, init, s) in counts]
    if not usable:
        return None, None, [], 0, f"no counts.jsonl records for {', '.join(lacking)}"
    if lacking:
        notes.append(f"no counts for {', '.join(lacking)}; paired on seeds {usable}")
    # counts must add up to the results.csv rows, else counts.jsonl belongs to another run
    for s in usable:
        for name in (ref, init):
            rec, row = counts[(ds, sub, name, s)], results.get((ds, sub, name, s), {})
            tot = np.asarray(rec["counts"], dtype=np.int64).reshape(-1, 3).sum(0)
            want = [_num(row.get(k)) for k in COUNT_FIELDS]
            if all(not math.isnan(w) for w in want) and [int(t) for t in tot] != [int(w) for w in want]:
                return None, None, usable, 0, (f"counts.jsonl totals {dict(zip(COUNT_FIELDS, tot.tolist()))} of {name} "
                                               f"seed {s} differ from results.csv {dict(zip(COUNT_FIELDS, map(int, want)))}")
    id_lists = [[str(i) for i in counts[(ds, sub, name, s)]["test_ids"]] for s in usable for name in (ref, init)]
    first = id_lists[0]
    if all(ids == first for ids in id_lists):
        keep, realign = first, False
    else:
        if any(len(set(ids)) != len(ids) for ids in id_lists):
            return None, None, usable, 0, "test ids differ between records and repeat within one: cannot align sentences"
        shared = set(first).intersection(*map(set, id_lists[1:]))
        keep = [i for i in first if i in shared]
        if not keep:
            return None, None, usable, 0, f"{ref} and {init} were scored on no common test sentence"
        realign = True
        notes.append(f"paired on the {len(keep)} test sentences all records share "
                     f"(of {min(map(len, id_lists))}-{max(map(len, id_lists))})")

    def stack(name: str) -> np.ndarray:
        out = []
        for s in usable:
            rec = counts[(ds, sub, name, s)]
            arr = np.asarray(rec["counts"], dtype=np.int64).reshape(-1, 3)
            if realign:
                pos = {str(t): k for k, t in enumerate(rec["test_ids"])}
                arr = arr[[pos[i] for i in keep]]
            out.append(arr)
        return np.stack(out)

    return stack(ref), stack(init), usable, len(keep), "; ".join(notes)


def summary_table(results_rows: Any, counts_records: Iterable[Mapping[str, Any]] | None, reference: str = "metaie",
                  baselines: Sequence[str] | None = None, n_boot: int = 2000, seed: int = 0, level: float = 0.95):
    """One row per dataset x sub-task x initialization: F1 mean and std over seeds (percent, sample std,
    0 for one seed), ``n_seeds``, mean ``n_pred`` and, for every initialization but ``reference``, the
    paired difference ``reference - initialization`` (percentage points) with its ``level`` bootstrap CI
    (:func:`paired_bootstrap`) and p.

    ``results_rows``: rows of results.csv (dicts or a DataFrame); ``counts_records``: records of
    counts.jsonl (:func:`read_counts`). ``baselines`` (default: every other initialization present)
    selects the rows besides the reference. The difference is NaN with a ``note`` when counts are
    missing, seeds do not pair, the sentences do not overlap, or the counts disagree with results.csv.
    Only seeds present for both (with counts) are paired; only test sentences present in every paired
    record are used (e.g. llm-icl's smaller test subset), and the note says so.
    """
    import pandas as pd

    df = results_rows.copy() if isinstance(results_rows, pd.DataFrame) else pd.DataFrame(list(results_rows))
    if df.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    missing = [c for c in ("dataset", "subtask", "initialization", "seed", "f1") if c not in df.columns]
    if missing:
        raise ValueError(f"results rows lack the columns {missing} (a results.csv of stage 05 has them).")
    for c in ("dataset", "subtask", "initialization"):
        df[c] = df[c].astype(str)
    df["seed"] = df["seed"].map(_seed_key)
    for c in ("f1", *COUNT_FIELDS, "n_test"):
        if c in df.columns:
            df[c] = pd.to_numeric(df[c], errors="coerce")
    df = df.dropna(subset=["f1"]).drop_duplicates(subset=["dataset", "subtask", "initialization", "seed"], keep="last")

    counts: dict[tuple, Mapping] = {}
    for r in counts_records or []:
        counts[(str(r["dataset"]), str(r["subtask"]), str(r["initialization"]), _seed_key(r["seed"]))] = r
    results = {(r["dataset"], r["subtask"], r["initialization"], r["seed"]): r for r in df.to_dict("records")}

    present = list(dict.fromkeys(df["initialization"]))
    if baselines is None:
        others = [i for i in _INIT_ORDER if i in present and i != reference] + \
                 [i for i in present if i not in _INIT_ORDER and i != reference]
    else:
        others = [b for b in dict.fromkeys(baselines) if b != reference]
    wanted = [reference, *others]

    out = []
    for (ds, sub), g in df.groupby(["dataset", "subtask"], sort=False):
        seeds_of = {i: _seed_sort(gi["seed"]) for i, gi in g.groupby("initialization", sort=False)}
        for init in wanted:
            gi = g[g["initialization"] == init]
            if gi.empty and init == reference:
                continue
            m, s = _mean_std(gi["f1"].tolist())
            row: dict[str, Any] = {
                "dataset": ds, "subtask": sub, "initialization": init, "n_seeds": len(gi),
                "f1": 100 * m, "f1_std": 100 * s,
                "n_pred": float(gi["n_pred"].mean()) if "n_pred" in gi and len(gi) else math.nan,
                "n_test": float(gi["n_test"].iloc[0]) if "n_test" in gi and len(gi) else math.nan,
                "reference": reference, "diff": math.nan, "diff_lo": math.nan, "diff_hi": math.nan, "level": float(level),
                "p": math.nan,
                "n_boot": 0, "n_paired_seeds": 0, "n_sentences": 0,
                # fine-tunes flagged by the few-shot loop (nothing predicted on the support or the test sentences)
                "n_collapsed": int(gi["collapsed"].fillna("").astype(str).str.strip().ne("").sum()) if "collapsed" in gi else 0,
                "note": "",
            }
            if init == reference:
                row["note"] = "reference"
            elif gi.empty:
                row["note"] = f"no results for {init}"
            elif reference not in seeds_of:
                row["note"] = f"no {reference} results to compare with"
            else:
                A, B, _, _, note = _pair(reference, init, seeds_of[reference], seeds_of[init], counts, results, (ds, sub))
                row["note"] = note
                if A is not None:
                    bs = paired_bootstrap(A, B, n_boot=n_boot, seed=seed, level=level)
                    row.update(diff=100 * bs["diff"], diff_lo=100 * bs["lo"], diff_hi=100 * bs["hi"], p=bs["p"],
                               n_boot=bs["n_boot"], n_paired_seeds=bs["n_seeds"], n_sentences=bs["n_sentences"])
            out.append(row)
    return pd.DataFrame(out, columns=SUMMARY_COLUMNS)


def _f1_cell(r: Mapping) -> str:
    """"39.5 ± 4.0", "39.5" for one seed (no spread to show), with "(collapsed 1/3)" when fine-tunes collapsed."""
    if math.isnan(r["f1"]):
        return ""
    c = int(r.get("n_collapsed") or 0)
    std = f" ± {r['f1_std']:.1f}" if int(r.get("n_seeds") or 0) > 1 else ""
    return f"{r['f1']:.1f}{std}" + (f" (collapsed {c}/{r['n_seeds']})" if c else "")


def markdown_table(df: Any) -> str:
    """The :func:`summary_table` as one markdown row per (dataset, sub-task): F1 mean ± std per initialization
    (the reference first), then ``reference − baseline [95% CI]`` per baseline, in bold where the interval
    excludes 0. Collapsed fine-tunes are counted next to the F1 ("collapsed 2/3").

    >>> import pandas as pd
    >>> df = pd.DataFrame([dict(dataset="d", subtask="e", initialization="metaie", reference="metaie", f1=40.0,
    ...                         f1_std=2.0, n_seeds=3, diff=float("nan"), diff_lo=float("nan"), diff_hi=float("nan")),
    ...                    dict(dataset="d", subtask="e", initialization="vanilla", reference="metaie", f1=30.0,
    ...                         f1_std=5.0, n_seeds=3, diff=10.0, diff_lo=4.0, diff_hi=16.0)])
    >>> print(markdown_table(df))
    | dataset | sub-task | metaie | vanilla | metaie − vanilla [95% CI] |
    |---|---|---|---|---|
    | d | e | 40.0 ± 2.0 | 30.0 ± 5.0 | **+10.0 [+4.0, +16.0]** |
    """
    if df is None or len(df) == 0:
        return "(no results)"
    ref = str(df["reference"].iloc[0])
    inits = [ref] + [i for i in dict.fromkeys(df["initialization"]) if i != ref]
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for r in df.to_dict("records"):
        cells.setdefault((r["dataset"], r["subtask"]), {})[r["initialization"]] = r

    def f1(r: Mapping | None) -> str:
        return "" if r is None else _f1_cell(r)

    def ci(r: Mapping | None) -> str:
        if r is None or math.isnan(r["diff"]):
            return ""
        t = f"{r['diff']:+.1f} [{r['diff_lo']:+.1f}, {r['diff_hi']:+.1f}]"
        return f"**{t}**" if r["diff_lo"] > 0 or r["diff_hi"] < 0 else t

    head = ["dataset", "sub-task", *inits, *(f"{ref} − {b} [95% CI]" for b in inits[1:])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (d, st), by in cells.items():
        row = [d, st, *(f1(by.get(i)) for i in inits), *(ci(by.get(b)) for b in inits[1:])]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def format_table(df: Any) -> str:
    """The :func:`summary_table` as printable text: "39.5 ± 4.0" and "+8.1 [+2.0, +14.3]" (percent)."""
    import pandas as pd

    if df is None or len(df) == 0:
        return "(no results)"
    ref = str(df["reference"].iloc[0]) if "reference" in df.columns and len(df) else "reference"

    def pval(p: float, n: int) -> str:
        if isinstance(p, float) and math.isnan(p):
            return ""
        return f"<{1 / n:.2g}" if p == 0 and n else f"{p:.3f}"

    def ci(r: Mapping) -> str:
        if math.isnan(r["diff"]):
            return "n/a" if r["initialization"] != r.get("reference", ref) else ""
        return f"{r['diff']:+.1f} [{r['diff_lo']:+.1f}, {r['diff_hi']:+.1f}]"

    level = float(df["level"].iloc[0]) if "level" in df.columns else 0.95
    ci_col = f"{ref} − init [{100 * level:g}% CI]"
    rows = []
    for r in df.to_dict("records"):
        f1 = _f1_cell(r)
        rows.append({"dataset": r["dataset"], "subtask": r["subtask"], "initialization": r["initialization"],
                     "F1 % (mean ± std)": f1, "seeds": r["n_seeds"], ci_col: ci(r),
                     "p": pval(r["p"], int(r.get("n_boot", 0) or 0)), "note": r.get("note", "")})
    t = pd.DataFrame(rows)
    with pd.option_context("display.max_colwidth", 80, "display.width", 200):
        return t.to_string(index=False)
