"""Figures of stage 04 (meta-model training): the loss curve and the held-out span-F1 curve.

Input: a Trainer log history (``metaie_training.json["log_history"]``), split by
:func:`metaie_utils.core.metrics.training_curves`. Nothing is computed here beyond that split.

>>> fig = learning_curves([{"step": 1, "loss": 1.1}, {"step": 2, "loss": 0.7}])  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Iterable


def learning_curves(log_history: Iterable[dict], title: str = "Meta-training"):
    """Two panels: training loss per logged step; held-out loss and span F1 (%) per evaluation."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import seaborn as sns

    from metaie_utils.core.metrics import training_curves

    loss, ev = training_curves(log_history)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.5))
    if loss:
        sns.lineplot(x=[r["step"] for r in loss], y=[r["loss"] for r in loss], marker="o", ax=a1, label="train loss")
    if ev:
        steps = [r["step"] for r in ev]
        if any(r["eval_loss"] is not None for r in ev):
            sns.lineplot(x=steps, y=[r["eval_loss"] for r in ev], marker="s", ax=a1, label="held-out loss")
        sns.lineplot(x=steps, y=[100 * r["span_f1"] for r in ev], marker="o", ax=a2, color="tab:green")
    else:
        a2.text(0.5, 0.5, "no held-out evaluation", ha="center", va="center", transform=a2.transAxes)
    a1.set(xlabel="optimizer step", ylabel="cross-entropy", title=f"{title}: loss")
    a2.set(xlabel="optimizer step", ylabel="span F1 (%)", title=f"{title}: held-out span F1", ylim=(0, 100))
    fig.tight_layout()
    return fig


def protocol_scores(rows: list[dict], title: str = "CoNLL2003 5-shot, authors' files"):
    """Grouped bars: micro F1 (%) per initialization, offset-exact vs the authors' string match.

    ``rows``: ``{"init": "vanilla", "metric": "offset", "f1": 0.41}`` dicts.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(5, 3.5))
    if not rows:
        ax.text(0.5, 0.5, "protocol not run", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    sns.barplot(x=[r["init"] for r in rows], y=[100 * r["f1"] for r in rows], hue=[r["metric"] for r in rows], ax=ax)
    ax.set(ylabel="micro F1 (%)", xlabel="initialization", title=title, ylim=(0, 100))
    fig.tight_layout()
    return fig
