"""Figures of stage 06 (ablations): F1 against parameters, against distilled sentences, per task.

Every function takes the tables of :mod:`metaie_utils.ablations` (long ``scores`` DataFrames with
columns task, initialization, label, f1, f1_std, n_params, n_sentences, ...) and returns a matplotlib
Figure; an empty table gives a figure that says so. Nothing is computed here beyond grouping.
"""

from __future__ import annotations

from typing import Any

INIT_ORDER = ["vanilla", "metaie", "ner-distill", "multiie", "llm-icl"]


def _empty(msg: str = "no finished points"):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.text(0.5, 0.5, msg, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return fig


def _inits(df: Any) -> list[str]:
    have = list(dict.fromkeys(df["initialization"]))
    return [i for i in INIT_ORDER if i in have] + [i for i in have if i not in INIT_ORDER]


def f1_vs_params(scores: Any, metric: str = "f1", title: str = "Few-shot F1 against student size"):
    """Small multiples, one panel per task: x = parameters (millions, log), y = mean ``metric`` (%) with its
    std as error bar, one line per initialization (MetaIE solid, its vanilla dashed), so the gap meta-training
    adds at each size reads off vertically. The x ticks are the points' own sizes. Points without a parameter
    count are left out; points of one size at several recipes share its x."""
    import math

    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.ticker import NullFormatter, NullLocator

    from metaie_utils.core.metrics import aggregate_scores

    if scores is None or len(scores) == 0:
        return _empty()
    agg = aggregate_scores(scores, metric)
    agg = agg[agg["n_params"].notna()]
    if agg.empty:
        return _empty("no parameter counts (set n_parameters in stage 04's metrics.json)")
    tasks = list(dict.fromkeys(agg["task"]))
    inits = _inits(agg)
    colours = dict(zip(INIT_ORDER, sns.color_palette("colorblind", len(INIT_ORDER))))
    ncols = min(3, len(tasks))
    nrows = math.ceil(len(tasks) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols + 1.6, 2.7 * nrows), squeeze=False, sharex=True)
    sizes = sorted({float(v) for v in agg["n_params"]})
    # a size within 20% of the previous one (MPNet's 102M and 109M) drops its tick a line so the two do not overlap
    ticks: list[str] = []
    for i, v in enumerate(sizes):
        drop = i > 0 and v / sizes[i - 1] < 1.2 and not ticks[-1].startswith("\n")
        ticks.append(("\n" if drop else "") + f"{v / 1e6:.0f}M")
    for ax, task in zip(axes.flat, tasks):
        for init in inits:
            g = agg[(agg["task"] == task) & (agg["initialization"] == init)].sort_values("n_params")
            if g.empty:
                continue
            ax.errorbar(g["n_params"] / 1e6, g["mean"], yerr=g["std"], marker="o", markersize=4, capsize=3,
                        color=colours.get(init), linestyle="-" if init == "metaie" else "--", linewidth=1.3, label=init)
        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks([v / 1e6 for v in sizes], ticks, fontsize=7)
        ax.set_title(task, fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        sns.despine(ax=ax)
    for ax in list(axes.flat)[len(tasks):]:
        ax.set_axis_off()
    for ax in axes[:, 0]:
        ax.set_ylabel(f"{metric} (%)", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("parameters (log)", fontsize=8)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 0.95))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def f1_vs_sentences(curve: Any, metric: str = "f1", title: str = "Few-shot F1 against distilled sentences"):
    """Line plot of :func:`metaie_utils.core.metrics.data_size_curve`: x = distilled sentences (symmetric log,
    so 0 = the vanilla initialization sits on the axis), y = mean ``metric`` (%), one line per task."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if curve is None or len(curve) == 0:
        return _empty()
    curve = curve[curve["n_sentences"].notna()]
    if curve.empty:
        return _empty("no sentence counts (stage 03 metrics.json lacks 'sentences')")
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    tasks = list(dict.fromkeys(curve["task"]))
    palette = dict(zip(tasks, sns.color_palette("colorblind", len(tasks))))
    for task, g in curve.groupby("task", sort=False):
        g = g.sort_values("n_sentences")
        ax.errorbar(g["n_sentences"], g["mean"], yerr=g["std"], marker="o", capsize=3, color=palette[task], label=task)
        v = g[g["initialization"] == "vanilla"]
        if len(v):
            ax.axhline(float(v["mean"].iloc[0]), color=palette[task], linestyle=":", linewidth=0.8)
    ax.set_xscale("symlog", linthresh=max(1.0, float(curve.loc[curve["n_sentences"] > 0, "n_sentences"].min()
                                                      if (curve["n_sentences"] > 0).any() else 10.0)))
    ax.set_xlabel("distilled sentences (0 = vanilla, symlog)")
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside, never over a line
    sns.despine(ax=ax)
    fig.tight_layout()
    return fig


def f1_per_task(scores: Any, metric: str = "f1", title: str = "Few-shot F1 per task and initialization"):
    """Grouped bars, one panel per initialization: x = task, hue = sweep point (legend label),
    height = mean ``metric`` (%), error bar = std."""
    import matplotlib.pyplot as plt
    import numpy as np
    import seaborn as sns

    from metaie_utils.core.metrics import aggregate_scores

    if scores is None or len(scores) == 0:
        return _empty()
    agg = aggregate_scores(scores, metric)
    inits = _inits(agg)
    tasks = list(dict.fromkeys(agg["task"]))
    labels = list(dict.fromkeys(agg["label"]))
    palette = sns.color_palette("colorblind", len(labels))
    w = max(4.0, 0.5 * len(tasks) * max(1, len(labels)) ** 0.5 + 2)
    fig, axes = plt.subplots(1, len(inits), figsize=(w * len(inits), 3.8), sharey=True, squeeze=False)
    width = 0.8 / len(labels)
    x = np.arange(len(tasks))
    for ax, init in zip(axes[0], inits):
        sub = agg[agg["initialization"] == init]
        for j, lab in enumerate(labels):
            s = sub[sub["label"] == lab].set_index("task")
            h = [float(s.loc[t, "mean"]) if t in s.index else np.nan for t in tasks]
            e = [float(s.loc[t, "std"]) if t in s.index else 0.0 for t in tasks]
            ax.bar(x - 0.4 + width * (j + 0.5), h, width, yerr=e, capsize=2, color=palette[j], label=str(lab))
        ax.set_xticks(x, [t.replace("/", "\n") for t in tasks], fontsize=7)
        ax.set_title(init, fontsize=9)
        ax.set_ylim(0, 100)
        sns.despine(ax=ax)
    axes[0][0].set_ylabel(f"{metric} (%)")
    axes[0][-1].legend(fontsize=7, frameon=False, loc="upper right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def tick_labels(labels: list[str]) -> list[str]:
    """Sweep point labels (``"backbone=mpnet-base, num_layers=3, meta_lr=0.0001"``) as x ticks: the
    ``key=value`` parts every point shares are dropped and the rest go one per line, so long labels of a
    several-key sweep neither overlap nor run off the figure. A label left with nothing keeps its parts.

    >>> tick_labels(["backbone=b, num_layers=3, lr=1", "backbone=b, num_layers=6, lr=1", "backbone=b, num_layers=0, lr=5"])
    ['num_layers=3\\nlr=1', 'num_layers=6\\nlr=1', 'num_layers=0\\nlr=5']
    >>> tick_labels(["max_sentences=30", "max_sentences=1000"])
    ['max_sentences=30', 'max_sentences=1000']
    """
    parts = [[x.strip() for x in str(lab).split(", ")] for lab in labels]
    shared = set.intersection(*(set(p) for p in parts)) if len(parts) > 1 else set()
    return ["\n".join([x for x in p if x not in shared] or p) for p in parts]


def interval_figure(df: Any, title: str | None = None):
    """Dot-and-whisker plot of :func:`metaie_utils.ablations.sweep_intervals`: x = the sweep's points in
    order, y = point − baseline (F1 points) with its paired CI, one colour per dataset / sub-task (and
    initialization when there are several), a dashed line at 0. Rows without a difference are left out."""
    import matplotlib.pyplot as plt
    import numpy as np
    import seaborn as sns

    if df is None or len(df) == 0 or "diff" not in df.columns:
        return _empty("no points with results")
    d = df[np.isfinite(df["diff"].astype(float))].copy()
    if d.empty:
        return _empty("no paired differences\n(counts.jsonl missing, or no baseline rows)")
    several = d["initialization"].nunique() > 1
    d["series"] = [f"{ds}/{sub}" + (f" ({i})" if several else "") for ds, sub, i in
                   zip(d["dataset"], d["subtask"], d["initialization"])]
    labels = list(dict.fromkeys(d["label"]))
    series = list(dict.fromkeys(d["series"]))
    palette = dict(zip(series, sns.color_palette("colorblind", len(series))))
    width = 0.7 / max(1, len(series))
    ticks = tick_labels(labels)
    fig, ax = plt.subplots(figsize=(max(4.8, 1.3 * len(labels) + 2.0), 3.6))
    for j, name in enumerate(series):
        sub = d[d["series"] == name]
        x = np.array([labels.index(lab) for lab in sub["label"]], dtype=float) - 0.35 + width * (j + 0.5)
        y = sub["diff"].to_numpy(float)
        err = np.vstack([y - sub["diff_lo"].to_numpy(float), sub["diff_hi"].to_numpy(float) - y])
        ax.errorbar(x, y, yerr=np.clip(err, 0, None), fmt="o", capsize=3, color=palette[name], label=name,
                    markersize=5, linewidth=1.3)
    ax.axhline(0, color="0.3", linewidth=1, linestyle="--", zorder=0)
    ax.set_xticks(range(len(labels)), ticks, fontsize=8)
    base = str(d["baseline"].iloc[0]) if "baseline" in d.columns else "baseline"
    init = str(d["initialization"].iloc[0]) if not several else "point"
    ax.set_ylabel(f"{init} − {base}, F1 points\n(95% paired CI)", fontsize=9)
    ax.set_title(title or "each point against the baseline", fontsize=10)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside, never over a whisker
    sns.despine(ax=ax)
    fig.tight_layout()
    return fig


def figures_for(res: Any, metric: str = "f1") -> dict[str, Any]:
    """The figures of one sweep (a :class:`metaie_utils.ablations.SweepResults`), by file stem:
    every sweep gets ``per_task``; model-size sweeps add ``vs_params``; data-size sweeps ``vs_sentences``."""
    from metaie_utils.core.metrics import data_size_curve

    figs = {"per_task": f1_per_task(res.scores, metric, title=f"{res.name}: {metric} per task and initialization")}
    if res.kind == "model_size":
        figs["vs_params"] = f1_vs_params(res.scores, metric, title=f"{res.name}: {metric} against parameters")
    if res.kind == "data_size":
        figs["vs_sentences"] = f1_vs_sentences(data_size_curve(res.scores, metric), metric,
                                               title=f"{res.name}: {metric} against distilled sentences")
    return figs
