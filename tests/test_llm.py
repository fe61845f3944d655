"""LLM client against a real local HTTP server that injects faults (no mocks of the openai client)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metaie_utils.llm import client as llm
from metaie_utils.llm.client import (
    PROMPTS,
    FatalLLMError,
    LLMClient,
    build_messages,
    cache_key,
    count_label_lines,
    distill,
    response_stats,
)
from metaie_utils.stages.distill import DistillConfig, load_sentences

pytestmark = pytest.mark.unit

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "fixtures" / "distill"))
from fake_openai import FakeOpenAI  # noqa: E402

REPO = HERE.parent
FAKE_KEY = "sk-test-NEVER-WRITE-ME-0123456789abcdef"


def sents(n: int, prefix: str = "Sentence") -> list[dict]:
    return [{"id": f"s{i}", "text": f"{prefix}{i} is about Tom and Mary ."} for i in range(n)]


def client_for(server: FakeOpenAI, tmp_path: Path, **kw) -> LLMClient:
    kw.setdefault("concurrency", 3)
    kw.setdefault("max_retries", 4)
    kw.setdefault("timeout", 5)
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("backoff_cap", 0.05)
    return LLMClient(server.base_url, "fake-model", cache_path=tmp_path / "cache.sqlite", **kw)


def cache_rows(path: Path) -> int:
    with sqlite3.connect(path) as c:
        return c.execute("SELECT COUNT(*) FROM responses").fetchone()[0]


# -- prompts ---------------------------------------------------------------------------------------------


def test_paper_prompt_is_exact_and_ordered():
    m = build_messages("metaie-v1", "Tom loves Mary.")
    assert m == [
        {"role": "user", "content": "Extract some short important information from the following sentence:\nTom loves Mary."},
        {"role": "system", "content": "Important information (Format: - <label>: <span>):\n"},
    ]


def test_one_shot_prompt_has_example_first_and_sentence_last():
    m = build_messages("metaie-1shot-v1", "Tom loves Mary.")
    roles = [x["role"] for x in m]
    assert roles.index("assistant") < len(m) - 1
    assert m[-1]["role"] == "user" and m[-1]["content"].endswith("\nTom loves Mary.")
    assert count_label_lines(next(x["content"] for x in m if x["role"] == "assistant")) == 5


def test_ner_prompt_and_unknown_version():
    assert "named entities" in build_messages("ner-v1", "x")[0]["content"]
    with pytest.raises(llm.UserError, match="metaie-v1"):
        build_messages("metaie-v9", "x")
    assert set(PROMPTS) >= {"metaie-v1", "metaie-1shot-v1", "ner-v1"}


def test_cache_key_depends_on_every_input():
    m = build_messages("metaie-v1", "a")
    base = cache_key("m", "metaie-v1", m, 1.0, 64, 0)
    assert base == cache_key("m", "metaie-v1", m, 1.0, 64, 0)
    others = [cache_key("m2", "metaie-v1", m, 1.0, 64, 0), cache_key("m", "ner-v1", m, 1.0, 64, 0),
              cache_key("m", "metaie-v1", build_messages("metaie-v1", "b"), 1.0, 64, 0),
              cache_key("m", "metaie-v1", m, 0.5, 64, 0), cache_key("m", "metaie-v1", m, 1.0, 32, 0),
              cache_key("m", "metaie-v1", m, 1.0, 64, 1)]
    assert base not in others and len(set(others)) == len(others)


def test_count_label_lines_and_stats():
    assert count_label_lines("- Person: Tom\n- Location: St. Louis\nSure!") == 2
    assert count_label_lines("Person: Tom") == 0 and count_label_lines(None) == 0
    st = response_stats([{"response": "- A: b", "error": None}, {"response": "none", "error": None},
                         {"response": None, "error": "context_length_exceeded"}])
    assert st["answered"] == 2 and st["no_parsable_line"] == 1 and st["failed_context_length_exceeded"] == 1
    assert st["parsable_fraction"] == 0.5


# -- client against the fault server -------------------------------------------------------------------


def test_faults_are_retried_and_every_sentence_answered_once(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    ss = sents(12)
    faults = {ss[0]["text"]: ["429", "429"], ss[1]["text"]: ["500"], ss[2]["text"]: ["slow"],
              ss[3]["text"]: ["malformed"], ss[4]["text"]: ["drop"], ss[5]["text"]: ["500", "429", "drop"]}
    with FakeOpenAI(faults=faults, slow_s=1.5) as srv:
        c = client_for(srv, tmp_path, timeout=0.5)
        rows = distill(ss, c, "metaie-v1", progress=False)
        assert [r["id"] for r in rows] == [s["id"] for s in ss]
        assert all(r["error"] is None and r["response"] == f"- First: Sentence{i}" for i, r in enumerate(rows))
        assert c.stats.retries == 9
        assert c.stats.retry_reasons == {"429": 3, "5xx": 2, "timeout": 1, "malformed": 1, "connection": 2}
        assert cache_rows(tmp_path / "cache.sqlite") == 12
        # the slow request may have been answered server-side after the client gave up; never twice in the cache
        assert all(srv.served[s["text"]] >= 1 for s in ss)
        assert c.stats.prompt_tokens > 0 and c.stats.completion_tokens == 36
        # the local endpoint got the real key from the environment only as a header
        assert all(h == f"Bearer {FAKE_KEY}" for h in srv.auth_headers)

        # a re-run sends no request at all
        before = sum(srv.attempts.values())
        c2 = client_for(srv, tmp_path)
        rows2 = distill(ss, c2, "metaie-v1", progress=False)
        assert rows2 == rows and sum(srv.attempts.values()) == before
        assert c2.stats.cache_hits == 12 and c2.stats.requests == 0


def test_retry_after_is_honoured(tmp_path):
    ss = sents(1)
    with FakeOpenAI(faults={ss[0]["text"]: ["429"]}, retry_after="0.6") as srv:
        c = client_for(srv, tmp_path)
        t = time.monotonic()
        distill(ss, c, "metaie-v1", progress=False)
        assert time.monotonic() - t >= 0.6


def test_retry_budget_exhausted_gives_error_row_not_crash(tmp_path):
    ss = sents(3)
    with FakeOpenAI(faults={ss[1]["text"]: ["500"] * 10}) as srv:
        c = client_for(srv, tmp_path, max_retries=2)
        rows = distill(ss, c, "metaie-v1", progress=False)
    assert rows[1]["response"] is None and rows[1]["error"].startswith("gave_up_after_3_tries")
    assert rows[0]["response"] and rows[2]["response"]
    assert c.stats.errors == {"gave_up_5xx": 1}
    assert cache_rows(tmp_path / "cache.sqlite") == 2  # failures are not cached: a re-run retries them


def test_context_overflow_is_counted_not_fatal(tmp_path):
    ss = sents(3)
    with FakeOpenAI(faults={ss[2]["text"]: ["400ctx"]}) as srv:
        c = client_for(srv, tmp_path)
        rows = distill(ss, c, "metaie-v1", progress=False)
    assert rows[2]["error"] == "context_length_exceeded" and rows[2]["response"] is None
    assert response_stats(rows)["failed_context_length_exceeded"] == 1


@pytest.mark.parametrize("fault,pattern", [("401", "HTTP 401.*API key was rejected"), ("404", "HTTP 404.*unknown")])
def test_fatal_errors_stop_at_once_and_keep_finished_work(tmp_path, fault, pattern):
    ss = sents(6)
    with FakeOpenAI(faults={ss[3]["text"]: [fault]}) as srv:
        c = client_for(srv, tmp_path, concurrency=1)
        with pytest.raises(FatalLLMError, match=pattern) as ei:
            distill(ss, c, "metaie-v1", progress=False)
        assert srv.base_url in str(ei.value)
        assert srv.attempts[ss[3]["text"]] == 1  # not retried
        assert srv.attempts[ss[5]["text"]] == 0  # stopped at once
    assert cache_rows(tmp_path / "cache.sqlite") == 3


def test_endpoint_down_names_the_url(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    c = LLMClient(f"http://127.0.0.1:{port}/v1", "m", max_retries=1, backoff_base=0.01, cache_path=tmp_path / "c.sqlite")
    with pytest.raises(FatalLLMError, match=f"127.0.0.1:{port}/v1"):
        distill(sents(2), c, "metaie-v1", progress=False)
    with pytest.raises(FatalLLMError, match="Cannot reach"):
        c.list_models()


def test_openai_without_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(llm.UserError, match=r"\$OPENAI_API_KEY"):
        LLMClient(None, "gpt-3.5-turbo")


def test_complete_many_works_inside_a_running_event_loop(tmp_path):
    with FakeOpenAI() as srv:
        c = client_for(srv, tmp_path)

        async def inside():  # what Jupyter/papermill look like: a loop already runs in this thread
            return distill(sents(2), c, "metaie-v1", progress=False)

        rows = asyncio.run(inside())
    assert [r["response"] for r in rows] == ["- First: Sentence0", "- First: Sentence1"]


@pytest.mark.parametrize("concurrency", [1, 3])
def test_concurrency_is_bounded(tmp_path, concurrency):
    with FakeOpenAI(delay=0.1) as srv:
        c = client_for(srv, tmp_path, concurrency=concurrency)
        distill(sents(9), c, "metaie-v1", progress=False)
    assert srv.max_inflight == concurrency


def test_samples_and_cost(tmp_path):
    with FakeOpenAI() as srv:
        c = client_for(srv, tmp_path, prices={"price_per_1k_input": 1.0, "price_per_1k_output": 2.0})
        rows = distill(sents(2), c, "metaie-v1", n_samples=3, progress=False)
    assert [(r["id"], r["sample_index"]) for r in rows] == [("s0", 0), ("s0", 1), ("s0", 2), ("s1", 0), ("s1", 1), ("s1", 2)]
    assert cache_rows(tmp_path / "cache.sqlite") == 6
    assert c.cost_usd() == pytest.approx(c.stats.prompt_tokens / 1000 + c.stats.completion_tokens * 2 / 1000)
    assert c.summary()["cost_usd"] > 0


def test_config_defaults_point_at_committed_fixture():
    cfg = DistillConfig()
    rows = load_sentences(cfg.input_dir)
    assert len(rows) >= 6 and all(set(r) >= {"id", "text", "source", "doc_id"} for r in rows)
    assert DistillConfig.upstream == {"input_dir": "01_sample_corpus"}


# -- CLI: kill -9 and resume; no key in any output ---------------------------------------------------


def _distill_cmd(inp: Path, out: Path, url: str, concurrency: int = 2) -> list[str]:
    return [sys.executable, "-m", "metaie_utils", "distill", "--input", str(inp), "--output", str(out), "--base-url", url,
            "--model", "fake-model", "--concurrency", str(concurrency), "--quiet", "--backoff-base", "0.01"]


def test_sigkill_mid_run_then_resume_loses_and_duplicates_nothing(tmp_path):
    inp = tmp_path / "sentences.jsonl"
    ss = sents(40)
    inp.write_text("".join(json.dumps(s) + "\n" for s in ss))
    out = tmp_path / "run"
    env = {**os.environ, "OPENAI_API_KEY": FAKE_KEY}
    with FakeOpenAI(delay=0.1) as srv:
        p = subprocess.Popen(_distill_cmd(inp, out, srv.base_url), cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if sum(srv.served.values()) >= 8:
                break
            time.sleep(0.02)
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        time.sleep(1.0)  # let the server finish the handlers that were in flight at the kill
        assert not (out / "responses.jsonl").exists()
        done_before = cache_rows(out / "cache.sqlite")
        assert 0 < done_before < 40
        served_before = sum(srv.served.values())
        r = subprocess.run(_distill_cmd(inp, out, srv.base_url), cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        rows = [json.loads(x) for x in (out / "responses.jsonl").read_text().splitlines()]
        assert [x["id"] for x in rows] == [s["id"] for s in ss]
        assert all(x["response"] == f"- First: Sentence{i}" for i, x in enumerate(rows))
        assert cache_rows(out / "cache.sqlite") == 40
        # the resumed run asked only for what was not cached (in-flight requests at the kill may repeat)
        assert sum(srv.served.values()) - served_before == 40 - done_before
        summary = json.loads((out / "distill_summary.json").read_text())
        assert summary["cache_hits"] == done_before
    # the key never reaches any output file
    for f in out.rglob("*"):
        if f.is_file():
            assert FAKE_KEY.encode() not in f.read_bytes(), f


def test_cli_fatal_error_exits_2_with_message(tmp_path):
    inp = tmp_path / "sentences.jsonl"
    inp.write_text(json.dumps(sents(1)[0]) + "\n")
    with FakeOpenAI(faults={sents(1)[0]["text"]: ["404"]}) as srv:
        r = subprocess.run(_distill_cmd(inp, tmp_path / "o", srv.base_url), cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "HTTP 404" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.notebooks
def test_notebook_02_against_a_remote_endpoint_leaks_no_key(tmp_path):
    """papermill runs notebook 02 with a remote teacher (the fault server); the key is in the environment
    only and must not appear in any output file or in the executed notebook."""
    nb = REPO / "notebooks" / "02_distill_llm.ipynb"
    executed = tmp_path / "02.ipynb"
    env = {**os.environ, "OPENAI_API_KEY": FAKE_KEY}
    with FakeOpenAI(faults={"BIGBANG is one of those musical entities that transcends language.": ["429", "500"]}) as srv:
        r = subprocess.run([sys.executable, "-m", "papermill", str(nb), str(executed), "-p", "run_name", "keyscan",
                            "-p", "out_root", str(tmp_path / "outputs"), "-p", "teacher", "fake-model", "-p", "base_url",
                            srv.base_url, "-p", "limit", "0", "-p", "concurrency", "2"],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    run_dir = tmp_path / "outputs" / "02_distill_llm" / "keyscan"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["responses"] == 9 and metrics["retries"] == 2 and metrics["parsable_fraction"] == 1.0
    for f in [executed, *run_dir.rglob("*")]:
        if f.is_file():
            assert FAKE_KEY.encode() not in f.read_bytes(), f


def test_distill_plots_draw_what_was_measured():
    import matplotlib

    matplotlib.use("Agg")
    from metaie_utils.plots import distill as plots

    fig = plots.throughput([1.0, 2.0, 4.0, 0.0], [False, False, False, True])
    assert fig.axes[0].get_title() == "Responses over time: 0.75 responses/s"
    fig = plots.label_counts([0, 2, 2, 5])
    assert [round(p.get_height()) for p in fig.axes[0].patches] == [1, 0, 2, 0, 0, 1]
    fig = plots.token_usage([{"prompt_tokens": 10, "completion_tokens": 3}, {"prompt_tokens": 12, "completion_tokens": 5}])
    assert [a.get_title() for a in fig.axes] == ["22 in total", "8 in total"]
    assert "n=3" in plots.sentence_lengths([5, 6, 9]).axes[0].get_title()
