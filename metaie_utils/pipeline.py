"""The papermill driver: ``run`` executes the numbered notebooks in order, ``sweep`` expands a grid.

``python -m metaie_utils run --params params/smoke.yaml --set seed=1`` resolves the layered params, then for
each stage 01 -> 05 executes ``notebooks/<stage>.ipynb`` into ``outputs/<stage>/<run_name>/<stage>.ipynb``
with the stage's parameters, pointing each stage's upstream parameter at the previous stage's run directory
of the same run. A stage whose run directory is finished (has ``metrics.json``) is skipped, so a run cut
off half-way resumes where it stopped; ``--set overwrite=true`` re-runs everything.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from metaie_utils.core.params import (
    PIPELINE,
    STAGES,
    ParamsError,
    load_params,
    parse_set,
    stage_class,
    stage_config,
    stage_params,
)
from metaie_utils.core.paths import NOTEBOOKS_DIR, REPO_ROOT, resolve
from metaie_utils.core.runs import (
    close_unfinished,
    is_finished,
    recording_stop,
    run_dir_for,
    stop_on_sigterm,
    timestamp,
    write_json,
)


class StageFailed(RuntimeError):
    """A notebook failed; the message names the notebook, the cell and the error."""


def _rel(p: Path) -> str:
    try:
        return str(p.relative_to(REPO_ROOT))
    except ValueError:
        return str(p)


def plan(params: Mapping[str, Any], stages: Iterable[str], reuse: Mapping[str, str] | None = None) -> list[tuple[str, dict[str, Any], Path]]:
    """The (stage, notebook parameters, run directory) list a run will execute, upstreams wired.

    ``reuse`` maps an upstream stage to an existing run name to read instead of this run's.
    """
    stages = list(stages)
    for s in stages:
        if s not in STAGES:
            raise ParamsError(f"Unknown stage {s!r}; known stages: {', '.join(STAGES)}.")
    run_name = params["run_name"]
    out_root = params.get("out_root", "outputs")
    reuse = dict(reuse or {})
    out = []
    for s in stages:
        cls = stage_class(s)
        p = stage_params(s, params)
        p["run_name"] = run_name
        for param, up in cls.upstream.items():
            if up in reuse:
                p[param] = _rel(run_dir_for(up, reuse[up], out_root))
            elif up in stages:
                p[param] = _rel(run_dir_for(up, run_name, out_root))
        out.append((s, p, run_dir_for(s, run_name, out_root)))
    return out


def _kernel_manager_class() -> type:
    """The notebook kernel's manager: CurveZMQ-encrypted where pyzmq has curve and jupyter_client can provision
    it (ipykernel >= 7 otherwise warns on every stage that its TCP sockets are plain text); the default elsewhere."""
    import zmq
    from jupyter_client.manager import KernelManager

    if not (zmq.has("curve") and "transport_encryption" in KernelManager.class_trait_names()):
        return KernelManager

    class EncryptedKernelManager(KernelManager):
        def __init__(self, **kwargs):
            kwargs.setdefault("transport_encryption", "auto")
            super().__init__(**kwargs)

    return EncryptedKernelManager


def _fmt_elapsed(seconds: float) -> str:
    """``"4m05s"``, ``"1h02m"``, ``"37s"``.

    >>> _fmt_elapsed(37), _fmt_elapsed(245), _fmt_elapsed(3725)
    ('37s', '4m05s', '1h02m')
    """
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


_LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+ \w+ [\w.]+ ")


def stage_progress(stage: str, parameters: Mapping[str, Any], run_dir: Path, width: int = 110,
                   since: float | None = None) -> str:
    """One line on how far a running stage is, from what it has written so far: for 05 the fine-tunes recorded
    in ``results.csv`` against those planned (datasets x initializations x seeds), and for every stage the last
    line of its ``run.log`` (timestamp and logger name dropped, cut to ``width`` characters). With ``since``
    (a ``time.time()``), a ``run.log`` last written before it is ignored: a resumed run would otherwise repeat
    the last line of an earlier, perhaps failed, attempt as if it were news."""
    parts = []
    if stage == "05_fewshot_eval":
        planned = (len(parameters.get("datasets") or []) * len(parameters.get("initializations") or [])
                   * int(parameters.get("fewshot_seeds") or 1))
        done = 0
        f = run_dir / "results.csv"
        if f.is_file():
            try:
                with f.open(newline="") as fh:
                    done = len({(r.get("dataset"), r.get("initialization"), r.get("seed")) for r in csv.DictReader(fh)})
            except (OSError, csv.Error):
                pass
        parts.append(f"{done}/{planned} fine-tunes recorded")
    log = run_dir / "run.log"
    if log.is_file() and (since is None or log.stat().st_mtime >= since):
        try:
            with log.open("rb") as fh:
                fh.seek(max(0, log.stat().st_size - 4096))
                lines = [ln for ln in fh.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        except OSError:
            lines = []
        if lines:
            last = _LOG_PREFIX.sub("", lines[-1]).strip()
            parts.append(last if len(last) <= width else last[: width - 3] + "...")
    return "; ".join(parts)


class _Heartbeat:
    """Prints ``[run] <stage>: <elapsed> elapsed; <progress>`` every ``interval`` seconds while a stage runs, so a
    long notebook cell (a meta-training, twelve fine-tunes) is never silent in the terminal or a log file.
    ``METAIE_HEARTBEAT_S`` sets the interval (default 60; 0 turns it off)."""

    def __init__(self, stage: str, parameters: Mapping[str, Any], run_dir: Path, interval: float | None = None):
        if interval is None:
            try:
                interval = float(os.environ.get("METAIE_HEARTBEAT_S", "60"))
            except ValueError:
                raise ParamsError(f"METAIE_HEARTBEAT_S = {os.environ['METAIE_HEARTBEAT_S']!r}: use seconds "
                                  f"as a number (0 turns the progress lines off).") from None
        self.stage, self.parameters, self.run_dir, self.interval = stage, parameters, run_dir, interval
        self._stop = threading.Event()
        self._t0 = time.time()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            progress = stage_progress(self.stage, self.parameters, self.run_dir, since=self._t0)
            print(f"[run] {self.stage}: {_fmt_elapsed(time.time() - self._t0)} elapsed"
                  + (f"; {progress}" if progress else ""), flush=True)

    def __enter__(self) -> "_Heartbeat":
        if self.interval > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def execute_stage(stage: str, parameters: Mapping[str, Any], run_dir: Path, log_output: bool = False) -> Path:
    """Run one notebook with papermill; raise :class:`StageFailed` naming the notebook, cell and error."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    nb_in = NOTEBOOKS_DIR / f"{stage}.ipynb"
    if not nb_in.is_file():
        raise StageFailed(f"Notebook {nb_in} is missing; this checkout has: {sorted(p.name for p in NOTEBOOKS_DIR.glob('*.ipynb'))}.")
    run_dir.mkdir(parents=True, exist_ok=True)
    nb_out = run_dir / f"{stage}.ipynb"
    with recording_stop(run_dir):  # a run that does not finish says so in its manifest
        try:
            with _Heartbeat(stage, parameters, run_dir):
                pm.execute_notebook(
                    str(nb_in), str(nb_out), parameters=dict(parameters), cwd=str(NOTEBOOKS_DIR), kernel_name="python3",
                    progress_bar=sys.stderr.isatty(), log_output=log_output, request_save_on_cell_execute=True,
                    kernel_manager_class=_kernel_manager_class(),
                )
        except PapermillExecutionError as e:
            close_unfinished(run_dir, "failed", f"cell {e.cell_index}: {e.ename}: {e.evalue}")
            raise StageFailed(
                f"Notebook {nb_in.name} failed in cell {e.cell_index} (execution {e.exec_count}): {e.ename}: {e.evalue}\n"
                f"The executed notebook with the full traceback is {nb_out}."
            ) from None
    return nb_out


def _check_same_params(stage: str, run_dir: Path, stage_params_: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Refuse to skip a finished stage whose recorded params differ from the ones asked for now.

    Without this, ``run --run-name X`` with other params would silently reuse X's stale results. The one
    exception: when every difference asks for more of a list the stage declares ``extendable`` (stage 05's
    datasets and initializations: the recorded list a subset of the asked one), the differences are
    returned and the caller extends the run (its finished work is kept; only the missing part runs).
    """
    from metaie_utils.stages.ablations import param_diff

    bad = param_diff(run_dir, {k: v for k, v in stage_params_.items() if k not in ("overwrite", "run_name")})
    ext = getattr(stage_class(stage), "extendable", ())
    if bad and all(k in ext and isinstance(a, list) and isinstance(b, list) and set(a) <= set(b)
                   for k, (a, b) in bad.items()):
        return bad
    if bad:
        detail = ", ".join(f"{k}: recorded {a!r}, asked {b!r}" for k, (a, b) in bad.items())
        raise StageFailed(
            f"{stage}: the finished run {_rel(run_dir)} was made with other parameters ({detail}). Pick another "
            f"--run-name (make run RUN_NAME=...), delete that directory, or pass --set overwrite=true to re-run it."
        )


def preflight(stage: str, p: Mapping[str, Any]) -> None:
    """Check a stage's params before anything runs: its config validates, and every dataset it names is in the
    registry or a spec that parses. Stage 05's own validator admits any name (its loop takes an injected dataset
    backend); a misspelt name (``conll2004`` for ``conll04``) would otherwise fail inside the notebook, after the
    stage had recorded the new params in the run's manifest. :class:`ParamsError` naming the value."""
    stage_config(stage, p)
    from metaie_utils.tasks.spec import SpecError, check_dataset_arg

    for d in p.get("datasets") or []:
        try:
            check_dataset_arg(str(d))
        except SpecError as e:
            raise ParamsError(f"stage {stage}: datasets = {list(p['datasets'])!r}: {e}") from None


def run_pipeline(
    params: dict[str, Any],
    stages: Iterable[str] = PIPELINE,
    reuse: Mapping[str, str] | None = None,
    log_output: bool = False,
) -> dict[str, Path]:
    """Execute ``stages`` in order for one resolved params mapping; returns stage -> run directory."""
    params = dict(params)
    params["run_name"] = params.get("run_name") or timestamp()
    overwrite = bool(params.get("overwrite", False))
    dirs: dict[str, Path] = {}
    planned = plan(params, stages, reuse)
    for stage, p, _ in planned:  # every stage's params checked before the first one runs or records anything
        preflight(stage, p)
    for stage, p, d in planned:
        dirs[stage] = d
        if is_finished(d) and not overwrite:
            more = _check_same_params(stage, d, p)
            if not more:
                print(f"[run] {stage}: finished earlier, skipped ({_rel(d)})", flush=True)
                continue
            added = "; ".join(f"{k} + {[x for x in b if x not in a]}" for k, (a, b) in more.items())
            print(f"[run] {stage}: extending the finished run {_rel(d)} ({added}); its finished work is kept", flush=True)
            p = {**p, "overwrite": True}  # reopens the run directory (start_run); results.csv is kept
        for param, up in stage_class(stage).upstream.items():  # e.g. --stages 05 without --reuse: meta_model is ''
            same = run_dir_for(up, params["run_name"], params.get("out_root", "outputs"))
            if not p.get(param) and is_finished(same):
                print(f"[run] note: {stage}'s {param} is empty although {_rel(same)} is finished; to use it, "
                      f"add --reuse {up}={params['run_name']}", flush=True)
        t0 = time.time()
        print(f"[run] {stage}: running -> {_rel(d)}", flush=True)
        execute_stage(stage, p, d, log_output=log_output)
        print(f"[run] {stage}: done in {time.time() - t0:.1f}s", flush=True)
    return dirs


def print_results(dirs: Mapping[str, Path]) -> None:
    """Print the few-shot summary table (05) when the run produced one, and where the outputs went."""
    ev = dirs.get("05_fewshot_eval")
    if ev is not None:
        summary = ev / "summary.csv"
        if summary.is_file():
            with summary.open() as f:
                rows = list(csv.reader(f))
            widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(len(rows[0]))]
            print("\nFew-shot results (F1 %, mean ± std over seeds; n_pred = predicted spans on the test sentences):")
            for r in rows:
                print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)))
        results = ev / "results.csv"
        if results.is_file():
            from metaie_utils.stages.fewshot.loop import collapse_report, read_results

            for line in collapse_report(read_results(results)):
                print("  " + line)
    print("\nOutputs:")
    for s, d in dirs.items():
        print(f"  {s:<22} {_rel(d)}")


# ----------------------------------------------------------------------------------------------- sweeps

def run_sweep(spec_path: str | Path, dry_run: bool = False, log_output: bool = False, only: str | None = None,
              narrow: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Expand a sweep spec (see docs/ARCHITECTURE.md "Sweeps") and run every unfinished point.

    ``spec_path`` is a path or a bare name in params/sweeps/. Records ``outputs/sweeps/<name>/sweep.json``
    (spec + points). A sweep.json written by a different spec under the same name, or a run directory
    whose manifest contradicts its point, is refused with the fix named (ablations.check_*).

    ``narrow`` (``sweep --set``) runs a part of every point now: a stage's extendable lists cut to a subset of
    the spec's (``datasets=[conll2003]``), or an execution key (``fewshot_workers``). Nothing else may be set,
    since the runs would no longer be the spec's. The same sweep without ``--set`` later extends the narrowed
    runs (their finished fine-tunes kept); a point whose runs already hold the narrowed part counts as finished.
    """
    from metaie_utils.stages.ablations import (
        EXECUTION_KEYS,
        SweepSpecError,
        check_compatible_record,
        check_run_matches,
        expand_sweep,
        load_sweep_spec,
        run_covers,
    )

    spec = load_sweep_spec(spec_path)
    points = expand_sweep(spec)
    base = load_params(spec.params, dict(spec.set))
    narrow = dict(narrow or {})
    extendable = sorted({k for s in spec.stages for k in getattr(stage_class(s), "extendable", ())})
    for k in narrow:
        if k not in extendable and k not in EXECUTION_KEYS:
            raise SweepSpecError(
                f"sweep --set {k}=...: a sweep's --set may only narrow {' or '.join(extendable) or '(no list of these stages)'} "
                f"to a subset of the spec's, or set {', '.join(sorted(EXECUTION_KEYS))}; {k!r} would make the runs "
                f"differ from the spec's points. Change it in the spec (under another sweep name) instead."
            )
    for pt in points:  # a misspelt value (a dataset name) fails now, not after the first points have run
        pp = load_params(spec.params, {**pt.overrides, "run_name": pt.run_name})
        for s in spec.stages:
            preflight(s, stage_params(s, pp))
    out_root = base.get("out_root", "outputs")
    sweep_dir = resolve(out_root) / "sweeps" / spec.name
    record_path = sweep_dir / "sweep.json"
    if record_path.is_file():
        check_compatible_record(spec, json.loads(record_path.read_text()), where=str(record_path), extendable=extendable)
    record = {"spec": spec.model_dump(), "points": [{"run_name": pt.run_name, "overrides": pt.overrides} for pt in points]}
    if not dry_run:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        write_json(record_path, record)
    results = []
    for i, pt in enumerate(points, 1):
        if only and only not in pt.run_name:
            continue
        for k in set(narrow) & set(extendable):
            full = pt.overrides.get(k, base.get(k))
            if not (isinstance(narrow[k], list) and narrow[k] and isinstance(full, list) and set(narrow[k]) <= set(full)):
                raise SweepSpecError(f"sweep --set {k}={narrow[k]!r}: not a non-empty part of point {pt.run_name}'s {k} {full!r}.")
        wanted = {**pt.overrides, **narrow}
        params = load_params(spec.params, {**wanted, "run_name": pt.run_name})
        stages = list(spec.stages)
        for s in stages:
            check_run_matches(run_dir_for(s, pt.run_name, out_root), stage_params(s, pt.overrides), extendable)
        done = all(is_finished(d) and run_covers(d, stage_params(s, wanted), extendable)
                   for s in stages for d in [run_dir_for(s, pt.run_name, out_root)])
        status = "finished" if done else ("planned" if dry_run else "running")
        part = "".join(f", {k}={v}" for k, v in narrow.items())
        print(f"[sweep {spec.name}] point {i}/{len(points)} {pt.run_name}{part}: {status}", flush=True)
        t0 = time.time()
        if not dry_run and not done:
            run_pipeline(params, stages, reuse=spec.reuse, log_output=log_output)
            status = "ran"
        results.append({"run_name": pt.run_name, "status": "skipped" if done else status, "seconds": round(time.time() - t0, 1)})
    return results


# ----------------------------------------------------------------------------------------------- CLI

def _cmd_run(args: argparse.Namespace) -> int:
    overrides = parse_set(args.set or [])
    if args.run_name:
        overrides["run_name"] = args.run_name
    params = load_params(args.params or [], overrides)
    stages = PIPELINE if not args.stages else [s for s in STAGES if any(s.startswith(x) for x in args.stages.split(","))]
    if not stages:
        raise ParamsError(f"--stages {args.stages!r} matches no stage; stages: {', '.join(STAGES)}.")
    reuse = dict(kv.split("=", 1) for kv in (args.reuse or []))
    params["run_name"] = params.get("run_name") or timestamp()
    print(f"[run] run_name={params['run_name']}  params={' + '.join(['params/defaults.yaml', *(args.params or [])])}", flush=True)
    t0 = time.time()
    try:
        with stop_on_sigterm():
            dirs = run_pipeline(params, stages, reuse=reuse, log_output=args.log_output)
    except StageFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print_results(dirs)
    print(f"\nTotal wall time: {time.time() - t0:.1f}s")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    t0 = time.time()
    try:
        with stop_on_sigterm():
            res = run_sweep(args.spec, dry_run=args.dry_run, log_output=args.log_output, only=args.only,
                            narrow=parse_set(args.set or []))
    except StageFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"\n{len(res)} points; wall time {time.time() - t0:.1f}s")
    for r in res:
        print(f"  {r['run_name']:<60} {r['status']:<9} {r['seconds']}s")
    return 0


def register_cli(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="execute the numbered notebooks in order with papermill",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", nargs="*", metavar="FILE", help="params files layered over params/defaults.yaml, in order")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one parameter (YAML-typed); repeatable")
    p.add_argument("--run-name", help="run name (default: params run_name, else a timestamp)")
    p.add_argument("--stages", help="comma-separated stage prefixes to run, e.g. 03,04 (default: 01-05)")
    p.add_argument("--reuse", action="append", metavar="STAGE=RUN_NAME",
                   help="read this upstream stage's existing run instead of running it, e.g. 02_distill_llm=cpu")
    p.add_argument("--log-output", action="store_true", help="stream notebook output to the terminal")
    p.set_defaults(func=_cmd_run)

    s = sub.add_parser("sweep", help="expand a sweep spec (params/sweeps/*.yaml) and run unfinished points")
    s.add_argument("spec", help="path of the sweep spec")
    s.add_argument("--dry-run", action="store_true", help="list the points and their status, run nothing")
    s.add_argument("--only", help="run only points whose run name contains this text")
    s.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="run a part now: datasets=[...] or initializations=[...] (a subset of the spec's; the sweep "
                        "without --set later extends it), or fewshot_workers=N; repeatable")
    s.add_argument("--log-output", action="store_true", help="stream notebook output to the terminal")
    s.set_defaults(func=_cmd_sweep)
