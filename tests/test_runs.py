"""Run directories: manifest contents, no silent overwrite, atomic metrics."""

import json

import pytest

from metaie_utils.core.params import TemplateConfig
from metaie_utils.core.runs import RunExistsError, recording_stop, start_run, upstream_file

pytestmark = pytest.mark.unit


def test_run_directory_manifest_and_metrics(tmp_path):
    cfg = TemplateConfig(run_name="r1", out_root=str(tmp_path), seed=7)
    run = start_run(cfg)
    assert run.dir == tmp_path / "00_template" / "r1"
    m = json.loads((run.dir / "manifest.json").read_text())
    assert m["status"] == "running" and m["seed"] == 7 and m["params"]["seed"] == 7
    assert {"sha", "dirty"} <= set(m["git"]) and m["versions"]["python"]
    assert m["device"] in {"cpu", "cuda", "mps"} and m["start_time"]
    assert m["machine"]["cores"] >= 1 and m["machine"]["cpu"] and "cpu_bf16_units" in m["machine"]
    run.finish({"f1": 0.5})
    assert json.loads((run.dir / "metrics.json").read_text()) == {"f1": 0.5}
    m = json.loads((run.dir / "manifest.json").read_text())
    assert m["status"] == "finished" and m["end_time"]


def test_finished_run_is_not_overwritten_unless_asked(tmp_path):
    start_run(TemplateConfig(run_name="r", out_root=str(tmp_path))).finish({"a": 1})
    with pytest.raises(RunExistsError, match="overwrite"):
        start_run(TemplateConfig(run_name="r", out_root=str(tmp_path)))
    run = start_run(TemplateConfig(run_name="r", out_root=str(tmp_path), overwrite=True))
    assert not (run.dir / "metrics.json").exists()


def test_unfinished_run_directory_is_resumed(tmp_path):
    run = start_run(TemplateConfig(run_name="r", out_root=str(tmp_path)))
    (run.dir / "partial.txt").write_text("kept")
    run2 = start_run(TemplateConfig(run_name="r", out_root=str(tmp_path)))
    assert (run2.dir / "partial.txt").read_text() == "kept"


def test_recording_stop_closes_an_unfinished_run_and_reraises(tmp_path):
    """An error records "failed" with its message, Ctrl-C "stopped"; the exception still propagates; a run that
    finished inside the block stays finished."""
    status = lambda r: json.loads((r.dir / "manifest.json").read_text())  # noqa: E731
    run = start_run(TemplateConfig(run_name="e", out_root=str(tmp_path)))
    with pytest.raises(ValueError, match="bad 7"), recording_stop(run.dir):
        raise ValueError("bad 7")
    assert status(run)["status"] == "failed" and status(run)["stop_reason"] == "ValueError: bad 7" and status(run)["end_time"]

    run = start_run(TemplateConfig(run_name="c", out_root=str(tmp_path)))
    with pytest.raises(KeyboardInterrupt), recording_stop(run.dir):
        raise KeyboardInterrupt
    assert status(run)["status"] == "stopped"

    run = start_run(TemplateConfig(run_name="f", out_root=str(tmp_path)))
    with pytest.raises(RuntimeError), recording_stop(run.dir):
        run.finish({"a": 1})
        raise RuntimeError("after finish")
    assert status(run)["status"] == "finished" and "stop_reason" not in status(run)

    from metaie_utils.core import runs

    assert runs._ACTIVE_RUNS == []


def test_upstream_file_accepts_dir_or_file(tmp_path):
    (tmp_path / "sentences.jsonl").write_text("{}\n")
    assert upstream_file(tmp_path, "sentences.jsonl") == tmp_path / "sentences.jsonl"
    assert upstream_file(tmp_path / "sentences.jsonl", "sentences.jsonl") == tmp_path / "sentences.jsonl"
    with pytest.raises(FileNotFoundError, match="upstream stage"):
        upstream_file(tmp_path, "responses.jsonl")
