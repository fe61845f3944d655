"""Figures of stage 05 (few-shot evaluation): F1 bars per dataset/sub-task and initialization.

Plots only draw what :func:`metaie_utils.fewshot.summarize` measured; they compute nothing.
"""

from __future__ import annotations

from typing import Any

INIT_ORDER = ["vanilla", "metaie", "ner-distill", "multiie", "llm-icl"]


def plot_results(summary: Any, title: str = "Few-shot F1 (mean ± std over seeds)"):
    """Grouped bars: x = dataset/sub-task, hue = initialization, height = mean F1 (%), error bar = std.

    ``summary`` is the DataFrame of :func:`metaie_utils.fewshot.summarize` (columns dataset, subtask,
    initialization, f1, f1_std). Returns a matplotlib Figure (empty axes with a note when no rows).
    """
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * max(1, len(summary)) ** 0.9), 3.6))
    if summary is None or len(summary) == 0:
        ax.text(0.5, 0.5, "no results", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    df = summary.copy()
    df["group"] = [f"{d}\n{s}" if s not in ("", d) else d for d, s in zip(df["dataset"], df["subtask"])]
    groups = list(dict.fromkeys(df["group"]))
    inits = [i for i in INIT_ORDER if i in set(df["initialization"])] + \
        [i for i in dict.fromkeys(df["initialization"]) if i not in INIT_ORDER]
    width = 0.8 / len(inits)
    x = np.arange(len(groups))
    import seaborn as sns

    palette = sns.color_palette("colorblind", len(inits))
    for j, init in enumerate(inits):
        sub = df[df["initialization"] == init].set_index("group")
        h = [float(sub.loc[g, "f1"]) if g in sub.index else np.nan for g in groups]
        e = [float(sub.loc[g, "f1_std"]) if g in sub.index else 0.0 for g in groups]
        ax.bar(x - 0.4 + width * (j + 0.5), h, width, yerr=e, capsize=3, label=init, color=palette[j])
    ax.set_xticks(x, groups, fontsize=8)
    ax.set_ylabel("F1 (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, ncols=min(len(inits), 5), loc="upper right", frameon=False)
    sns.despine(ax=ax)
    fig.tight_layout()
    return fig
