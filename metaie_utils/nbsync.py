"""Keep ``notebooks/*.ipynb`` in step with their jupytext ``py:percent`` twins.

The ``.py`` file is the source we edit and review; the ``.ipynb`` is generated from it, stripped of
outputs and execution counts, with cell tags kept (papermill needs the ``parameters`` tag).

``python -m metaie_utils.nbsync`` rewrites every ``.ipynb`` from its ``.py``;
``python -m metaie_utils.nbsync --check`` exits 1 when any pair differs (used by the tests).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from metaie_utils.core.paths import NOTEBOOKS_DIR

KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def py_to_notebook(py: Path):
    """Read a percent-format ``.py`` into a clean nbformat notebook (no outputs, tags kept)."""
    import jupytext

    nb = jupytext.read(py, fmt="py:percent")
    nb.metadata = {
        "kernelspec": KERNELSPEC,
        "language_info": {"name": "python"},
        "jupytext": {"formats": "ipynb,py:percent"},
        "colab": {"provenance": []},
    }
    for i, cell in enumerate(nb.cells):
        tags = cell.metadata.get("tags")
        cell.metadata = {"tags": tags} if tags else {}
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell["id"] = f"cell-{i:03d}"  # deterministic ids: regenerating gives the same file
    return nb


def render(py: Path) -> str:
    import nbformat

    nb = py_to_notebook(py)
    return nbformat.writes(nb, version=4) + "\n"


def sync(check: bool = False, folder: Path = NOTEBOOKS_DIR) -> list[Path]:
    """Write (or, with ``check``, compare) each ``.ipynb``; returns the notebooks that were out of date."""
    stale = []
    for py in sorted(folder.glob("[0-9][0-9]_*.py")):
        ipynb = py.with_suffix(".ipynb")
        text = render(py)
        if not ipynb.exists() or ipynb.read_text() != text:
            stale.append(ipynb)
            if not check:
                ipynb.write_text(text)
    return stale


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only report notebooks whose .ipynb differs from the .py")
    args = ap.parse_args(argv)
    stale = sync(check=args.check)
    for p in stale:
        print(("out of date: " if args.check else "wrote: ") + str(p))
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
