"""Figures of stages 01 and 02: sentence lengths, label lines per response, throughput, token usage.

Each function takes plain data and returns a matplotlib Figure (``plots.save(fig, run.path("x.png"))``).

>>> fig = sentence_lengths([5, 7, 12, 30])          # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Sequence

import matplotlib.pyplot as plt
import seaborn as sns


def sentence_lengths(lengths: Sequence[int], title: str = "Sampled sentence lengths"):
    """Histogram of words per sentence."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    sns.histplot(list(lengths), bins=min(30, max(1, len(set(lengths)))), ax=ax, color="#4c72b0")
    ax.set(xlabel="words per sentence", ylabel="sentences", title=f"{title} (n={len(lengths)})")
    fig.tight_layout()
    return fig


def label_counts(counts: Sequence[int], title: str = "Label lines per response"):
    """Bar chart of how many ``- <label>: <span>`` lines each response has (0 = unparsable)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    values = list(counts)
    if values:
        top = max(values)
        freq = [sum(1 for v in values if v == k) for k in range(top + 1)]
        sns.barplot(x=list(range(top + 1)), y=freq, ax=ax, color="#55a868")
    ax.set(xlabel="parsable label lines", ylabel="responses", title=f"{title} (n={len(values)})")
    fig.tight_layout()
    return fig


def throughput(finished_at: Sequence[float], cached: Sequence[bool] | None = None, title: str = "Responses over time"):
    """Cumulative finished responses against seconds since the start (cached ones marked apart)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    cached = list(cached) if cached is not None else [False] * len(finished_at)
    fresh = sorted(t for t, c in zip(finished_at, cached) if not c)
    if fresh:
        ax.step([0.0, *fresh], range(len(fresh) + 1), where="post", label="fresh")
        span = max(fresh[-1], 1e-9)
        ax.set_title(f"{title}: {len(fresh) / span:.2f} responses/s")
    else:
        ax.set_title(f"{title}: no fresh requests (all cached)")
    n_cached = sum(cached)
    if n_cached:
        ax.axhline(n_cached, color="grey", ls="--", lw=1, label=f"{n_cached} from cache")
    ax.set(xlabel="seconds", ylabel="responses")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def token_usage(rows: Sequence[dict[str, Any]], title: str = "Token usage per request"):
    """Histograms of prompt and completion tokens (rows of ``llm.completions_table``)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, key, color in zip(axes, ("prompt_tokens", "completion_tokens"), ("#8172b2", "#c44e52")):
        vals = [r[key] for r in rows if r.get(key)]
        if vals:
            sns.histplot(vals, bins=min(25, max(1, len(set(vals)))), ax=ax, color=color)
        ax.set(xlabel=key.replace("_", " "), ylabel="requests", title=f"{sum(vals):,} in total")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
