"""MetaIE reference implementation: shared logic of the notebooks.

``from metaie_utils import MetaIE`` gives the extraction API (imported lazily, so that light modules
such as :mod:`metaie_utils.params` load without torch).
"""

__version__ = "0.1.0"


def __getattr__(name):
    if name == "MetaIE":
        from metaie_utils.models.extractor import MetaIE

        return MetaIE
    raise AttributeError(name)
