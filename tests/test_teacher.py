"""Local teacher server: command line, readiness, shutdown, errors; one real llama.cpp run (slow)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metaie_utils.llm import teacher
from metaie_utils.llm.teacher import (
    TeacherError,
    check_server_package,
    free_port,
    parse_teacher,
    server_command,
    stop_process,
    teacher_endpoint,
    wait_ready,
)

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "fixtures" / "distill"))
from fake_openai import FakeOpenAI  # noqa: E402
from helpers_process import assert_dies_with_parent  # noqa: E402


@pytest.mark.unit
def test_parse_teacher():
    assert parse_teacher("local:smollm2-135m") == ("local", "smollm2-135m")
    assert parse_teacher("local:/models/x.gguf") == ("local", "/models/x.gguf")
    assert parse_teacher("gpt-3.5-turbo") == ("remote", None)
    with pytest.raises(teacher.UserError, match="local:"):
        parse_teacher("local:")


@pytest.mark.unit
def test_server_command_binds_localhost_and_uses_known_flags_only():
    cmd = server_command(Path("/m/q.gguf"), 8123, n_ctx=1024, parallel=4, alias="q", n_threads=2,
                         settings={"n_ctx", "model_alias", "n_threads"})
    assert cmd[1:3] == ["-m", "llama_cpp.server"]
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == "8123"
    assert cmd[cmd.index("--n_ctx") + 1] == "1024" and cmd[cmd.index("--model_alias") + 1] == "q"
    assert "--n_parallel" not in cmd and "--parallel" not in cmd  # unknown to this server: not passed
    assert "--n_parallel" in server_command(Path("q.gguf"), 1, parallel=2, settings={"n_parallel"})


@pytest.mark.unit
def test_wait_ready_against_a_server_and_a_dead_process(tmp_path):
    with FakeOpenAI() as srv:
        assert wait_ready(srv.base_url, None, None, timeout=10) < 10
    log = tmp_path / "server.log"
    log.write_text("loading...\nerror: model file is corrupt\n")
    dead = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    dead.wait()
    with pytest.raises(TeacherError, match="exited with code 3(.|\n)*model file is corrupt"):
        wait_ready(f"http://127.0.0.1:{free_port()}/v1", dead, log, timeout=10)
    with pytest.raises(TeacherError, match="did not answer"):
        wait_ready(f"http://127.0.0.1:{free_port()}/v1", None, None, timeout=0.5)


@pytest.mark.unit
def test_stop_process_terminates_then_kills():
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert stop_process(p, grace=5) is not None and p.poll() is not None
    stubborn = subprocess.Popen([sys.executable, "-c",
                                 "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"],
                                stdout=subprocess.PIPE)
    stubborn.stdout.readline()
    t = time.monotonic()
    assert stop_process(stubborn, grace=0.5) == -9
    assert time.monotonic() - t < 10


@pytest.mark.unit
def test_missing_server_package_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name, *a))
    with pytest.raises(TeacherError, match=r"llama-cpp-python\[server\]"):
        check_server_package()


@pytest.mark.unit
def test_missing_model_is_a_clear_error(tmp_path):
    pytest.importorskip("llama_cpp.server")
    from metaie_utils.core.assets import AssetError

    with pytest.raises(AssetError, match="neither a known alias"):
        with teacher.local_teacher(str(tmp_path / "nope.gguf")):
            pass


@pytest.mark.unit
def test_remote_endpoint_needs_no_server():
    with teacher_endpoint("gpt-3.5-turbo", "http://localhost:8000/v1") as t:
        assert (t.base_url, t.model) == ("http://localhost:8000/v1", "gpt-3.5-turbo")


@pytest.mark.slow  # ~50-90 s on 2 shared cores (server start + 3 generations)
def test_real_llama_server_with_smollm2_on_three_sentences(tmp_path):
    pytest.importorskip("llama_cpp.server")
    from metaie_utils.core.assets import AssetError, gguf_path
    from metaie_utils.llm.client import LLMClient, distill, response_stats
    from metaie_utils.stages.distill import load_sentences

    try:
        gguf_path("smollm2-135m")
    except AssetError as e:
        pytest.skip(str(e))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sents = load_sentences(HERE / "fixtures" / "distill" / "sentences.jsonl", limit=3)
    with teacher.local_teacher("smollm2-135m", log_dir=tmp_path) as t:
        assert t.base_url.startswith("http://127.0.0.1:")
        c = LLMClient(t.base_url, t.model, concurrency=1, cache_path=tmp_path / "cache.sqlite", timeout=120)
        assert t.model in c.list_models()
        rows = distill(sents, c, "metaie-1shot-v1", max_tokens=32, temperature=0.0, progress=False)
        proc = t.process
    assert proc.poll() is not None  # stopped on exit
    assert [r["id"] for r in rows] == [s["id"] for s in sents]
    assert all(r["response"] and r["error"] is None for r in rows)
    assert response_stats(rows)["answered"] == 3 and c.stats.completion_tokens > 0
    assert "127.0.0.1" in (tmp_path / "teacher_server.log").read_text()


FAKE_SERVER_THAT_DIES = r"""
import http.server, json, os, signal, sys
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        body = json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_POST(self):
        print("crashing like a llama.cpp build with the wrong instructions", flush=True)
        os.kill(os.getpid(), signal.SIGILL)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


@pytest.mark.unit
def test_a_server_that_dies_mid_run_is_named_with_its_signal_and_log(tmp_path, monkeypatch):
    """The client only sees 'connection refused'; the teacher context says the server died, and why."""
    import urllib.request

    script = tmp_path / "fake_server.py"
    script.write_text(FAKE_SERVER_THAT_DIES)
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setattr(teacher, "check_server_package", lambda: None)
    monkeypatch.setattr(teacher, "server_command", lambda g, port, *a, **k: [sys.executable, str(script), str(port)])
    with pytest.raises(TeacherError, match=r"SIGILL(.|\n)*Rebuild it portably(.|\n)*crashing like a llama.cpp build"):
        with teacher.local_teacher(str(gguf), log_dir=tmp_path) as t:
            try:
                urllib.request.urlopen(urllib.request.Request(f"{t.base_url}/chat/completions", data=b"{}"), timeout=10)
            except OSError:
                pass
            t.process.wait(10)
            raise ConnectionError("the client gave up")  # what the LLM client raises after its retries


def test_the_server_is_killed_with_its_parent_even_while_it_ignores_sigterm(tmp_path):
    """A killed ``evaluate`` left its llama.cpp server finishing the request in flight (uvicorn's graceful shutdown
    on the SIGTERM it got) for minutes. ``server_preexec`` asks Linux for SIGKILL instead: a child that ignores
    SIGTERM, as a busy graceful server does, still dies with its parent."""
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux-only")
    pid_file = tmp_path / "server.pid"
    server = ("import os, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
              "open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c",
                               "import subprocess, sys, time; from metaie_utils.llm.teacher import server_preexec; "
                               f"subprocess.Popen([sys.executable, '-c', {server!r}, {str(pid_file)!r}], "
                               "preexec_fn=server_preexec); time.sleep(60)"])
    assert_dies_with_parent(parent, pid_file, "the server")
