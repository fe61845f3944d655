"""Seaborn figures, one module per stage (``plots.distill``, ``plots.convert``, ``plots.train``, ``plots.eval``, ``plots.ablations``).

Every function takes data (lists, DataFrames) and returns a matplotlib Figure; ``save(fig, path)``
writes a PNG. Plotting never computes results: it only draws what a stage measured.
"""

from __future__ import annotations

from pathlib import Path


def save(fig, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` as a PNG (parents created) and return the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=dpi, bbox_inches="tight")
    return p
