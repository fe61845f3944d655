"""``python -m metaie_utils summary RUN_DIR``: the few-shot table with paired confidence intervals.

Reads a stage-05 run directory (``results.csv``, and ``counts.jsonl`` when present), prints per dataset x
sub-task x initialization the F1 mean ± std over seeds and the difference ``reference - baseline`` with
a 95% paired bootstrap CI over test sentences and seeds (:mod:`metaie_utils.core.stats`), and writes::

    RUN_DIR/summary_ci.csv   the table (percent; diff, diff_lo, diff_hi in F1 points)
    RUN_DIR/summary_ci.png   the differences with their CIs (unless --no-figure)

A narrowed comparison (``--reference`` other than metaie, or ``--baselines``) writes
``summary_ci_<reference>_vs_<baselines>.csv/.png`` instead, so it never overwrites the run's full table
(:func:`output_stem`).

Without ``counts.jsonl`` (runs written before the loop recorded per-sentence counts) the table still has
means and stds; the differences are NaN with a note.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any


def _run_dir(path: str) -> Path:
    from metaie_utils.core.errors import UserError

    p = Path(path).expanduser()
    if not p.is_dir():
        from metaie_utils.core.paths import resolve

        alt = resolve(path)
        if alt.is_dir():
            p = alt
        else:
            raise UserError(f"run directory {path!r} does not exist ({p.resolve()}): pass a stage-05 run directory, "
                            f"e.g. outputs/05_fewshot_eval/<run_name>.")
    if not (p / "results.csv").is_file():
        raise UserError(f"{p / 'results.csv'} does not exist: {p} is not a finished or started stage-05 run "
                        f"(python -m metaie_utils evaluate writes results.csv there).")
    return p


def read_results_csv(path: Path) -> list[dict[str, Any]]:
    with Path(path).open(newline="") as f:
        return list(csv.DictReader(f))


def output_stem(reference: str = "metaie", baselines: list[str] | None = None) -> str:
    """File stem of a summary: ``summary_ci`` for the full comparison (metaie against every other initialization),
    ``summary_ci_<reference>_vs_<b1>+<b2>`` for a narrowed one.

    >>> output_stem(), output_stem(baselines=["llm-icl"]), output_stem("vanilla")
    ('summary_ci', 'summary_ci_metaie_vs_llm-icl', 'summary_ci_vanilla_vs_all')
    """
    import re

    if reference == "metaie" and not baselines:
        return "summary_ci"
    tag = "+".join(baselines) if baselines else "all"
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", f"summary_ci_{reference}_vs_{tag}")


def summarize_run(run_dir: str | Path, reference: str = "metaie", baselines: list[str] | None = None,
                  n_boot: int = 2000, seed: int = 0, figure: bool = True, log=print, markdown: bool = False):
    """The ``summary`` command as a function: returns the table DataFrame (also written to the run dir)."""
    from metaie_utils.core.errors import UserError
    from metaie_utils.core.stats import format_table, markdown_table, read_counts, summary_table

    run = _run_dir(str(run_dir))
    rows = read_results_csv(run / "results.csv")
    if not rows:
        raise UserError(f"{run / 'results.csv'} has no result rows yet.")
    counts_path = run / "counts.jsonl"
    counts = read_counts(counts_path)
    inits = {r.get("initialization") for r in rows}
    if reference not in inits:
        log(f"note: no {reference!r} rows in {run / 'results.csv'} (initializations: {sorted(map(str, inits))}); "
            f"no differences to compute.")
    if not counts:
        log(f"note: {counts_path} is missing or empty: means and stds only, no paired confidence intervals.")
    try:
        df = summary_table(rows, counts, reference=reference, baselines=baselines, n_boot=n_boot, seed=seed)
    except ValueError as e:
        raise UserError(f"cannot summarize {run}: {e}") from e
    log(markdown_table(df) if markdown else format_table(df))
    stem = output_stem(reference, baselines)
    df.to_csv(run / f"{stem}.csv", index=False)
    log(f"wrote {run / f'{stem}.csv'}")
    if figure:
        import matplotlib.pyplot as plt

        from metaie_utils.plots import save
        from metaie_utils.plots.summary import ci_figure

        fig = ci_figure(df)
        save(fig, run / f"{stem}.png")
        plt.close(fig)
        log(f"wrote {run / f'{stem}.png'}")
    return df


def _cmd_summary(args) -> int:
    baselines = [b.strip() for b in args.baselines.split(",") if b.strip()] if args.baselines else None
    if args.n_boot < 1:
        from metaie_utils.core.errors import UserError

        raise UserError(f"--n-boot must be >= 1, got {args.n_boot}.")
    summarize_run(args.run_dir, reference=args.reference, baselines=baselines, n_boot=args.n_boot, seed=args.seed,
                  figure=not args.no_figure, markdown=args.markdown)
    return 0


def register_cli(subparsers) -> None:
    """``summary RUN_DIR [--reference metaie --baselines a,b --n-boot 2000 --seed 0 --no-figure]``."""
    p = subparsers.add_parser(
        "summary", help="few-shot table with paired 95%% CIs of reference minus each baseline (stage 05 runs)",
        description="Read RUN_DIR/results.csv (+ counts.jsonl) of a stage-05 run, print F1 mean ± std over seeds "
                    "and the difference reference - baseline with a paired bootstrap 95% CI over test sentences "
                    "and seeds; write RUN_DIR/summary_ci.csv and summary_ci.png (a narrowed comparison, "
                    "--reference/--baselines: summary_ci_<reference>_vs_<baselines>.csv/.png, never the full table).",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="stage-05 run directory (holds results.csv)")
    p.add_argument("--reference", default="metaie", help="initialization compared against the others (default metaie)")
    p.add_argument("--baselines", default=None, help="comma list of initializations (default: every other one present)")
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap replicates (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap draws (default 0)")
    p.add_argument("--no-figure", action="store_true", help="do not write summary_ci.png")
    p.add_argument("--markdown", action="store_true",
                   help="print one markdown row per dataset and sub-task (the README's tables) instead of the long table")
    p.set_defaults(func=_cmd_summary)
