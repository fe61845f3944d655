"""``python -m metaie_utils <command>``: one CLI for every stage.

Core commands (``run``, ``sweep``) live in :mod:`metaie_utils.pipeline`; each stage module adds its own
commands through a ``register_cli(subparsers)`` function listed in ``COMMAND_MODULES``. Every command
has ``--help``. Errors that the package raises on purpose (bad params, missing data or assets) print
one paragraph and exit 2 instead of a stack trace.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = [
    "metaie_utils.pipeline",       # run, sweep
    "metaie_utils.assets",         # assets
    "metaie_utils.datasources",    # data check|fetch
    "metaie_utils.corpus",         # sample
    "metaie_utils.llm",            # distill
    "metaie_utils.shipped",        # shipped info|export
    "metaie_utils.teacher",        # serve-teacher
    "metaie_utils.label_to_span",  # convert
    "metaie_utils.training",       # train
    "metaie_utils.extraction",     # extract
    "metaie_utils.fewshot",        # evaluate
    "metaie_utils.ablations",      # ablation helpers
]


class UserError(Exception):
    """An error caused by input the user can fix; printed as one paragraph without a traceback."""


def _friendly_types() -> tuple[type[BaseException], ...]:
    from .params import ParamsError
    from .paths import DataDirError
    from .runs import RunExistsError

    types: list[type[BaseException]] = [UserError, ParamsError, DataDirError, RunExistsError, FileNotFoundError]
    try:
        from .assets import AssetError

        types.append(AssetError)
    except ImportError:
        pass
    return tuple(types)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m metaie_utils",
        description="MetaIE: distill a meta model for information extraction from an LLM, then few-shot adapt it.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for modname in COMMAND_MODULES:
        try:
            mod = importlib.import_module(modname)
        except ImportError as e:
            if e.name and e.name.startswith("metaie_utils"):
                continue  # stage not present in this checkout
            raise
        reg = getattr(mod, "register_cli", None)
        if reg is not None:
            reg(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except _friendly_types() as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)
