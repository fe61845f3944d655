"""Where things live: the repository root, the benchmark data, the outputs and the asset cache.

Every path resolves from the package root, never from the kernel's working directory, so a notebook
executed by papermill from any folder finds the same files.

Environment variables (all optional):

- ``METAIE_DATA_DIR``: folder holding the original benchmark files (the layout of ``../shared/data``:
  ``conll2003/eng.train``, ``wnut17/...``). Default: ``<repo>/../shared/data`` when it exists, else
  ``~/.cache/metaie/data``.
- ``METAIE_CACHE_DIR``: where assembled offline assets (models, GGUF teachers) go.
  Default: ``<repo>/.cache``.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # metaie_utils/ (this file is metaie_utils/core/paths.py)


REPO_ROOT = PACKAGE_ROOT.parent


NOTEBOOKS_DIR = REPO_ROOT / "notebooks"


PARAMS_DIR = REPO_ROOT / "params"


FIXTURES_DIR = REPO_ROOT / "tests" / "fixtures"


DATA_ENV = "METAIE_DATA_DIR"


CACHE_ENV = "METAIE_CACHE_DIR"


class DataDirError(FileNotFoundError):
    """The benchmark data folder (or a file in it) is missing."""


def resolve(path: str | os.PathLike) -> Path:
    """A path as given when absolute, else relative to the repository root.

    >>> resolve("params/defaults.yaml") == REPO_ROOT / "params" / "defaults.yaml"
    True
    """
    p = Path(path).expanduser()
    return p if p.is_absolute() else REPO_ROOT / p


def data_dir(required: bool = True) -> Path:
    """The benchmark data folder: ``$METAIE_DATA_DIR``, else ``../shared/data``, else the user cache."""
    env = os.environ.get(DATA_ENV)
    if env:
        d = Path(env).expanduser().resolve()
    else:
        shared = (REPO_ROOT.parent / "shared" / "data").resolve()
        d = shared if shared.is_dir() else Path.home() / ".cache" / "metaie" / "data"
    if required and not d.is_dir():
        raise DataDirError(
            f"The benchmark data folder {d} does not exist. Set {DATA_ENV} to a folder with the original "
            f"benchmark files (the layout of shared/data: conll2003/eng.train, wnut17/..., see "
            f"README 'Data'), or place them at {d}. Users online can fetch the same originals from the "
            f"public sources listed in the README."
        )
    return d


def data_file(*parts: str) -> Path:
    """One original benchmark file, with a clear error when it is missing.

    >>> data_file("conll2003", "eng.testb").name  # doctest: +SKIP
    'eng.testb'
    """
    p = data_dir().joinpath(*parts)
    if not p.exists():
        raise DataDirError(
            f"Expected benchmark file {p} is missing (data folder: {data_dir()}; set {DATA_ENV} to change "
            f"it). Check that the folder has the original layout described in README 'Data'."
        )
    return p


def cache_dir() -> Path:
    """Folder for assembled offline assets (created on demand)."""
    d = Path(os.environ.get(CACHE_ENV, REPO_ROOT / ".cache")).expanduser()
    d.mkdir(parents=True, exist_ok=True)
    return d
