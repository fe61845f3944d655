"""Figures of stage 03 (label-to-span conversion): label distribution, label and span lengths, match rates.

Plots only draw what :func:`metaie_utils.label_to_span.convert_responses` measured (``label_stats`` rows,
span lengths, metrics); they compute nothing but counts for display. Each returns a matplotlib Figure.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Mapping, Sequence

LENGTH_ORDER = ["1", "2", "3", "4+"]
MATCH_ORDER = ["verbatim", "case_insensitive", "not_found"]


def _empty(ax, note: str = "no instances"):
    ax.text(0.5, 0.5, note, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return ax.figure


def label_rank_frequency(label_stats: Sequence[Mapping[str, Any]], title: str = "Label rank-frequency"):
    """Log-log scatter of each label's instance count against its frequency rank (a Zipf-like long tail
    is what the paper reports). ``label_stats`` rows need ``rank`` and ``instances``."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(4.2, 3.4))
    if not label_stats:
        return _empty(ax)
    ranks = [r["rank"] for r in label_stats]
    counts = [r["instances"] for r in label_stats]
    sns.scatterplot(x=ranks, y=counts, ax=ax, s=14, linewidth=0, color=sns.color_palette("colorblind")[0])
    ax.set(xscale="log", yscale="log", xlabel="label rank", ylabel="instances", title=title)
    fig.tight_layout()
    return fig


def label_length_categories(label_stats: Sequence[Mapping[str, Any]], title: str = "Label length (words)"):
    """Bars of the share of distinct labels with 1, 2, 3 and 4+ words (the paper's Table 1 categories),
    and the share of instances whose label has that length."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    if not label_stats:
        return _empty(ax)
    labels = Counter(r["length_category"] for r in label_stats)
    insts: Counter = Counter()
    for r in label_stats:
        insts[r["length_category"]] += r["instances"]
    nl, ni = sum(labels.values()), sum(insts.values())
    df = pd.DataFrame(
        [{"words": c, "share": labels.get(c, 0) / nl, "of": "distinct labels"} for c in LENGTH_ORDER]
        + [{"words": c, "share": insts.get(c, 0) / ni, "of": "instances"} for c in LENGTH_ORDER]
    )
    sns.barplot(df, x="words", y="share", hue="of", order=LENGTH_ORDER, ax=ax, palette="colorblind")
    ax.set(ylim=(0, 1), xlabel="label length (words)", ylabel="share", title=title)
    ax.legend(title=None, fontsize=8)
    fig.tight_layout()
    return fig


def span_lengths(lengths: Sequence[int], title: str = "Span length (words)"):
    """Histogram of span lengths in words (one bar per length; lengths over 10 pooled into "10+")."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    if not lengths:
        return _empty(ax, "no spans")
    c = Counter(min(int(n), 10) for n in lengths)
    xs = list(range(1, 11))
    names = [str(x) if x < 10 else "10+" for x in xs]
    sns.barplot(x=names, y=[c.get(x, 0) for x in xs], ax=ax, color=sns.color_palette("colorblind")[2])
    ax.set(xlabel="span length (words)", ylabel="spans", title=title)
    fig.tight_layout()
    return fig


def match_rates(metrics: Mapping[str, Any], title: str = "How teacher answers matched"):
    """Bars of the answer match rates in ``metrics`` (``match_rate_verbatim``, ``..._case_insensitive``,
    ``..._not_found``), annotated with the counts."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    if not metrics.get("answers"):
        return _empty(ax, "no answers")
    rates = [float(metrics.get(f"match_rate_{k}", 0.0)) for k in MATCH_ORDER]
    counts = [int(metrics.get(f"answers_{k}", 0)) for k in MATCH_ORDER]
    sns.barplot(x=["verbatim", "case-insens.\nonly", "not found"], y=rates, ax=ax, palette="colorblind",
                hue=MATCH_ORDER, legend=False)
    for i, (r, n) in enumerate(zip(rates, counts)):
        ax.text(i, r + 0.02, f"{r:.0%} ({n})", ha="center", fontsize=8)
    ax.set(ylim=(0, 1.1), ylabel="share of answers", title=title)
    fig.tight_layout()
    return fig
