"""The CPU reproduction grid of issue 17, run over several sessions: ``params/cpu.yaml``, stages 01-05.

The grid (14 datasets x 3 seeds x 5 initializations, 300 test sentences each) takes longer than one session,
and ``outputs/`` may be gone on the next machine. This driver keeps what finished in ``docs/results/cpu/``
(results.csv, the per-sentence counts the paired bootstrap needs, the meta-model's fingerprint and every
session's wall time and machine) and puts it back before it continues:

    # stages 01-04 (the meta-model from the shipped distillation set), then stage 05, resuming from results.csv;
    # exports every 15 min and at the end, so a lost machine loses little
    taskset -c 0,1 env OMP_NUM_THREADS=1 nohup .venv/bin/python scripts/cpu_grid.py run \\
        --set "initializations=[vanilla,metaie,multiie,ner-distill]" --set fewshot_workers=2 > grid.log 2>&1 &
    .venv/bin/python scripts/cpu_grid.py status          # fine-tunes done per dataset and initialization
    .venv/bin/python -m metaie_utils summary outputs/05_fewshot_eval/cpu   # the table with paired 95% CIs

The teacher-in-context baseline (llm-icl: hours of the local teacher, ~1,100 queries per seed at
icl_test_cap 50) needs no meta-model: its answers are exported with the grid into the shipped answer set
``metaie_utils/data/distillation/icl-qwen2.5-0.5b-answers.jsonl.gz``, which stage 05 replays on any machine
(the teacher starts only for the answers it lacks). Add it with ``--set "initializations=[...,llm-icl]"``, or,
on a machine without the grid's meta-model, run it on its own (one run per core, datasets split between them)
and merge the rows into the kept grid:

    taskset -c 0 env OMP_NUM_THREADS=1 nohup .venv/bin/python -m metaie_utils evaluate --params params/cpu.yaml \
        --init llm-icl --seeds 1 --run-name icl-a --dataset conll04 --dataset casie ... > icl_a.log 2>&1 &
    .venv/bin/python scripts/cpu_grid.py merge outputs/05_fewshot_eval/icl-a     # rows, counts, answers

Jobs run seed-major (every dataset's first seed before any second), so a grid cut short is paired on every
dataset it reached. ``--set`` narrows a session to some initializations (the teacher-free ones first: the
NER-distillation baseline needs the teacher's NER answers, ``scripts/distill_shipped.sh`` with
``PROMPT=ner-icl-v1``); the few-shot recipe must stay the same, which the loop enforces.

The rows kept were made with the meta-model whose weights' sha256 is in ``grid.json``. Stage 04 is
deterministic for a given machine type and thread count, so a new machine usually retrains the same weights;
``restore`` refuses to continue on a meta-model with other weights (``--force`` continues anyway and records
both fingerprints).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEPT = ROOT / "docs" / "results" / "cpu"
RUN_NAME = "cpu"
RUN = ROOT / "outputs" / "05_fewshot_eval" / RUN_NAME
META = ROOT / "outputs" / "04_train_meta_model" / RUN_NAME
PARAMS = "params/cpu.yaml"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta_fingerprint(meta_dir: Path | None = None) -> str | None:
    """sha256 of the meta-model's weights (``model/*.safetensors`` of the 04 run), None before stage 04 finished."""
    meta_dir = meta_dir or META
    files = sorted((meta_dir / "model").glob("*.safetensors")) if (meta_dir / "metrics.json").is_file() else []
    if not files:
        return None
    h = hashlib.sha256()
    for f in files:
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _grid() -> dict:
    p = KEPT / "grid.json"
    return json.loads(p.read_text()) if p.is_file() else {"run": f"{PARAMS} --run-name {RUN_NAME}", "sessions": []}


def _write_grid(g: dict) -> None:
    KEPT.mkdir(parents=True, exist_ok=True)
    (KEPT / "grid.json").write_text(json.dumps(g, indent=1) + "\n")


def _rows(path: Path) -> int:
    return max(0, len(path.read_text().splitlines()) - 1) if path.is_file() else 0


def _fine_tunes(path: Path) -> int:
    import csv

    if not path.is_file():
        return 0
    with path.open() as f:
        return len({(r["dataset"], r["initialization"], r["seed"]) for r in csv.DictReader(f)})


def restore(force: bool = False) -> int:
    """docs/results/cpu -> outputs/05_fewshot_eval/cpu when outputs/ lacks it (a new machine)."""
    if not (KEPT / "results.csv").is_file():
        print("[cpu_grid] nothing kept yet")
        return 0
    if (RUN / "results.csv").is_file():
        print(f"[cpu_grid] {RUN.relative_to(ROOT)} has its results.csv: nothing restored")
        return 0
    kept_fp, fp = _grid().get("meta_model_sha256"), meta_fingerprint()
    if fp is None:
        raise SystemExit(f"[cpu_grid] restore needs the meta-model first: {META.relative_to(ROOT)} is not finished "
                         "(run stages 01-04: `scripts/cpu_grid.py run` does).")
    if kept_fp and fp != kept_fp and not force:
        raise SystemExit(f"[cpu_grid] the kept rows were made with a meta-model of sha256 {kept_fp[:12]}, this machine's "
                         f"stage 04 gave {fp[:12]} (another CPU or thread count changes the arithmetic). Continue "
                         "anyway with --force (both fingerprints are recorded), or keep this machine's grid apart "
                         "(move docs/results/cpu away).")
    RUN.mkdir(parents=True, exist_ok=True)
    shutil.copy2(KEPT / "results.csv", RUN / "results.csv")
    if (KEPT / "counts.jsonl.gz").is_file():
        with gzip.open(KEPT / "counts.jsonl.gz", "rb") as src, (RUN / "counts.jsonl").open("wb") as dst:
            shutil.copyfileobj(src, dst)
    if kept_fp and fp != kept_fp:
        g = _grid()
        g.setdefault("other_meta_models", []).append({"sha256": fp, "from": _now()})
        _write_grid(g)
    print(f"[cpu_grid] restored {_fine_tunes(RUN / 'results.csv')} fine-tunes into {RUN.relative_to(ROOT)}")
    return 0


def export(session: dict | None = None) -> int:
    """outputs/05_fewshot_eval/cpu -> docs/results/cpu (deterministic gzip: no churn when nothing changed)."""
    from metaie_utils.core.io import atomic_write_bytes

    if not (RUN / "results.csv").is_file():
        print("[cpu_grid] no results.csv yet: nothing exported")
        return 0
    KEPT.mkdir(parents=True, exist_ok=True)
    shutil.copy2(RUN / "results.csv", KEPT / "results.csv")
    if (RUN / "counts.jsonl").is_file():
        atomic_write_bytes(KEPT / "counts.jsonl.gz", gzip.compress((RUN / "counts.jsonl").read_bytes(), 9, mtime=0))
    icl = export_icl_answers()
    g = _grid()
    g.setdefault("meta_model_sha256", meta_fingerprint())
    if icl:
        g["icl_answers"] = icl
    if session is not None:
        g["sessions"] = [s for s in g["sessions"] if s.get("start") != session["start"]] + [session]
    g["fine_tunes"] = _fine_tunes(RUN / "results.csv")
    _write_grid(g)
    print(f"[cpu_grid] exported {g['fine_tunes']} fine-tunes to {KEPT.relative_to(ROOT)}")
    return 0


def export_icl_answers(teacher: str = "local:qwen2.5-0.5b") -> dict | None:
    """The llm-icl teacher's answers so far -> the shipped answer set (metaie_utils/data/distillation), which
    stage 05 replays on any machine (llm-icl needs no meta-model, so it is the grid's most portable part)."""
    from metaie_utils.llm import shipped

    cache = ROOT / "outputs" / "baselines" / "icl-cache.sqlite"
    if not cache.is_file():
        return None
    out = shipped.export_answers(cache, shipped.answers_path(teacher), teacher,
                                 made_by="scripts/cpu_grid.py (stage 05 llm-icl of params/cpu.yaml, one core)")
    info = shipped.info(out)
    print(f"[cpu_grid] exported {info['answers']} llm-icl answers to {out.relative_to(ROOT)}")
    return {"file": str(out.relative_to(ROOT)), "answers": info["answers"]}


def _drop_keyed(keys: set[tuple[str, str, str]]) -> int:
    """Remove the rows and per-sentence counts of (dataset, initialization, seed) ``keys`` from the kept grid and
    from outputs' grid run (atomic rewrites) -> the kept rows removed."""
    import csv
    import io

    from metaie_utils.core.io import atomic_write_bytes, atomic_write_text

    def key(r: dict) -> tuple[str, str, str]:
        return (str(r.get("dataset")), str(r.get("initialization")), str(r.get("seed")))

    dropped = 0
    for d in [KEPT] + ([RUN] if (RUN / "results.csv").is_file() else []):
        path = d / "results.csv"
        if path.is_file():
            with path.open(newline="") as f:
                reader = csv.DictReader(f)
                fields, rows = reader.fieldnames or [], list(reader)
            keep = [r for r in rows if key(r) not in keys]
            if d == KEPT:
                dropped = len(rows) - len(keep)
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=fields)  # the \r\n of append_results: a merge rewrites no line it keeps
            w.writeheader()
            w.writerows(keep)
            atomic_write_text(path, buf.getvalue())
        gz, plain = d / "counts.jsonl.gz", d / "counts.jsonl"
        for p, packed in ((gz, True), (plain, False)):
            if not p.is_file():
                continue
            raw = gzip.decompress(p.read_bytes()) if packed else p.read_bytes()
            lines = [x for x in raw.decode("utf-8").splitlines(keepends=True) if x.strip() and key(json.loads(x)) not in keys]
            data = "".join(lines).encode("utf-8")
            atomic_write_bytes(p, gzip.compress(data, 9, mtime=0) if packed else data)
    return dropped


def merge(src: Path, init: str = "llm-icl", replace: bool = False) -> int:
    """Add ``init``'s rows and per-sentence counts from another stage-05 run (``src``) to the kept grid, and to
    outputs' grid run when this machine has one (so the next export keeps them).

    For the teacher in context, which needs no meta-model: a machine can run it with ``python -m metaie_utils
    evaluate --params params/cpu.yaml --init llm-icl --run-name X`` (several such runs, one per core) without
    retraining the grid's meta-model, then merge. Each merged (dataset, seed) must have the grid's support set:
    its n_support and n_instances must equal those of the grid's rows of the same dataset and seed (the sampler
    is seeded, so on the same data they do); fine-tunes the grid already has are skipped, never duplicated,
    unless ``replace``: then ``src``'s rows and counts take the place of the grid's for the same (dataset,
    initialization, seed), e.g. a rerun after a prompt fix (recorded in grid.json's ``merged`` entry).
    """
    import csv

    from metaie_utils.core.io import atomic_write_bytes
    from metaie_utils.core.stats import append_counts
    from metaie_utils.stages.fewshot.loop import append_results, read_results

    src = Path(src)
    rows = [r for r in read_results(src / "results.csv") if r.get("initialization") == init]
    if not rows:
        raise SystemExit(f"[cpu_grid] {src / 'results.csv'} has no {init} row")
    kept_rows = read_results(KEPT / "results.csv")
    have = {(r["dataset"], r["initialization"], str(r["seed"])) for r in kept_rows}
    support = {(r["dataset"], str(r["seed"])): (r.get("n_support"), r.get("n_instances"))
               for r in kept_rows if r.get("initialization") != "llm-icl"}
    for r in rows:
        want = support.get((r["dataset"], str(r["seed"])))
        got = (r.get("n_support"), r.get("n_instances"))
        if want is not None and want != got:
            raise SystemExit(f"[cpu_grid] {src.name}: {r['dataset']} seed {r['seed']} was run on another support set "
                             f"(n_support, n_instances) = {got}, the grid's is {want}; not merged")
    replaced = 0
    if replace:
        src_keys = {(r["dataset"], r["initialization"], str(r["seed"])) for r in rows}
        replaced = _drop_keyed(src_keys)
        have -= src_keys
    new = [r for r in rows if (r["dataset"], r["initialization"], str(r["seed"])) not in have]
    keys = {(r["dataset"], r["initialization"], str(r["seed"])) for r in new}
    counts = []
    if (src / "counts.jsonl").is_file():
        for line in (src / "counts.jsonl").read_text().splitlines():
            if line.strip():
                c = json.loads(line)
                if (c.get("dataset"), c.get("initialization"), str(c.get("seed"))) in keys:
                    counts.append(c)
    targets = [KEPT] + ([RUN] if (RUN / "results.csv").is_file() else [])
    for d in targets:
        append_results(d / "results.csv", new)
        if d == KEPT:
            old = gzip.decompress((KEPT / "counts.jsonl.gz").read_bytes()) if (KEPT / "counts.jsonl.gz").is_file() else b""
            add = "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in counts).encode("utf-8")
            atomic_write_bytes(KEPT / "counts.jsonl.gz", gzip.compress(old + add, 9, mtime=0))
        else:
            append_counts(d / "counts.jsonl", counts)
    g = _grid()
    if new:
        manifest = src / "manifest.json"
        info = json.loads(manifest.read_text()) if manifest.is_file() else {}
        g.setdefault("merged", []).append({
            "at": _now(), "from": str(src.relative_to(ROOT)) if src.is_relative_to(ROOT) else str(src),
            "initialization": init, "fine_tunes": len(keys), "datasets": sorted({k[0] for k in keys}),
            "machine": info.get("machine"), "argv": " ".join(info.get("argv", [])[1:]),
            "run_start": info.get("start_time"), "run_end": info.get("end_time"),
            **({"replaced_rows": replaced} if replace else {})})
    icl = export_icl_answers() if init == "llm-icl" else None
    if icl:
        g["icl_answers"] = icl
    g["fine_tunes"] = _fine_tunes(KEPT / "results.csv")
    _write_grid(g)
    skipped = len({(r["dataset"], str(r["seed"])) for r in rows}) - len(keys)
    print(f"[cpu_grid] merged {len(keys)} {init} fine-tunes from {src} ({skipped} already in the grid"
          f"{f', {replaced} rows replaced' if replace else ''}); "
          f"{g['fine_tunes']} in {KEPT.relative_to(ROOT)}")
    if new:
        refresh_summaries(init)
    return 0


def refresh_summaries(init: str) -> list[Path]:
    """Rewrite the kept grid's tables after a merge: the full ``summary_ci.csv/.png`` (metaie against every
    other initialization) and, for the teacher in context (scored on its own capped subset of the test sentences),
    the narrowed ``summary_ci_metaie_vs_llm-icl.csv/.png``, so the committed tables never lag the committed rows
    -> the files written. A fine-tuned initialization merged again (``--replace``) has no narrowed table: the full
    one holds it on the same sentences."""
    from metaie_utils.summary import output_stem, summarize_run

    written = []
    for baselines in [None] + ([[init]] if init == "llm-icl" else []):
        summarize_run(KEPT, baselines=baselines, log=lambda *_: None)
        written += [KEPT / f"{output_stem('metaie', baselines)}{ext}" for ext in (".csv", ".png")]
    print(f"[cpu_grid] rewrote {', '.join(p.name for p in written)} in {KEPT.relative_to(ROOT)}")
    return written


def status() -> int:
    import csv
    from collections import defaultdict

    path = RUN / "results.csv" if (RUN / "results.csv").is_file() else KEPT / "results.csv"
    if not path.is_file():
        print("[cpu_grid] no fine-tune recorded yet")
        return 0
    seeds: dict[tuple[str, str], set] = defaultdict(set)
    with path.open() as f:
        for r in csv.DictReader(f):
            seeds[(r["dataset"], r["initialization"])].add(r["seed"])
    inits = sorted({i for _, i in seeds})
    print(f"{path.relative_to(ROOT)}: seeds done per dataset and initialization")
    print(f"{'dataset':<20}" + "".join(f"{i:>13}" for i in inits))
    for d in dict.fromkeys(d for d, _ in seeds):
        print(f"{d:<20}" + "".join(f"{len(seeds.get((d, i), ())):>13}" for i in inits))
    g = _grid()
    for s in g.get("sessions", []):
        print(f"session {s['start']} -> {s.get('end')}: {s.get('fine_tunes_added')} fine-tunes in {s.get('seconds')} s "
              f"({s.get('machine', {}).get('cpu')}, sets {s.get('sets')})")
    print(remaining_line(seeds, inits, g.get("sessions", [])))
    return 0


def remaining_line(seeds: dict, inits: list[str], sessions: list[dict]) -> str:
    """How much of the grid is left for the initializations seen so far, and how long it takes at the latest
    session's rate (its wall seconds per fine-tune, with its worker count)."""
    import yaml

    p = yaml.safe_load((ROOT / PARAMS).read_text()) if (ROOT / PARAMS).is_file() else {}
    datasets, n_seeds = p.get("datasets") or sorted({d for d, _ in seeds}), int(p.get("fewshot_seeds") or 3)
    planned = len(datasets) * len(inits) * n_seeds
    done = sum(min(len(v), n_seeds) for (d, i), v in seeds.items() if d in datasets and i in inits)
    line = f"{done} of {planned} fine-tunes done ({len(datasets)} datasets x {', '.join(inits)} x {n_seeds} seeds)"
    rated = [s for s in sessions if (s.get("fine_tunes_added") or 0) > 0 and s.get("seconds")]
    if rated and planned > done:
        last = rated[-1]
        per = last["seconds"] / last["fine_tunes_added"]
        line += (f"; {planned - done} left, ~{(planned - done) * per / 3600:.1f} h at the latest session's rate "
                 f"({per:.0f} s of wall time per fine-tune, {last.get('machine', {}).get('cores', '?')} cores)")
    return line


def run(sets: list[str], every: float, force: bool) -> int:
    from metaie_utils.core.device import machine_info

    base = [sys.executable, "-m", "metaie_utils", "run", "--params", PARAMS, "--run-name", RUN_NAME]
    sets_args = [a for s in sets for a in ("--set", s)]
    subprocess.run(base + ["--stages", "01,02,03,04"] + sets_args, cwd=ROOT, check=True)
    restore(force)
    before = _fine_tunes(RUN / "results.csv")
    session = {"start": _now(), "sets": sets, "machine": machine_info(), "fine_tunes_before": before}
    t0 = time.time()
    proc = subprocess.Popen(base + ["--stages", "05", "--reuse", f"04_train_meta_model={RUN_NAME}"] + sets_args, cwd=ROOT)
    try:
        while proc.poll() is None:
            deadline = time.time() + every
            while proc.poll() is None and time.time() < deadline:
                time.sleep(2)
            session.update(end=_now(), seconds=round(time.time() - t0), fine_tunes_added=_fine_tunes(RUN / "results.csv") - before)
            export(session)
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
    session.update(end=_now(), seconds=round(time.time() - t0), fine_tunes_added=_fine_tunes(RUN / "results.csv") - before,
                   returncode=proc.returncode)
    export(session)
    return proc.returncode or 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="stages 01-04, restore, stage 05 (resumes), exporting as it goes")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="passed to `metaie_utils run`")
    r.add_argument("--export-every", type=float, default=900.0, help="seconds between exports (default 900)")
    r.add_argument("--force", action="store_true", help="continue on a meta-model with other weights")
    rs = sub.add_parser("restore", help="docs/results/cpu -> outputs/05_fewshot_eval/cpu")
    rs.add_argument("--force", action="store_true")
    sub.add_parser("export", help="outputs/05_fewshot_eval/cpu -> docs/results/cpu")
    sub.add_parser("status", help="fine-tunes done per dataset and initialization")
    m = sub.add_parser("merge", help="add one initialization's rows from another stage-05 run (e.g. llm-icl)")
    m.add_argument("run_dir", type=Path, help="the other run, e.g. outputs/05_fewshot_eval/icl-forward")
    m.add_argument("--init", default="llm-icl", help="the initialization to take (default llm-icl)")
    m.add_argument("--replace", action="store_true",
                   help="the run's rows replace the grid's for the same dataset, initialization and seed (a rerun after a fix)")
    a = ap.parse_args(argv)
    if a.cmd == "run":
        return run(a.set, a.export_every, a.force)
    if a.cmd == "restore":
        return restore(a.force)
    if a.cmd == "export":
        return export()
    if a.cmd == "merge":
        return merge(a.run_dir, a.init, a.replace)
    return status()


if __name__ == "__main__":
    raise SystemExit(main())
