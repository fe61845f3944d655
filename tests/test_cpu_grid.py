"""scripts/cpu_grid.py: the CPU reproduction grid's kept results survive a new machine, and only with the same meta-model."""

import gzip
import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ("dataset,initialization,seed,subtask,f1\nconll2003,vanilla,0,entity,0.3\nconll2003,metaie,0,entity,0.4\n"
           "conll04,vanilla,0,entity,0.2\n")


@pytest.fixture()
def grid(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("cpu_grid", ROOT / "scripts" / "cpu_grid.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for name, path in (("ROOT", tmp_path), ("KEPT", tmp_path / "docs" / "results" / "cpu"),
                       ("RUN", tmp_path / "outputs" / "05_fewshot_eval" / "cpu"),
                       ("META", tmp_path / "outputs" / "04_train_meta_model" / "cpu")):
        monkeypatch.setattr(mod, name, path)
    return mod


def _meta(grid, weights: bytes) -> None:
    (grid.META / "model").mkdir(parents=True, exist_ok=True)
    (grid.META / "model" / "model.safetensors").write_bytes(weights)
    (grid.META / "metrics.json").write_text("{}")


def test_export_then_restore_on_a_new_machine_with_the_same_meta_model(grid, capsys):
    _meta(grid, b"weights-A")
    grid.RUN.mkdir(parents=True)
    (grid.RUN / "results.csv").write_text(RESULTS)
    (grid.RUN / "counts.jsonl").write_text('{"dataset": "conll2003"}\n')
    grid.export({"start": "t0", "seconds": 5})
    kept = json.loads((grid.KEPT / "grid.json").read_text())
    assert kept["fine_tunes"] == 3 and kept["sessions"][0]["seconds"] == 5 and len(kept["meta_model_sha256"]) == 64
    first = (grid.KEPT / "counts.jsonl.gz").read_bytes()
    grid.export()
    assert (grid.KEPT / "counts.jsonl.gz").read_bytes() == first  # no churn in git when nothing changed
    assert gzip.decompress(first) == b'{"dataset": "conll2003"}\n'

    import shutil  # a new machine: outputs/ is gone, stage 04 retrains the same weights

    shutil.rmtree(grid.RUN)
    grid.restore()
    assert (grid.RUN / "results.csv").read_text() == RESULTS
    assert (grid.RUN / "counts.jsonl").read_text() == '{"dataset": "conll2003"}\n'
    grid.status()
    out = capsys.readouterr().out
    assert "conll2003" in out and "session t0" in out


def test_status_says_what_is_left_and_how_long_it_takes(grid, tmp_path):
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "cpu.yaml").write_text("datasets: [conll2003, conll04]\nfewshot_seeds: 3\n")
    seeds = {("conll2003", "vanilla"): {"0", "1"}, ("conll2003", "metaie"): {"0"}, ("conll04", "vanilla"): {"0"}}
    sessions = [{"start": "t0", "seconds": 1000, "fine_tunes_added": 10, "machine": {"cores": 1}},
                {"start": "t1", "seconds": 900, "fine_tunes_added": 9, "machine": {"cores": 2}}]
    line = grid.remaining_line(seeds, ["metaie", "vanilla"], sessions)
    assert line.startswith("4 of 12 fine-tunes done (2 datasets x metaie, vanilla x 3 seeds)")
    assert "8 left, ~0.2 h at the latest session's rate (100 s of wall time per fine-tune, 2 cores)" in line
    assert "left" not in grid.remaining_line(seeds, ["metaie", "vanilla"], [])


def test_restore_refuses_rows_of_another_meta_model_unless_forced(grid):
    _meta(grid, b"weights-A")
    grid.RUN.mkdir(parents=True)
    (grid.RUN / "results.csv").write_text(RESULTS)
    grid.export()
    import shutil

    shutil.rmtree(grid.RUN)
    _meta(grid, b"weights-B")  # another CPU's arithmetic
    with pytest.raises(SystemExit, match="sha256"):
        grid.restore()
    assert not (grid.RUN / "results.csv").exists()
    grid.restore(force=True)
    assert (grid.RUN / "results.csv").is_file()
    assert json.loads((grid.KEPT / "grid.json").read_text())["other_meta_models"][0]["sha256"] == grid.meta_fingerprint()


def test_restore_needs_the_meta_model_first(grid):
    grid.KEPT.mkdir(parents=True)
    (grid.KEPT / "results.csv").write_text(RESULTS)
    with pytest.raises(SystemExit, match="meta-model first"):
        grid.restore()


def test_export_ships_the_llm_icl_answers_so_far(grid, tmp_path, monkeypatch):
    """llm-icl needs no meta-model: its teacher answers are exported with the grid into the shipped answer set
    that stage 05 replays on any machine."""
    from metaie_utils.llm import shipped
    from metaie_utils.llm.client import Completion, ResponseCache

    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path / "metaie_utils" / "data" / "distillation")
    grid.RUN.mkdir(parents=True)
    (grid.RUN / "results.csv").write_text(RESULTS)
    assert grid.export_icl_answers() is None  # no llm-icl yet: nothing shipped
    cache = ResponseCache(tmp_path / "outputs" / "baselines" / "icl-cache.sqlite")
    cache.put("k1", "qwen2.5-0.5b", "icl-v1", 0, Completion(text="- Person: Ann"))
    cache.put("k2", "other-model", "icl-v1", 0, Completion(text="- x: y"))  # another teacher's: not shipped
    cache.close()
    grid.export({"start": "t0", "seconds": 5})
    g = json.loads((grid.KEPT / "grid.json").read_text())
    assert g["icl_answers"] == {"file": "metaie_utils/data/distillation/icl-qwen2.5-0.5b-answers.jsonl.gz", "answers": 1}
    assert [r["key"] for r in shipped.load(tmp_path / g["icl_answers"]["file"]).rows] == ["k1"]


def _results(path: Path, rows: list[dict]) -> None:
    from metaie_utils.stages.fewshot.loop import append_results

    path.parent.mkdir(parents=True, exist_ok=True)
    append_results(path, rows)


def test_merge_adds_another_runs_llm_icl_rows_once_and_only_on_the_grids_support_sets(grid, tmp_path):
    """llm-icl needs no meta-model: a machine runs it in its own stage-05 runs and merges them into the kept grid
    (and into outputs' grid run, so the next export keeps them)."""
    base = {"task": "ner", "subtask": "entity", "f1": "0.3", "n_support": "9", "n_instances": "36"}
    _results(grid.KEPT / "results.csv", [{**base, "dataset": "conll2003", "initialization": "vanilla", "seed": "0"},
                                         {**base, "dataset": "wnut17", "initialization": "vanilla", "seed": "0"}])
    with gzip.GzipFile(grid.KEPT / "counts.jsonl.gz", "wb", mtime=0) as gz:
        gz.write(b'{"dataset": "conll2003", "initialization": "vanilla", "seed": 0}\n')
    grid.RUN.mkdir(parents=True)
    (grid.RUN / "results.csv").write_text((grid.KEPT / "results.csv").read_text())
    src = tmp_path / "outputs" / "05_fewshot_eval" / "icl-a"
    icl = {**base, "initialization": "llm-icl", "seed": "0", "f1": "0.25"}
    _results(src / "results.csv", [{**icl, "dataset": "conll2003"}, {**icl, "dataset": "wnut17"},
                                   {**base, "dataset": "wnut17", "initialization": "vanilla", "seed": "0"}])
    (src / "counts.jsonl").write_text("".join(
        json.dumps({"dataset": d, "initialization": i, "seed": 0, "subtask": "entity", "test_ids": ["t1"], "counts": [[1, 1, 1]]}) + "\n"
        for d, i in (("conll2003", "llm-icl"), ("wnut17", "llm-icl"), ("wnut17", "vanilla"))))
    (src / "manifest.json").write_text(json.dumps({"argv": ["x", "evaluate", "--init", "llm-icl"], "start_time": "t0"}))
    grid.merge(src)
    from metaie_utils.stages.fewshot.loop import read_results

    for d in (grid.KEPT, grid.RUN):
        rows = read_results(d / "results.csv")
        assert sorted((r["dataset"], r["initialization"]) for r in rows) == [
            ("conll2003", "llm-icl"), ("conll2003", "vanilla"), ("wnut17", "llm-icl"), ("wnut17", "vanilla")]
    counts = [json.loads(x) for x in gzip.decompress((grid.KEPT / "counts.jsonl.gz").read_bytes()).splitlines()]
    assert [(c["dataset"], c["initialization"]) for c in counts] == [
        ("conll2003", "vanilla"), ("conll2003", "llm-icl"), ("wnut17", "llm-icl")]  # the other run's vanilla: not taken
    assert [(c["dataset"], c["initialization"]) for c in map(json.loads, (grid.RUN / "counts.jsonl").read_text().splitlines())] == [
        ("conll2003", "llm-icl"), ("wnut17", "llm-icl")]
    g = json.loads((grid.KEPT / "grid.json").read_text())
    assert g["merged"][0]["fine_tunes"] == 2 and g["merged"][0]["argv"] == "evaluate --init llm-icl" and g["fine_tunes"] == 4
    for stem in ("summary_ci", "summary_ci_metaie_vs_llm-icl"):  # the committed tables follow the committed rows
        table = (grid.KEPT / f"{stem}.csv").read_text()
        assert "llm-icl" in table and "wnut17" in table and (grid.KEPT / f"{stem}.png").is_file()
    grid.merge(src)  # again: nothing is added twice
    assert len(read_results(grid.KEPT / "results.csv")) == 4 and len(json.loads((grid.KEPT / "grid.json").read_text())["merged"]) == 1
    # a rerun after a fix replaces the grid's rows and counts of the same (dataset, initialization, seed)
    fixed = tmp_path / "outputs" / "05_fewshot_eval" / "icl-fix"
    _results(fixed / "results.csv", [{**icl, "dataset": "wnut17", "f1": "0.5"}])
    (fixed / "counts.jsonl").write_text(json.dumps({"dataset": "wnut17", "initialization": "llm-icl", "seed": 0,
                                                    "subtask": "entity", "test_ids": ["t2"], "counts": [[1, 1, 1]]}) + "\n")
    grid.merge(fixed)  # without --replace: the grid keeps its row
    assert [r["f1"] for r in read_results(grid.KEPT / "results.csv") if r["dataset"] == "wnut17" and r["initialization"] == "llm-icl"] == ["0.25"]
    grid.merge(fixed, replace=True)
    for d in (grid.KEPT, grid.RUN):
        rows = read_results(d / "results.csv")
        assert len(rows) == 4 and [r["f1"] for r in rows if r["dataset"] == "wnut17" and r["initialization"] == "llm-icl"] == ["0.5"]
    counts = [json.loads(x) for x in gzip.decompress((grid.KEPT / "counts.jsonl.gz").read_bytes()).splitlines()]
    assert [c.get("test_ids") for c in counts if c["dataset"] == "wnut17"] == [["t2"]] and len(counts) == 3
    assert json.loads((grid.KEPT / "grid.json").read_text())["merged"][-1]["replaced_rows"] == 1
    raw = (grid.KEPT / "results.csv").read_bytes()  # one line ending, append_results' csv \r\n: a replace rewrites
    assert raw.count(b"\r\n") == raw.count(b"\n") == 5  # only the lines it replaces, not the whole file
    # a run on another support set (another n_support for the same dataset and seed) is refused
    other = tmp_path / "outputs" / "05_fewshot_eval" / "icl-b"
    _results(other / "results.csv", [{**icl, "dataset": "conll2003", "seed": "0", "n_support": "7"}])
    with pytest.raises(SystemExit, match=r"conll2003 seed 0 was run on another support set"):
        grid.merge(other)
