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
    "metaie_utils.pipeline",           # run, sweep
    "metaie_utils.summary",            # summary (paired bootstrap intervals of a stage-05 run)
    "metaie_utils.finetune",           # finetune (a meta-model on a user's dataset spec)
    "metaie_utils.core.assets",        # assets
    "metaie_utils.core.datasources",   # data check|fetch
    "metaie_utils.stages.sample",      # sample
    "metaie_utils.stages.distill",     # distill
    "metaie_utils.llm.shipped",        # shipped info|export
    "metaie_utils.llm.teacher",        # serve-teacher
    "metaie_utils.stages.convert",     # convert
    "metaie_utils.stages.train",       # train
    "metaie_utils.models",             # extract
    "metaie_utils.stages.fewshot.loop",  # evaluate
    "metaie_utils.stages.ablations",   # ablations
]


from metaie_utils.core.errors import UserError  # noqa: F401  (re-exported: ``from metaie_utils.cli import UserError``)


def _friendly_types() -> tuple[type[BaseException], ...]:
    from metaie_utils.core.params import ParamsError
    from metaie_utils.core.paths import DataDirError
    from metaie_utils.core.runs import RunExistsError

    types: list[type[BaseException]] = [UserError, ParamsError, DataDirError, RunExistsError, FileNotFoundError]
    try:
        from metaie_utils.core.assets import AssetError

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
