"""A local teacher LLM: llama-cpp-python's OpenAI-compatible server on 127.0.0.1.

``local_teacher`` starts ``python -m llama_cpp.server --model PATH --host 127.0.0.1 --port P --n_ctx N``
on a free port with a GGUF file from :func:`metaie_utils.assets.gguf_path` (an alias such as
``smollm2-135m`` / ``qwen2.5-0.5b``, or a path to a ``.gguf``), waits until ``/v1/models`` answers,
logs the server's output into ``log_dir`` and stops it on exit or interrupt (terminate, then kill).

>>> with local_teacher("smollm2-135m") as t:                     # doctest: +SKIP
...     client = LLMClient(t.base_url, t.model)
>>> t.base_url                                                     # doctest: +SKIP
'http://127.0.0.1:40123/v1'

``parallel``: llama-cpp-python's server answers one request at a time per model; when the installed
server has a parallel-slots setting it is passed, otherwise extra concurrent requests queue (the
benchmark shows it).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from metaie_utils.core.device import die_with_parent
from metaie_utils.core.errors import UserError


class TeacherError(UserError):
    """The local teacher server cannot start (package or model missing, crash, no answer)."""


@dataclass
class LocalTeacher:
    """A running local server: what an :class:`~metaie_utils.llm.LLMClient` needs, plus its process."""

    base_url: str
    model: str
    port: int
    gguf: Path
    log_path: Path
    process: subprocess.Popen
    startup_s: float = 0.0


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_server_package() -> None:
    """Raise :class:`TeacherError` with the install command when llama-cpp-python[server] is missing."""
    missing = [m for m in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")
               if importlib.util.find_spec(m) is None]
    if missing:
        raise TeacherError(
            f"The local teacher needs llama-cpp-python's server (missing modules: {', '.join(missing)}). Install it "
            f"with `{sys.executable} -m pip install 'llama-cpp-python[server]'` (builds from source, ~5 min on 2 cores), "
            f"or use a remote teacher (set base_url and a model name)."
        )


def server_settings() -> set[str]:
    """Setting names the installed ``llama_cpp.server`` accepts (``n_ctx``, ``n_threads``, ...)."""
    try:
        from llama_cpp.server.settings import ModelSettings, ServerSettings
    except ImportError:  # pragma: no cover - checked by check_server_package first
        return set()
    return set(ModelSettings.model_fields) | set(ServerSettings.model_fields)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def server_command(gguf: Path, port: int, n_ctx: int = 2048, parallel: int = 1, alias: str | None = None,
                   n_threads: int | None = None, settings: set[str] | None = None) -> list[str]:
    """The argv that starts the server (only flags the installed server knows).

    >>> server_command(Path("m.gguf"), 8080, settings={"n_ctx", "model_alias"})[-6:]
    ['--port', '8080', '--n_ctx', '2048', '--model_alias', 'm']
    """
    settings = server_settings() if settings is None else settings
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port)]
    if "n_ctx" in settings:
        cmd += ["--n_ctx", str(n_ctx)]
    if "model_alias" in settings:
        cmd += ["--model_alias", alias or Path(gguf).stem]
    if n_threads and "n_threads" in settings:
        cmd += ["--n_threads", str(n_threads)]
    for name in ("n_parallel", "parallel"):
        if parallel > 1 and name in settings:
            cmd += [f"--{name}", str(parallel)]
            break
    return cmd


def wait_ready(base_url: str, process: subprocess.Popen | None, log_path: Path | None, timeout: float = 180) -> float:
    """Poll ``GET {base_url}/models`` until it answers 200; return seconds waited.

    Raises :class:`TeacherError` with the end of the server log when the process exits or time runs out.
    """
    t0 = time.monotonic()
    while True:
        if process is not None and process.poll() is not None:
            raise TeacherError(f"The teacher server exited with code {process.returncode} before answering. "
                               f"Last log lines ({log_path}):\n{_tail(log_path)}")
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=2) as r:
                if r.status == 200:
                    json.loads(r.read() or b"{}")
                    return time.monotonic() - t0
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError, OSError):
            pass
        if time.monotonic() - t0 > timeout:
            raise TeacherError(f"The teacher server at {base_url} did not answer /models within {timeout:.0f}s. "
                               f"Last log lines ({log_path}):\n{_tail(log_path)}")
        time.sleep(0.25)


def _tail(path: Path | None, n: int = 15) -> str:
    if path is None or not Path(path).is_file():
        return "(no log)"
    return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])


def server_preexec() -> None:
    """The llama.cpp server's ``preexec_fn``: SIGKILL when its parent dies. SIGTERM is not enough there: uvicorn
    shuts down gracefully, finishing the request in flight (up to a prompt's time, minutes on one core) for a
    client that is gone. The server holds nothing a kill loses (the client caches every answer)."""
    import signal

    die_with_parent(signal.SIGKILL)


def stop_process(process: subprocess.Popen, grace: float = 10.0) -> int | None:
    """Terminate, wait ``grace`` seconds, then kill. Returns the exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(grace)
    return process.returncode


@contextlib.contextmanager
def local_teacher(
    model: str = "smollm2-135m",
    port: int | None = None,
    parallel: int = 1,
    n_ctx: int = 2048,
    log_dir: Path | None = None,
    n_threads: int | None = None,
    startup_timeout: float = 180,
) -> Iterator[LocalTeacher]:
    """Start a llama.cpp server for ``model`` (alias or .gguf path), yield it, always stop it.

    The server binds 127.0.0.1 only; its output goes to ``<log_dir>/teacher_server.log`` (a temp folder
    when ``log_dir`` is None). ``n_threads`` defaults to the cores this process may run on
    (:func:`usable_cores`: ``taskset``/cgroup affinity, so two pinned jobs do not fight over one core).
    """
    check_server_package()
    from metaie_utils.core.assets import gguf_path

    gguf = gguf_path(model)
    alias = model if not str(model).endswith(".gguf") else Path(model).stem
    port = port or free_port()
    log_dir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="metaie-teacher-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "teacher_server.log"
    cmd = server_command(gguf, port, n_ctx, parallel, alias, n_threads or usable_cores())
    base_url = f"http://127.0.0.1:{port}/v1"
    with open(log_path, "ab") as log:
        log.write(f"\n$ {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                preexec_fn=server_preexec if sys.platform.startswith("linux") else None)
    try:
        waited = wait_ready(base_url, proc, log_path, startup_timeout)
        try:
            yield LocalTeacher(base_url=base_url, model=alias, port=port, gguf=gguf, log_path=log_path, process=proc,
                               startup_s=waited)
        except Exception as e:
            if proc.poll() is not None:  # the real cause is the dead server, not the client's connection error
                raise TeacherError(died_message(proc.returncode, log_path)) from e
            raise
    finally:
        stop_process(proc)


def died_message(returncode: int | None, log_path: Path | None) -> str:
    """Why the local teacher server stopped answering, from its exit code and log.

    >>> died_message(-4, None).splitlines()[0]
    'The local teacher server died (exit code -4, SIGILL: illegal instruction).'
    """
    name = ""
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = ""
    if name == "SIGILL":
        head = (f"The local teacher server died (exit code {returncode}, SIGILL: illegal instruction).\n"
                "llama-cpp-python was compiled for CPU instructions this machine does not run (a -march=native build "
                "from another CPU, or AMX/AVX-512 that a VM does not enable). Rebuild it portably: "
                "`pip cache remove 'llama_cpp_python*'; pip uninstall -y llama-cpp-python; "
                "python -m metaie_utils assets install teacher-server`.")
    else:
        head = (f"The local teacher server died (exit code {returncode}{', ' + name if name else ''}): out of memory "
                "(SIGKILL) or a llama.cpp crash. Finished responses are in the cache: re-run to resume.")
    return f"{head}\nLast lines of {log_path}:\n{_tail(log_path)}"


def parse_teacher(teacher: str) -> tuple[str, str | None]:
    """``"local:smollm2-135m"`` -> ``("local", "smollm2-135m")``; ``"gpt-3.5-turbo"`` -> ``("remote", None)``.

    >>> parse_teacher("local:qwen2.5-0.5b")
    ('local', 'qwen2.5-0.5b')
    >>> parse_teacher("gpt-3.5-turbo")
    ('remote', None)
    """
    if teacher.startswith("local:"):
        name = teacher.split(":", 1)[1].strip()
        if not name:
            raise UserError("teacher 'local:' needs a model alias or a .gguf path, e.g. local:smollm2-135m.")
        return "local", name
    if not teacher.strip():
        raise UserError("teacher is empty: use local:<alias|path.gguf> or a model name served at base_url.")
    return "remote", None


@dataclass
class RemoteTeacher:
    """A remote OpenAI-compatible endpoint (``base_url`` None = the OpenAI API)."""

    base_url: str | None
    model: str


@contextlib.contextmanager
def teacher_endpoint(teacher: str, base_url: str = "", parallel: int = 1, n_ctx: int = 2048,
                     log_dir: Path | None = None) -> Iterator[LocalTeacher | RemoteTeacher]:
    """The endpoint of notebook 02's ``teacher`` parameter: a local server it starts (and stops), or the
    remote ``base_url`` serving model ``teacher``.

    >>> with teacher_endpoint("gpt-4o-mini") as t:
    ...     (t.base_url, t.model)
    (None, 'gpt-4o-mini')
    """
    kind, name = parse_teacher(teacher)
    if kind == "local":
        with local_teacher(name, parallel=parallel, n_ctx=n_ctx, log_dir=log_dir) as t:
            yield t
    else:
        yield RemoteTeacher(base_url=base_url or None, model=teacher)


def _cmd_serve(args) -> int:
    with local_teacher(args.model, port=args.port, parallel=args.parallel, n_ctx=args.n_ctx,
                       log_dir=Path(args.log_dir) if args.log_dir else None) as t:
        print(f"teacher {t.model} ready at {t.base_url} (log: {t.log_path}); Ctrl-C stops it", flush=True)
        stop = {"now": False}
        signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
        try:
            while not stop["now"] and t.process.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        if t.process.poll() is not None:
            raise TeacherError(f"The teacher server exited with code {t.process.returncode}:\n{_tail(t.log_path)}")
    return 0


def register_cli(sub) -> None:
    p = sub.add_parser("serve-teacher", help="run a local llama.cpp OpenAI-compatible teacher server on 127.0.0.1")
    p.add_argument("--model", default="smollm2-135m", help="qwen2.5-0.5b | smollm2-135m | qwen2.5-1.5b | PATH.gguf")
    p.add_argument("--port", type=int, default=None, help="default: a free port")
    p.add_argument("--parallel", type=int, default=1, help="server slots (where the installed server supports it)")
    p.add_argument("--n-ctx", type=int, default=2048)
    p.add_argument("--log-dir", default=None)
    p.set_defaults(func=_cmd_serve)
