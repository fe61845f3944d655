"""The papermill driver on the template notebook: a real kernel, a run directory, skip/resume, failures named."""

import json
import os
import time

import pytest

from metaie_utils import pipeline
from metaie_utils.cli import main
from metaie_utils.core.paths import NOTEBOOKS_DIR

pytestmark = pytest.mark.unit


def test_execute_template_notebook(tmp_path):
    d = tmp_path / "00_template" / "t"
    out = pipeline.execute_stage("00_template", {"run_name": "t", "out_root": str(tmp_path), "seed": 3}, d)
    assert out.is_file()
    assert json.loads((d / "metrics.json").read_text()) == {"ok": 1}
    assert json.loads((d / "manifest.json").read_text())["params"]["seed"] == 3


def test_failing_notebook_names_cell_and_error(tmp_path, monkeypatch):
    nbdir = tmp_path / "nbs"
    nbdir.mkdir()
    nb = json.loads((NOTEBOOKS_DIR / "00_template.ipynb").read_text())
    nb["cells"].append({"cell_type": "code", "metadata": {}, "source": "raise ValueError('boom 42')", "outputs": [],
                        "execution_count": None, "id": "x"})
    (nbdir / "00_template.ipynb").write_text(json.dumps(nb))
    monkeypatch.setattr(pipeline, "NOTEBOOKS_DIR", nbdir)
    with pytest.raises(pipeline.StageFailed) as e:
        pipeline.execute_stage("00_template", {"run_name": "f", "out_root": str(tmp_path)}, tmp_path / "f")
    assert "00_template.ipynb" in str(e.value) and "ValueError" in str(e.value) and "boom 42" in str(e.value)


def _template_with(tmp_path, source: str):
    nbdir = tmp_path / "nbs"
    nbdir.mkdir(exist_ok=True)
    nb = json.loads((NOTEBOOKS_DIR / "00_template.ipynb").read_text())
    nb["cells"].insert(len(nb["cells"]) - 1, {"cell_type": "code", "metadata": {}, "source": source, "outputs": [],
                                              "execution_count": None, "id": "x"})
    (nbdir / "00_template.ipynb").write_text(json.dumps(nb))
    return nbdir


def test_a_failed_stage_says_so_in_its_manifest(tmp_path, monkeypatch):
    """A stage that failed used to leave its manifest at status "running" for ever."""
    monkeypatch.setattr(pipeline, "NOTEBOOKS_DIR", _template_with(tmp_path, "raise ValueError('boom 42')"))
    d = tmp_path / "00_template" / "f"
    with pytest.raises(pipeline.StageFailed):
        pipeline.execute_stage("00_template", {"run_name": "f", "out_root": str(tmp_path)}, d)
    m = json.loads((d / "manifest.json").read_text())
    assert m["status"] == "failed" and "ValueError: boom 42" in m["stop_reason"] and m["end_time"]
    assert not (d / "metrics.json").exists()


def test_kill_term_stops_a_stage_at_once_and_records_it(tmp_path):
    """``kill -TERM`` (how a background run or sweep is stopped) marks the running stage's manifest "stopped",
    and the process still dies at once by the signal, in the middle of a long cell (unwinding through papermill
    would wait for the cell to end)."""
    import signal
    import subprocess
    import sys
    import textwrap

    nbdir = _template_with(tmp_path, "import time\nopen(r'%s', 'w').close()\ntime.sleep(120)" % (tmp_path / "in-cell"))
    d = tmp_path / "00_template" / "k"
    script = textwrap.dedent(f"""
        from pathlib import Path
        from metaie_utils import pipeline
        pipeline.NOTEBOOKS_DIR = Path(r"{nbdir}")
        with pipeline.stop_on_sigterm():   # what run and sweep execute under
            pipeline.execute_stage("00_template", {{"run_name": "k", "out_root": r"{tmp_path}"}}, Path(r"{d}"))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "METAIE_HEARTBEAT_S": "0"},
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 90
    while not (tmp_path / "in-cell").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert (tmp_path / "in-cell").exists(), "the notebook never reached its sleeping cell"
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM and time.time() - t0 < 20
    m = json.loads((d / "manifest.json").read_text())
    assert m["status"] == "stopped" and "signal 15" in m["stop_reason"], m
    assert "recorded as stopped" in proc.stderr.read()
    from metaie_utils.core import runs

    assert runs._ACTIVE_RUNS == [] and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_finished_run_is_never_marked_stopped(tmp_path):
    from metaie_utils.core.runs import close_unfinished

    d = tmp_path / "r"
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps({"status": "running"}))
    (d / "metrics.json").write_text("{}")
    assert close_unfinished(d, "stopped", "x") is False
    (d / "metrics.json").unlink()
    assert close_unfinished(d, "stopped", "x") is True and close_unfinished(d, "failed", "y") is False
    assert json.loads((d / "manifest.json").read_text())["status"] == "stopped"
    with pytest.raises(ValueError, match="'running'"):
        close_unfinished(d, "running", "z")


def test_cli_unknown_param_is_one_paragraph(capsys):
    rc = main(["run", "--set", "sead=1"])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown parameter 'sead'" in err and "Traceback" not in err


def test_plan_wires_upstreams(tmp_path):
    params = {"run_name": "x", "out_root": str(tmp_path)}
    steps = pipeline.plan(params, ["01_sample_corpus", "02_distill_llm"], reuse=None)
    (s1, p1, d1), (s2, p2, d2) = steps
    assert d1 == tmp_path / "01_sample_corpus" / "x"
    assert p2["input_dir"].endswith("01_sample_corpus/x")
    steps = pipeline.plan(params, ["02_distill_llm"], reuse={"01_sample_corpus": "old"})
    assert steps[0][1]["input_dir"].endswith("01_sample_corpus/old")


def test_finished_stage_with_other_params_is_refused_not_reused(tmp_path, monkeypatch):
    """`run --run-name X` with new params must not silently skip X's stale finished stage."""
    from metaie_utils.core.params import load_params
    from metaie_utils.core.runs import run_dir_for

    params = load_params([], {"run_name": "x", "out_root": str(tmp_path), "n_sentences": 7})
    d = run_dir_for("01_sample_corpus", "x", str(tmp_path))
    d.mkdir(parents=True)
    (d / "metrics.json").write_text("{}")
    (d / "manifest.json").write_text(json.dumps({"params": {"n_sentences": 9, "seed": 0}}))
    monkeypatch.setattr(pipeline, "execute_stage", lambda *a, **k: pytest.fail("must not execute"))
    with pytest.raises(pipeline.StageFailed, match=r"n_sentences: recorded 9, asked 7(.|\n)*overwrite=true"):
        pipeline.run_pipeline(params, ["01_sample_corpus"])
    (d / "manifest.json").write_text(json.dumps({"params": {"n_sentences": 7, "seed": 0}}))
    assert pipeline.run_pipeline(params, ["01_sample_corpus"]) == {"01_sample_corpus": d}  # same params: skipped


def test_a_finished_fewshot_run_asked_for_more_initializations_is_extended(tmp_path, monkeypatch, capsys):
    """Adding llm-icl to the finished CPU grid (the README's instruction) reopens stage 05 with its finished
    fine-tunes kept, instead of refusing; fewshot_workers is how it runs, not what; a different (not larger)
    list is still refused."""
    from metaie_utils.core.params import load_params
    from metaie_utils.core.runs import run_dir_for

    d = run_dir_for("05_fewshot_eval", "x", str(tmp_path))
    d.mkdir(parents=True)
    (d / "metrics.json").write_text("{}")
    (d / "results.csv").write_text("dataset,initialization,seed,subtask,f1\nconll2003,vanilla,0,entity,0.3\n")
    rec = load_params([], {"run_name": "x", "out_root": str(tmp_path), "initializations": ["vanilla", "metaie"]})
    rec = {k: rec[k] for k in ("initializations", "datasets", "fewshot_workers", "seed", "fewshot_lr")}
    (d / "manifest.json").write_text(json.dumps({"params": rec}))
    ran = []
    monkeypatch.setattr(pipeline, "execute_stage", lambda stage, p, run_dir, **k: ran.append(p))

    def ask(**over):
        return load_params([], {"run_name": "x", "out_root": str(tmp_path), **over})

    pipeline.run_pipeline(ask(initializations=["vanilla", "metaie"], fewshot_workers=rec["fewshot_workers"] + 3),
                          ["05_fewshot_eval"])
    assert ran == [] and "finished earlier, skipped" in capsys.readouterr().out
    pipeline.run_pipeline(ask(initializations=["vanilla", "metaie", "llm-icl"]), ["05_fewshot_eval"])
    assert len(ran) == 1 and ran[0]["overwrite"] is True and ran[0]["initializations"][-1] == "llm-icl"
    assert "extending the finished run" in capsys.readouterr().out and (d / "results.csv").is_file()
    with pytest.raises(pipeline.StageFailed, match="initializations: recorded"):
        pipeline.run_pipeline(ask(initializations=["vanilla", "llm-icl"]), ["05_fewshot_eval"])
    with pytest.raises(pipeline.StageFailed, match="fewshot_lr: recorded"):
        pipeline.run_pipeline(ask(initializations=["vanilla", "metaie", "llm-icl"], fewshot_lr=1.0), ["05_fewshot_eval"])


def test_keys_unused_by_the_recorded_run_do_not_count_as_differences(tmp_path):
    """protocol_lr changed, but neither the finished run nor the new request runs the protocol: same run."""
    from metaie_utils.stages.ablations import param_diff

    (tmp_path / "manifest.json").write_text(json.dumps({"params": {"protocol_eval": False, "protocol_lr": 5e-4,
                                                                   "label_subset": "all", "label_top_k": 100}}))
    assert param_diff(tmp_path, {"protocol_eval": False, "protocol_lr": 3e-4, "label_subset": "all", "label_top_k": 5}) == {}
    assert param_diff(tmp_path, {"protocol_eval": True, "protocol_lr": 3e-4}) == {
        "protocol_eval": (False, True), "protocol_lr": (5e-4, 3e-4)}
    assert param_diff(tmp_path, {"label_subset": "top_k", "label_top_k": 5}) == {
        "label_subset": ("all", "top_k"), "label_top_k": (100, 5)}


def test_notebook_kernels_are_encrypted_where_zmq_can():
    """ipykernel >= 7 warns on every stage when its sockets are plain TCP; the pipeline provisions CurveZMQ keys."""
    zmq = pytest.importorskip("zmq")
    from metaie_utils.pipeline import _kernel_manager_class

    km = _kernel_manager_class()()
    if zmq.has("curve") and hasattr(km, "transport_encryption"):
        assert km.transport_encryption == "auto"


def test_stage_progress_counts_fine_tunes_and_reads_the_log(tmp_path):
    d = tmp_path / "05"
    d.mkdir()
    params = {"datasets": ["conll2003", "conll04"], "initializations": ["vanilla", "metaie"], "fewshot_seeds": 3}
    assert pipeline.stage_progress("05_fewshot_eval", params, d) == "0/12 fine-tunes recorded"
    (d / "results.csv").write_text("dataset,initialization,seed,subtask\nconll04,vanilla,0,entity\n"
                                   "conll04,vanilla,0,relation\nconll04,metaie,0,entity\n")
    (d / "run.log").write_text("2026-12-04 03:13:38,289 INFO metaie_utils.models.trainer step 40: {'loss': 0.7}\n\n")
    line = pipeline.stage_progress("05_fewshot_eval", params, d)
    assert line == "2/12 fine-tunes recorded; step 40: {'loss': 0.7}"
    assert pipeline.stage_progress("04_train_meta_model", {}, d, width=10) == "step 40..."
    # a log older than the heartbeat (an earlier attempt's) is not repeated as news
    old = time.time() - 600
    os.utime(d / "run.log", (old, old))
    assert pipeline.stage_progress("05_fewshot_eval", params, d, since=time.time() - 60) == "2/12 fine-tunes recorded"
    assert pipeline.stage_progress("05_fewshot_eval", params, d, since=old - 1).endswith("step 40: {'loss': 0.7}")


def test_heartbeat_prints_while_a_stage_runs(tmp_path, capsys, monkeypatch):
    (tmp_path / "run.log").write_text("2026-12-04 03:13:38,289 INFO x.y loss nan (an earlier attempt)\n")
    old = time.time() - 600
    os.utime(tmp_path / "run.log", (old, old))
    with pipeline._Heartbeat("04_train_meta_model", {}, tmp_path, interval=0.05):
        time.sleep(0.12)
        (tmp_path / "run.log").write_text("2026-12-04 03:13:38,289 INFO x.y epoch 2 of 6\n")  # this run's line
        time.sleep(0.3)
    out = capsys.readouterr().out.splitlines()
    assert len(out) >= 3 and all(ln.startswith("[run] 04_train_meta_model: ") for ln in out)
    assert out[0].endswith("s elapsed")  # the earlier attempt's line is not repeated as news
    assert out[-1].endswith("s elapsed; epoch 2 of 6")
    with pipeline._Heartbeat("04_train_meta_model", {}, tmp_path, interval=0):  # 0 = off
        time.sleep(0.1)
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("METAIE_HEARTBEAT_S", "often")
    with pytest.raises(pipeline.ParamsError, match="METAIE_HEARTBEAT_S = 'often'"):
        pipeline._Heartbeat("04_train_meta_model", {}, tmp_path)


def test_a_stage_run_alone_says_how_to_use_the_finished_upstream(tmp_path, monkeypatch, capsys):
    """`run --stages 02` after a finished 01 of the same run name: input_dir is not wired without --reuse; say so."""
    from metaie_utils.core.params import load_params
    from metaie_utils.core.runs import run_dir_for

    params = load_params([], {"run_name": "x", "out_root": str(tmp_path), "input_dir": ""})
    d = run_dir_for("01_sample_corpus", "x", str(tmp_path))
    d.mkdir(parents=True)
    (d / "metrics.json").write_text("{}")
    monkeypatch.setattr(pipeline, "execute_stage", lambda *a, **k: None)
    pipeline.run_pipeline(params, ["02_distill_llm"])
    assert "--reuse 01_sample_corpus=x" in capsys.readouterr().out
    pipeline.run_pipeline(params, ["02_distill_llm"], reuse={"01_sample_corpus": "x"})
    assert "--reuse" not in capsys.readouterr().out


def test_a_sweep_narrowed_to_some_datasets_runs_them_now_and_is_extended_later(tmp_path, monkeypatch, capsys):
    """`sweep SPEC --set datasets=[...]` runs a part of every point (the student-size sweep on CoNLL2003 first);
    the same sweep without --set extends those runs; anything but a part of a list the stage extends is refused."""
    import yaml

    from metaie_utils.stages.ablations import SweepSpecError

    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"out_root": str(tmp_path)}))
    spec = tmp_path / "nar.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "nar", "params": [str(tmp_path / "p.yaml")], "stages": ["05_fewshot_eval"], "points": [{"fewshot_lr": 3.0e-4}],
        "set": {"datasets": ["conll2003", "conll04"], "initializations": ["vanilla"]}}))
    ran = []

    def fake_stage(stage, p, run_dir, **k):
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "manifest.json").write_text(json.dumps({"params": {k: p[k] for k in ("datasets", "fewshot_lr", "initializations")}}))
        (run_dir / "metrics.json").write_text("{}")
        ran.append((p["datasets"], p.get("overwrite", False)))

    monkeypatch.setattr(pipeline, "execute_stage", fake_stage)
    pipeline.run_sweep(spec, narrow={"datasets": ["conll2003"]})
    assert ran == [(["conll2003"], False)]
    assert pipeline.run_sweep(spec, narrow={"datasets": ["conll2003"]})[0]["status"] == "skipped"
    assert pipeline.run_sweep(spec, dry_run=True)[0]["status"] == "planned"  # the whole point is not done yet
    pipeline.run_sweep(spec)
    assert ran[1:] == [(["conll2003", "conll04"], True)]  # extended: the finished fine-tunes are kept
    assert "extending the finished run" in capsys.readouterr().out
    assert pipeline.run_sweep(spec)[0]["status"] == "skipped"
    assert pipeline.run_sweep(spec, narrow={"datasets": ["conll04"], "fewshot_workers": 2})[0]["status"] == "skipped"
    with pytest.raises(SweepSpecError, match=r"datasets=\['wnut17'\]: not a non-empty part"):
        pipeline.run_sweep(spec, narrow={"datasets": ["wnut17"]})
    with pytest.raises(SweepSpecError, match="may only narrow datasets or initializations"):
        pipeline.run_sweep(spec, narrow={"fewshot_lr": 1.0})
    assert len(ran) == 2
    assert main(["sweep", str(spec), "--set", "fewshot_steps=3"]) != 0
    assert "fewshot_steps" in capsys.readouterr().err


def test_a_misspelt_dataset_fails_before_anything_runs_or_is_recorded(tmp_path, monkeypatch):
    """`datasets: [conll2003, conll2004]` (the registry says conll04) used to fail inside stage 05's notebook,
    after the stage had recorded the new list in a finished run's manifest and the sweep its new spec."""
    import yaml

    from metaie_utils.core.params import ParamsError, load_params

    monkeypatch.setattr(pipeline, "execute_stage", lambda *a, **k: pytest.fail("must not execute"))
    params = load_params([], {"run_name": "x", "out_root": str(tmp_path), "datasets": ["conll2003", "conll2004"]})
    with pytest.raises(ParamsError, match=r"datasets = \['conll2003', 'conll2004'\]: Unknown dataset 'conll2004'(.|\n)*conll04"):
        pipeline.run_pipeline(params, ["04_train_meta_model", "05_fewshot_eval"])
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"out_root": str(tmp_path)}))
    spec = tmp_path / "typo.yaml"
    spec.write_text(yaml.safe_dump({"name": "typo", "params": [str(tmp_path / "p.yaml")], "stages": ["05_fewshot_eval"],
                                    "points": [{"fewshot_lr": 3.0e-4}], "set": {"datasets": ["conll2004"]}}))
    with pytest.raises(ParamsError, match="conll2004"):
        pipeline.run_sweep(spec)
    assert not any(tmp_path.rglob("*.json"))  # no sweep.json, no manifest
