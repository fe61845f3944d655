"""Figure of ``python -m metaie_utils summary``: paired differences reference - baseline with their CIs.

Draws only what :func:`metaie_utils.core.stats.summary_table` computed; it computes nothing.
"""

from __future__ import annotations

from typing import Any

INIT_ORDER = ["vanilla", "metaie", "ner-distill", "multiie", "llm-icl"]


def _empty(msg: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.text(0.5, 0.5, msg, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return fig


def ci_figure(df: Any, title: str | None = None):
    """Horizontal dot-and-whisker plot: one row per dataset/sub-task, one colour per baseline, the dot at
    the difference ``reference - baseline`` (F1 points) and the whiskers its CI; a vertical line at 0.

    ``df`` is the DataFrame of :func:`metaie_utils.core.stats.summary_table` (columns dataset, subtask,
    initialization, reference, diff, diff_lo, diff_hi). Rows without a difference (the reference, or
    no counts) are left out; a table with none gives a figure that says so.
    """
    import matplotlib.pyplot as plt
    import numpy as np
    import seaborn as sns

    if df is None or len(df) == 0 or "diff" not in df.columns:
        return _empty("no results")
    d = df[np.isfinite(df["diff"].astype(float))].copy()
    if d.empty:
        return _empty("no paired differences\n(counts.jsonl missing or nothing to pair)")
    ref = str(d["reference"].iloc[0]) if "reference" in d.columns else "reference"
    level = float(d["level"].iloc[0]) if "level" in d.columns else 0.95
    d["group"] = [f"{ds} / {s}" if s not in ("", ds) else ds for ds, s in zip(d["dataset"], d["subtask"])]
    groups = list(dict.fromkeys(d["group"]))
    have = list(dict.fromkeys(d["initialization"]))
    inits = [i for i in INIT_ORDER if i in have] + [i for i in have if i not in INIT_ORDER]
    palette = dict(zip(inits, sns.color_palette("colorblind", len(inits))))
    height = 0.7 / max(1, len(inits))

    fig, ax = plt.subplots(figsize=(6.4, max(2.4, 0.25 + 0.42 * len(groups) * max(1, len(inits)) ** 0.5)))
    y0 = {g: i for i, g in enumerate(groups)}
    for j, init in enumerate(inits):
        sub = d[d["initialization"] == init]
        y = np.array([y0[g] for g in sub["group"]], dtype=float) - 0.35 + height * (j + 0.5)
        x = sub["diff"].to_numpy(float)
        err = np.vstack([x - sub["diff_lo"].to_numpy(float), sub["diff_hi"].to_numpy(float) - x])
        ax.errorbar(x, y, xerr=np.clip(err, 0, None), fmt="o", capsize=3, color=palette[init], label=f"{ref} − {init}",
                    markersize=5, linewidth=1.4)
    ax.axvline(0, color="0.3", linewidth=1, linestyle="--", zorder=0)
    ax.set_yticks(range(len(groups)), groups, fontsize=8)
    ax.set_ylim(len(groups) - 0.5, -0.5)  # first group on top
    ax.set_xlabel(f"F1 difference (points), {100 * level:g}% paired bootstrap CI")
    ax.set_title(title or f"{ref} minus each baseline (over test sentences and seeds)", fontsize=10)
    ax.legend(fontsize=8, loc="best", frameon=False)
    sns.despine(ax=ax)
    fig.tight_layout()
    return fig
