"""Every docstring example in the package runs (examples that are never run rot: two had, the registry's
``score`` and the sweep validator's exception path)."""

import doctest
import importlib
import pkgutil

import pytest

import metaie_utils

MODULES = sorted(m.name for m in pkgutil.walk_packages(metaie_utils.__path__, "metaie_utils.")
                 if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    mod = importlib.import_module(name)
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert res.failed == 0, f"{name}: {res.failed} of {res.attempted} docstring examples failed (run: python -m pytest --doctest-modules {mod.__file__})"
