"""The few-shot recipe comparison of issue 13: candidate recipes x datasets x 3 seeds x {vanilla, MetaIE}.

Every (recipe, dataset) cell is one ``python -m metaie_utils evaluate`` run under
``outputs/05_fewshot_eval/recipe-<recipe>-<dataset>/`` (resumable from its results.csv). Workers claim cells
through files under ``outputs/recipe_compare/claims/`` so that two workers, one per core, share the queue:

    taskset -c 0 env OMP_NUM_THREADS=1 .venv/bin/python scripts/recipe_compare.py run > rc0.log 2>&1 &
    taskset -c 1 env OMP_NUM_THREADS=1 .venv/bin/python scripts/recipe_compare.py run > rc1.log 2>&1 &
    .venv/bin/python scripts/recipe_compare.py report          # the README's table (markdown)
    .venv/bin/python scripts/recipe_compare.py versus --recipes neg50-bf16 neg50   # one recipe against another

Results outlast the machine in ``docs/results/recipe_compare/`` (results.csv, counts.jsonl, wall times per cell):
``export`` copies finished cells there, ``restore`` puts them back under outputs/ on a new machine so that ``run``
extends them (the meta-model must be make run's, which is deterministic for a given machine and thread count):

    .venv/bin/python scripts/recipe_compare.py restore && ... run --seeds 3 ... && ... export

``--seeds 1`` first gives every cell one seed; a later ``run --seeds 3`` extends each finished cell to three
(``--set overwrite=true`` reopens it, results.csv keeps the seeds it has). A worker killed mid-cell leaves its claim; ``run --reclaim`` (with no other worker alive) clears the claims
and every cell resumes from its results.csv. The meta-model is make run's (``outputs/04_train_meta_model/defaults``,
trained from the shipped distillation set); ``--model`` points elsewhere.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: name -> --set pairs on top of params/defaults.yaml (lr 3e-4, batch 8, cosine, <= 300 steps). Every recipe names
#: the keys it is about, so a later change of a default (neg_share became 0.5) cannot change what a name runs;
#: the few-shot loop also refuses to extend a cell under another recipe than the one its results.csv records.
#: The fp32 candidates name fewshot_precision=fp32: ``auto`` trains in bf16 on a CPU with bf16 units.
RECIPES: dict[str, list[str]] = {
    "fixed300": ["fewshot_precision=fp32", "fewshot_neg_share=0", "fewshot_class_weight=none", "fewshot_min_epochs=0"],  # make run's old recipe: every instance, 300 steps
    "neg50": ["fewshot_precision=fp32", "fewshot_neg_share=0.5", "fewshot_class_weight=none", "fewshot_min_epochs=0"],   # all-O instances sampled down to half
    "balanced": ["fewshot_precision=fp32", "fewshot_neg_share=0", "fewshot_class_weight=balanced", "fewshot_min_epochs=0"],  # B/I/O loss weights n / (3 n_tag)
    "neg50-epochs": ["fewshot_precision=fp32", "fewshot_neg_share=0.5", "fewshot_max_steps=0", "fewshot_epochs=30", "fewshot_min_epochs=0"],  # budget follows the support set
    # the step budget's learning curve (issue 16: make run's few-shot stage in its time budget)
    # a budget that follows a large support set: at least 3 epochs (UP-EWT: 2,202 instances, 300 steps of 8 is ~1 pass)
    "neg50-me3": ["fewshot_precision=fp32", "fewshot_neg_share=0.5", "fewshot_min_epochs=3"],
    "neg50-s150": ["fewshot_precision=fp32", "fewshot_neg_share=0.5", "fewshot_max_steps=150", "fewshot_min_epochs=0"],
    "neg50-s75": ["fewshot_precision=fp32", "fewshot_neg_share=0.5", "fewshot_max_steps=75", "fewshot_min_epochs=0"],
    "neg50-b4": ["fewshot_precision=fp32", "fewshot_neg_share=0.5", "fewshot_batch_size=4", "fewshot_min_epochs=0"],  # half the samples, the same 300 updates
    "neg50-bf16": ["fewshot_neg_share=0.5", "fewshot_precision=bf16", "fewshot_min_epochs=0"],  # bf16 autocast (CPU: AMX / AVX512-BF16)
    # the default since 2026-12-04 on a CPU with bf16 units: neg50, at least 3 passes, bf16 training
    "neg50-bf16-me3": ["fewshot_neg_share=0.5", "fewshot_precision=bf16", "fewshot_min_epochs=3"],
}
DATASETS = ["conll2003", "conll04", "absa-14res", "ner-mix"]
SEEDS = 3
TEST_CAP = 50


def cell_name(recipe: str, dataset: str) -> str:
    return f"recipe-{recipe}-{dataset}"


def cells(recipes: list[str], datasets: list[str]) -> list[tuple[str, str]]:
    return [(r, d) for d in datasets for r in recipes]


def _cell_dir(name: str) -> Path:
    return ROOT / "outputs" / "05_fewshot_eval" / name


def _seeds_done(name: str) -> int:
    """Seeds of a finished cell (0: not finished). A cell run with fewer seeds is extended, not redone."""
    import json

    d = _cell_dir(name)
    if not (d / "metrics.json").is_file():
        return 0
    return int(json.loads((d / "manifest.json").read_text()).get("params", {}).get("fewshot_seeds", 1))


def _finished(name: str, seeds: int = 1) -> bool:
    return _seeds_done(name) >= seeds


def _fine_tunes_done(name: str) -> int:
    """(initialization, seed) pairs with results in the cell so far."""
    import csv

    f = _cell_dir(name) / "results.csv"
    if not f.is_file():
        return 0
    with f.open(newline="") as fh:
        return len({(r["initialization"], r["seed"]) for r in csv.DictReader(fh)})


def _add_wall(name: str, seeds: int, secs: float, fine_tunes: int) -> None:
    """Every invocation's wall time and the fine-tunes it finished, summed by the report (an extended cell's
    manifest times cover only the last extension; a killed invocation's time is not recorded)."""
    import json

    f = _cell_dir(name) / "recipe_compare_wall.json"
    walls = json.loads(f.read_text()) if f.is_file() else []
    sys.path.insert(0, str(ROOT))
    from metaie_utils.core.device import machine_info

    walls.append({"seeds": seeds, "seconds": round(secs, 1), "fine_tunes": fine_tunes,
                  "end": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine_info()})
    f.write_text(json.dumps(walls, indent=1) + "\n")


def run(args) -> int:
    claims = ROOT / "outputs" / "recipe_compare" / "claims"
    if args.reclaim and claims.is_dir():
        for f in claims.iterdir():
            f.unlink()
    claims.mkdir(parents=True, exist_ok=True)
    for recipe, dataset in cells(args.recipes, args.datasets):
        name = cell_name(recipe, dataset)
        if _finished(name, args.seeds):
            continue
        try:
            os.close(os.open(claims / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:  # another worker has it (a crashed worker's claim: --reclaim)
            print(f"[recipe_compare] skip {name}: claimed by another worker ({claims / name}; --reclaim clears "
                  "the claims of workers that are gone)", flush=True)
            continue
        cmd = [sys.executable, "-m", "metaie_utils", "evaluate", "--model", args.model, "--dataset", dataset,
               "--seeds", str(args.seeds), "--test-cap", str(args.test_cap), "--run-name", name]
        for kv in RECIPES[recipe]:
            cmd += ["--set", kv]
        if _seeds_done(name):  # finished with fewer seeds: reopen it; results.csv keeps the seeds it has
            cmd += ["--set", "overwrite=true"]
        t0, before = time.time(), _fine_tunes_done(name)
        print(f"[recipe_compare] {time.strftime('%H:%M:%S')} start {name}: {' '.join(cmd[3:])}", flush=True)
        rc = subprocess.call(cmd, cwd=ROOT)
        print(f"[recipe_compare] {time.strftime('%H:%M:%S')} end {name}: rc={rc} in {time.time() - t0:.0f} s", flush=True)
        if _cell_dir(name).is_dir():
            _add_wall(name, args.seeds, time.time() - t0, _fine_tunes_done(name) - before)
        (claims / name).unlink(missing_ok=True)  # done or failed: a later run with more seeds may extend it
        if rc != 0:
            return rc
    return 0


FILES = ("results.csv", "counts.jsonl", "recipe_compare_wall.json")
KEPT = ROOT / "docs" / "results" / "recipe_compare"


def _present_cells(root: Path, recipes: list[str]) -> list[tuple[str, str]]:
    """(recipe, dataset) of every ``recipe-<recipe>-<dataset>`` folder under ``root`` with a results.csv, for
    the given recipes (a folder belongs to the longest recipe name it starts with: neg50-bf16, not neg50)."""
    out = []
    for d in sorted(root.glob("recipe-*")) if root.is_dir() else []:
        if not (d / "results.csv").is_file():
            continue
        owners = [r for r in RECIPES if d.name.startswith(f"recipe-{r}-")]
        if not owners:
            continue
        recipe = max(owners, key=len)
        if recipe in recipes:
            out.append((recipe, d.name[len(f"recipe-{recipe}-"):]))
    return out


def _io_cells(args, root: Path) -> list[tuple[str, str]]:
    """The cells restore / export move: the --datasets named, or every cell of the recipes found under root."""
    return cells(args.recipes, args.datasets) if args.datasets else _present_cells(root, args.recipes)


def restore(args) -> int:
    """docs/results/recipe_compare/<cell>/ -> outputs/05_fewshot_eval/<cell>/ for cells outputs/ lacks (a new
    machine): ``run`` then resumes them from their results.csv instead of starting over."""
    import shutil

    n = 0
    for recipe, dataset in _io_cells(args, KEPT):
        name = cell_name(recipe, dataset)
        src, dst = KEPT / name, _cell_dir(name)
        if not (src / "results.csv").is_file() or (dst / "results.csv").is_file():
            continue
        dst.mkdir(parents=True, exist_ok=True)
        for f in FILES:
            if (src / f).is_file():
                shutil.copy2(src / f, dst / f)
        n += 1
        print(f"[recipe_compare] restored {name} ({_fine_tunes_done(name)} fine-tunes)")
    print(f"[recipe_compare] {n} cell(s) restored into outputs/05_fewshot_eval/")
    return 0


def export(args) -> int:
    """outputs/05_fewshot_eval/<cell>/ -> docs/results/recipe_compare/<cell>/ (the files the report reads)."""
    import shutil

    n = 0
    for recipe, dataset in _io_cells(args, ROOT / "outputs" / "05_fewshot_eval"):
        name = cell_name(recipe, dataset)
        src, dst = _cell_dir(name), KEPT / name
        if not (src / "results.csv").is_file():
            continue
        dst.mkdir(parents=True, exist_ok=True)
        for f in FILES:
            if (src / f).is_file():
                shutil.copy2(src / f, dst / f)
        n += 1
    print(f"[recipe_compare] {n} cell(s) exported to {KEPT.relative_to(ROOT)}")
    return 0


def _cell_files(recipe: str, dataset: str) -> Path:
    """The cell's directory under outputs/, or its kept copy (docs/results/recipe_compare) on a new machine."""
    d = _cell_dir(cell_name(recipe, dataset))
    return d if (d / "results.csv").is_file() else KEPT / cell_name(recipe, dataset)


def versus(args) -> int:
    """``--recipes CAND BASE``: CAND − BASE per dataset, sub-task and initialization, with a 95% paired bootstrap
    over the seeds both ran and the test sentences (the same support sets and sentences: the sampler and the
    test subset depend on the seed and dataset only), e.g. bf16 against fp32 training."""
    from metaie_utils.core.stats import read_counts, summary_table
    from metaie_utils.stages.fewshot.loop import read_results

    if len(args.recipes) != 2:
        print("versus takes two recipes: --recipes CANDIDATE BASELINE", file=sys.stderr)
        return 2
    cand, base = args.recipes
    lines = [f"| dataset | sub-task | initialization | {base} F1 | {cand} F1 | {cand} − {base} [95% CI] | seeds paired |",
             "|---|---|---|---|---|---|---|"]
    for dataset in args.datasets:
        rows, counts = [], []
        for recipe in (cand, base):
            d = _cell_files(recipe, dataset)
            if not (d / "results.csv").is_file():
                break
            for r in read_results(d / "results.csv"):
                rows.append({**r, "initialization": f"{r['initialization']}@{recipe}"})
            for c in (read_counts(d / "counts.jsonl") if (d / "counts.jsonl").is_file() else []):
                counts.append({**c, "initialization": f"{c['initialization']}@{recipe}"})
        else:
            for init in ("vanilla", "metaie"):
                st = summary_table([r for r in rows if r["initialization"].startswith(init + "@")],
                                   [c for c in counts if c["initialization"].startswith(init + "@")],
                                   reference=f"{init}@{cand}", baselines=[f"{init}@{base}"])
                for sub in st.subtask.unique():
                    g = st[st.subtask == sub].set_index("initialization")
                    if f"{init}@{cand}" not in g.index or f"{init}@{base}" not in g.index:
                        continue
                    c, b = g.loc[f"{init}@{cand}"], g.loc[f"{init}@{base}"]
                    diff = (f"{b['diff']:+.1f} [{b['diff_lo']:+.1f}, {b['diff_hi']:+.1f}]" if b["diff"] == b["diff"]
                            else f"- ({b.get('note', '')})")
                    lines.append(f"| {dataset} | {sub} | {init} | {b['f1']:.1f} ± {b['f1_std']:.1f} ({int(b['n_seeds'])}) | "
                                 f"{c['f1']:.1f} ± {c['f1_std']:.1f} ({int(c['n_seeds'])}) | {diff} | "
                                 f"{int(b['n_paired_seeds']) if b['n_paired_seeds'] == b['n_paired_seeds'] else ''} |")
    print("\n".join(lines))
    return 0


def report(args) -> int:
    import pandas as pd

    from metaie_utils.stages.fewshot.loop import read_results

    from metaie_utils.core.stats import read_counts, summary_table

    lines = ["| dataset | sub-task | recipe | vanilla F1 (spans per seed) | MetaIE F1 (spans per seed) | MetaIE − vanilla [95% CI] | "
             "collapsed fine-tunes | wall per fine-tune |",
             "|---|---|---|---|---|---|---|---|"]
    for recipe, dataset in cells(args.recipes, args.datasets):
        d = _cell_dir(cell_name(recipe, dataset))
        if not (d / "results.csv").is_file():  # a new machine: the kept copy
            d = KEPT / cell_name(recipe, dataset)
        rows = read_results(d / "results.csv") if (d / "results.csv").is_file() else []
        if not rows:
            continue
        df = pd.DataFrame(rows)
        for c in ("f1", "n_pred", "seed"):
            df[c] = pd.to_numeric(df[c], errors="coerce")
        wall = ""
        wf = d / "recipe_compare_wall.json"
        if wf.is_file():
            import json

            timed = [w for w in json.loads(wf.read_text()) if w.get("fine_tunes")]  # invocations that finished some
            if timed:
                per = sum(w["seconds"] for w in timed) / sum(w["fine_tunes"] for w in timed)
                wall = f"{per / 60:.1f} min"
        ci = {}
        try:  # paired bootstrap over test sentences (and seeds), from the cell's counts.jsonl
            st = summary_table(rows, read_counts(d / "counts.jsonl"), reference="metaie", baselines=["vanilla"])
            for _, r in st[st.initialization == "vanilla"].iterrows():
                if r["diff"] == r["diff"]:  # not NaN
                    ci[r["subtask"]] = f"{r['diff']:+.1f} [{r['diff_lo']:+.1f}, {r['diff_hi']:+.1f}]"
        except Exception as e:  # a cell without counts still reports its means
            print(f"[recipe_compare] {d.name}: no interval ({e})", file=sys.stderr)
        for sub, g in df.groupby("subtask", sort=False):
            cell = {}
            for init in ("vanilla", "metaie"):
                h = g[g.initialization == init]
                if h.empty:
                    cell[init] = "-"
                    continue
                seeds = len(h)
                lo, hi = int(h.n_pred.min()), int(h.n_pred.max())
                cell[init] = (f"{100 * h.f1.mean():.1f} ± {100 * h.f1.std(ddof=1) if seeds > 1 else 0:.1f} "
                              f"({lo}-{hi}; {seeds} seed{'s' if seeds > 1 else ''})" if seeds > 1 else
                              f"{100 * h.f1.mean():.1f} ({lo}; 1 seed)")
            n_coll = int((g.collapsed.fillna("").astype(str) != "").sum())
            lines.append(f"| {dataset} | {sub} | {recipe} | {cell['vanilla']} | {cell['metaie']} | {ci.get(sub, '-')} | "
                         f"{n_coll} of {len(g)} | {wall} |")
    print("\n".join(lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("action", choices=["run", "report", "versus", "list", "restore", "export"])
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    p.add_argument("--datasets", nargs="+", default=None,
                   help=f"default: {' '.join(DATASETS)} (run, report, versus, list); every cell found (restore, export)")
    p.add_argument("--model", default="outputs/04_train_meta_model/defaults")
    p.add_argument("--seeds", type=int, default=SEEDS, help="seeds per cell; a cell finished with fewer is extended")
    p.add_argument("--test-cap", type=int, default=TEST_CAP)
    p.add_argument("--reclaim", action="store_true", help="clear stale claims first (no other worker running)")
    args = p.parse_args(argv)
    if args.datasets is None and args.action not in ("restore", "export"):
        args.datasets = list(DATASETS)
    if args.action == "list":
        for r, d in cells(args.recipes, args.datasets):
            n = _seeds_done(cell_name(r, d))
            print(cell_name(r, d), f"finished with {n} seed(s)" if n else "")
        return 0
    return {"run": run, "report": report, "versus": versus, "restore": restore, "export": export}[args.action](args)


if __name__ == "__main__":
    sys.exit(main())
