"""Run directories, manifests and metrics.

One run, one directory: ``<out_root>/<stage>/<run_name>/`` holds the executed notebook (when run by
papermill), ``manifest.json`` (resolved params, git sha and dirty flag, package versions, seed, device,
start and end time, status) and ``metrics.json``. A finished run directory (one with ``metrics.json``)
is never overwritten unless ``overwrite=True``.

In a notebook::

    cfg = SampleConfig.from_namespace(globals())
    run = start_run(cfg)            # creates the directory, writes the manifest, seeds everything
    ...                             # write files under run.dir
    run.finish({"sentences": 1000}) # metrics.json + end time
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Mapping

from metaie_utils.core.device import machine_info, pick_device, seed_everything
from metaie_utils.core.io import atomic_write_text
from metaie_utils.core.params import StageConfig
from metaie_utils.core.paths import REPO_ROOT, resolve

MANIFEST = "manifest.json"


METRICS = "metrics.json"


PACKAGES = ["torch", "transformers", "datasets", "openai", "papermill", "nltk", "numpy", "pydantic", "llama_cpp_python"]


class RunExistsError(FileExistsError):
    """A finished run directory would be overwritten."""


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def timestamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def git_state() -> dict[str, Any]:
    """``{"sha": ..., "dirty": bool}`` of the repository, or ``{"sha": None}`` outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                                    capture_output=True, text=True, check=True).stdout.strip())
        return {"sha": sha, "dirty": dirty}
    except (OSError, subprocess.CalledProcessError):
        return {"sha": None, "dirty": None}


def package_versions(names: list[str] = PACKAGES) -> dict[str, str | None]:
    out = {"python": platform.python_version()}
    for n in names:
        try:
            out[n] = metadata.version(n.replace("_", "-"))
        except metadata.PackageNotFoundError:
            out[n] = None
    return out


def run_dir_for(stage: str, run_name: str, out_root: str = "outputs") -> Path:
    return resolve(out_root) / stage / run_name


def is_finished(run_dir: Path) -> bool:
    return (Path(run_dir) / METRICS).is_file()


def close_unfinished(run_dir: Path, status: str, reason: str) -> bool:
    """Record in an unfinished run's manifest that it ended without finishing: ``status`` (``stopped``: killed or
    interrupted; ``failed``: an error), ``end_time`` and ``stop_reason``, so a run that died does not read
    "running" forever. Nothing else changes: the next run of the same directory resumes as before (stage 04 from
    its last checkpoint, stage 05 from results.csv) and writes "running" again. A finished run (metrics.json), a
    directory without a manifest, or an unreadable manifest is left alone; returns whether it wrote."""
    if status not in ("stopped", "failed"):
        raise ValueError(f"close_unfinished: status = {status!r}; use 'stopped' or 'failed'.")
    d = Path(run_dir)
    m = d / MANIFEST
    if is_finished(d) or not m.is_file():
        return False
    try:
        manifest = read_json(m)
    except (OSError, ValueError):
        return False
    if manifest.get("status") != "running":
        return False
    manifest.update(status=status, end_time=now(), stop_reason=str(reason)[:500])
    write_json(m, manifest)
    return True


_ACTIVE_RUNS: list[Path] = []  # the run directories open under recording_stop (a stack: one at a time in practice)


@contextmanager
def recording_stop(run_dir: Path) -> Iterator[None]:
    """Work on ``run_dir`` so that a run which does not finish says so in its manifest: an exception records
    ``failed`` (its type and message), Ctrl-C ``stopped``, and ``kill -TERM`` ``stopped`` under
    :func:`stop_on_sigterm`. The exception propagates; a run that finished or was already closed is left alone."""
    d = Path(run_dir)
    _ACTIVE_RUNS.append(d)
    try:
        yield
    except (KeyboardInterrupt, SystemExit) as e:
        close_unfinished(d, "stopped", f"{type(e).__name__} {e}".strip())
        raise
    except BaseException as e:
        close_unfinished(d, "failed", f"{type(e).__name__}: {e}")
        raise
    finally:
        _ACTIVE_RUNS.remove(d)


def _record_stop_and_die(signum: int, frame: Any) -> None:
    for d in _ACTIVE_RUNS:
        close_unfinished(d, "stopped", f"signal {signum} (kill -TERM)")
    where = f"; {', '.join(str(d) for d in _ACTIVE_RUNS)} recorded as stopped (resumable)" if _ACTIVE_RUNS else ""
    print(f"[run] stopped by signal {signum}{where}", file=sys.stderr, flush=True)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)  # die as before: a notebook kernel and the few-shot workers die with their parent


@contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """While a command runs (``run``, ``sweep``, ``evaluate``), ``kill -TERM`` (how a background run is stopped:
    it ignores Ctrl-C) first records the open runs' manifests (:func:`recording_stop`) as ``stopped`` (they read
    "running" for ever), then ends the process by the signal's default action, at once. Unwinding through
    papermill instead would wait for the running cell (a meta-training) to end. Outside the main thread it does
    nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _record_stop_and_die)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (a crash never leaves half a file)."""
    atomic_write_text(path, json.dumps(obj, indent=2, default=str, ensure_ascii=False) + "\n")


@dataclass
class Run:
    """An open run: its directory, config and manifest."""

    dir: Path
    cfg: StageConfig
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def stage(self) -> str:
        return self.cfg.stage

    def path(self, name: str) -> Path:
        """A file path inside the run directory (parents created)."""
        p = self.dir / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def log(self, name: str = "run") -> logging.Logger:
        """A logger writing to ``<run>/<name>.log`` (warnings also reach stderr, through logging's last resort).

        The same file also receives the package's own INFO records (``metaie_utils.*``: the Trainer's loss
        per logging step, truncation counts), which are not printed into notebook cells.
        """
        lg = logging.getLogger(f"metaie.{self.stage}.{self.dir.name}.{name}")
        if not lg.handlers:
            lg.setLevel(logging.INFO)
            fh = logging.FileHandler(self.path(f"{name}.log"))
            fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
            lg.addHandler(fh)
            lg.propagate = True
            pkg = logging.getLogger("metaie_utils")
            pkg.setLevel(logging.INFO)
            for h in [h for h in pkg.handlers if getattr(h, "_metaie_run", False)]:
                pkg.removeHandler(h)  # one run's file at a time: the newest run of this process
                h.close()
            pkg_fh = logging.FileHandler(self.path(f"{name}.log"))
            pkg_fh.setFormatter(fh.formatter)
            pkg_fh._metaie_run = True  # type: ignore[attr-defined]
            pkg.addHandler(pkg_fh)
        return lg

    def update_manifest(self, **items: Any) -> None:
        self.manifest.update(items)
        write_json(self.dir / MANIFEST, self.manifest)

    def finish(self, metrics: Mapping[str, Any] | None = None) -> Path:
        """Write ``metrics.json`` (the run counts as finished from here) and close the manifest."""
        end = now()
        m = dict(metrics or {})
        missing = [k for k in getattr(self.cfg, "metrics_keys", ()) if k not in m]
        if missing:
            raise ValueError(f"{self.stage}: metrics.json must hold {list(self.cfg.metrics_keys)}; missing {missing}. "
                             f"The stage's notebook computes them in its last cell.")
        write_json(self.dir / METRICS, m)
        self.update_manifest(status="finished", end_time=end)
        return self.dir / METRICS


def start_run(cfg: StageConfig, device: str = "auto") -> Run:
    """Create (or reuse an unfinished) run directory for ``cfg``, write the manifest, seed everything.

    Raises :class:`RunExistsError` when the directory holds a finished run and ``cfg.overwrite`` is
    False.
    """
    name = cfg.run_name or timestamp()
    d = run_dir_for(cfg.stage, name, cfg.out_root)
    if is_finished(d) and not cfg.overwrite:
        raise RunExistsError(
            f"Run directory {d} already holds a finished run (metrics.json). Pick another run_name, or set "
            f"overwrite=True (--set overwrite=true) to replace it."
        )
    d.mkdir(parents=True, exist_ok=True)
    if is_finished(d):
        (d / METRICS).unlink()
    seed_everything(cfg.seed)
    try:
        dev = pick_device(device)
    except Exception:  # torch missing: the stage does not need it
        dev = "cpu"
    manifest = {
        "stage": cfg.stage,
        "run_name": name,
        "status": "running",
        "params": cfg.model_dump(),
        "git": git_state(),
        "versions": package_versions(),
        "seed": cfg.seed,
        "device": dev,
        "machine": machine_info(),
        "argv": sys.argv,
        "start_time": now(),
        "end_time": None,
    }
    run = Run(dir=d, cfg=cfg, manifest=manifest)
    run.update_manifest()
    return run


def upstream_file(path: str | Path, filename: str) -> Path:
    """Accept either a run directory or the file itself: ``upstream_file(run_dir, "sentences.jsonl")``."""
    p = resolve(path)
    if p.is_dir():
        p = p / filename
    if not p.exists():
        raise FileNotFoundError(
            f"Expected {filename} at {p}. Point the parameter at the upstream stage's run directory "
            f"(outputs/<stage>/<run_name>) or at the file itself."
        )
    return p
