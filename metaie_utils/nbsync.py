"""Keep ``notebooks/*.ipynb`` in step with their jupytext ``py:percent`` twins.

The ``.py`` file is the source we edit and review; the ``.ipynb`` is generated from it, stripped of
outputs and execution counts, with cell tags kept (papermill needs the ``parameters`` tag).

``python -m metaie_utils.nbsync`` rewrites every ``.ipynb`` from its ``.py``;
``python -m metaie_utils.nbsync --check`` exits 1 when any pair differs, or when a notebook's Colab badge
or install cell names another repository than ``[project.urls] Repository`` of pyproject.toml (the one
place that names it). ``python -m metaie_utils.nbsync --repo https://github.com/OWNER/NAME`` moves every
such URL (notebooks, README, pyproject) to a fork in one step.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from metaie_utils.core.paths import NOTEBOOKS_DIR, REPO_ROOT

PYPROJECT = REPO_ROOT / "pyproject.toml"

#: where the repository's own URL appears: the Colab badge and the install cell's clone
_REPO_USES = re.compile(r"(colab\.research\.google\.com/github/|git clone -q https://github\.com/)([\w.-]+/[\w.-]+?)(?=/blob/|\.git\b)")

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


def repo_slug(pyproject: Path = PYPROJECT) -> str:
    """``OWNER/NAME`` of ``[project.urls] Repository`` in pyproject.toml."""
    found = re.search(r'^Repository\s*=\s*"([^"]+)"', pyproject.read_text(), re.M)  # tomllib is 3.11+
    url = found.group(1) if found else ""
    m = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?/?", url)
    if not m:
        raise SystemExit(f"{pyproject}: [project.urls] Repository = {url!r} is not https://github.com/OWNER/NAME")
    return m.group(1)


def repo_mismatches(folder: Path = NOTEBOOKS_DIR, slug: str | None = None) -> list[str]:
    """``"file: names X"`` for each badge or clone URL in the notebooks that is not pyproject's repository."""
    slug = slug or repo_slug()
    out = []
    for f in sorted(folder.glob("[0-9][0-9]_*.py")) + sorted(folder.glob("[0-9][0-9]_*.ipynb")):
        for m in _REPO_USES.finditer(f.read_text()):
            if m.group(2) != slug:
                out.append(f"{f.name}: names {m.group(2)!r}, pyproject.toml says {slug!r}")
    return out


def set_repo(url: str, root: Path = REPO_ROOT) -> list[Path]:
    """Point ``root``'s pyproject.toml, notebooks and README.md at ``url`` (``https://github.com/OWNER/NAME``)."""
    folder = root / "notebooks"
    m = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?/?", url)
    if not m:
        raise SystemExit(f"--repo {url!r}: use https://github.com/OWNER/NAME")
    old, new = repo_slug(root / "pyproject.toml"), m.group(1)
    changed = []
    for f in [root / "pyproject.toml", root / "README.md", *sorted(folder.glob("[0-9][0-9]_*.py"))]:
        text = f.read_text()
        moved = text.replace(f"github.com/{old}", f"github.com/{new}").replace(f"github/{old}/", f"github/{new}/")
        if moved != text:
            f.write_text(moved)
            changed.append(f)
    return changed + sync(folder=folder)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only report notebooks whose .ipynb differs from the .py")
    ap.add_argument("--repo", metavar="URL", help="move the repository URL (pyproject, notebooks, README) to URL")
    args = ap.parse_args(argv)
    if args.repo:
        for p in set_repo(args.repo):
            print("wrote:", p)
        return 0
    stale = sync(check=args.check)
    for p in stale:
        print(("out of date: " if args.check else "wrote: ") + str(p))
    bad = repo_mismatches() if args.check else []
    for line in bad:
        print("repository URL:", line)
    return 1 if (args.check and (stale or bad)) else 0


if __name__ == "__main__":
    sys.exit(main())
