"""Papermill smoke runs of every notebook, in pipeline order, on params/smoke.yaml (the `notebooks` tier).

Each stage reads the previous stage's run directory, exactly as `python -m metaie_utils run` chains them, then
06_ablations runs on whatever sweeps exist. Asserts on the files each stage promises, not on notebook output.
"""

import json

import pytest

from metaie_utils import pipeline
from metaie_utils.core.params import PIPELINE, load_params

pytestmark = pytest.mark.notebooks

PRODUCTS = {
    "01_sample_corpus": "sentences.jsonl",
    "02_distill_llm": "responses.jsonl",
    "03_convert_bio": "instances.json",
    "04_train_meta_model": "model/config.json",
    "05_fewshot_eval": "results.csv",
}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("outputs")
    params = load_params(["params/smoke.yaml"], {"run_name": "smoke", "out_root": str(out)})
    dirs = pipeline.run_pipeline(params, PIPELINE)
    return out, dirs


@pytest.mark.parametrize("stage", PIPELINE)
def test_stage_products(smoke_run, stage):
    _, dirs = smoke_run
    d = dirs[stage]
    assert (d / "metrics.json").is_file(), f"{stage} did not finish"
    assert (d / PRODUCTS[stage]).exists(), f"{stage} did not write {PRODUCTS[stage]}"
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["params"]["run_name"] == "smoke"
    assert (d / f"{stage}.ipynb").is_file()


def test_rerun_skips_finished_stages(smoke_run, capsys):
    out, dirs = smoke_run
    params = load_params(["params/smoke.yaml"], {"run_name": "smoke", "out_root": str(out)})
    before = {s: (d / "metrics.json").stat().st_mtime for s, d in dirs.items()}
    pipeline.run_pipeline(params, PIPELINE)
    assert {s: (d / "metrics.json").stat().st_mtime for s, d in dirs.items()} == before
    assert capsys.readouterr().out.count("skipped") == len(PIPELINE)


def test_ablations_notebook_runs(smoke_run):
    out, _ = smoke_run
    params = load_params(["params/smoke.yaml"], {"run_name": "smoke", "out_root": str(out)})
    dirs = pipeline.run_pipeline(params, ["06_ablations"])
    assert (dirs["06_ablations"] / "metrics.json").is_file()


def test_stages_produced_content_not_just_files(smoke_run):
    """What the stages made: instances exist, the meta-model predicts spans on its own training sentences,
    results.csv has one row per dataset x initialization x seed x sub-task, metrics.json its declared keys."""
    import csv

    from metaie_utils.core.bio import bio_spans, split_instance
    from metaie_utils.core.params import stage_class
    from metaie_utils.models import load_extractor

    _, dirs = smoke_run
    for stage, d in dirs.items():
        m = json.loads((d / "metrics.json").read_text())
        missing = [k for k in stage_class(stage).metrics_keys if k not in m]
        assert not missing, f"{stage} metrics.json lacks its declared keys {missing}"
    insts = json.loads((dirs["03_convert_bio"] / "instances.json").read_text())
    assert insts and all(len(i["words"]) == len(i["ner"]) for i in insts)
    assert any(bio_spans(split_instance(i)[2]) for i in insts), "no instance holds a span"
    ie = load_extractor(dirs["04_train_meta_model"] / "model", device="cpu")
    queries = [(split_instance(i)[1], " ".join(split_instance(i)[0])) for i in insts[:40]]
    preds = ie.extract([w for w, _ in queries], [[lab] for _, lab in queries])
    assert sum(len(p) for p in preds) > 0, "the meta-model predicts no span on its own training sentences"
    m04 = json.loads((dirs["04_train_meta_model"] / "metrics.json").read_text())
    assert m04["n_params"] > 1_000_000  # MiniLM-L6: 22.6M
    params = load_params(["params/smoke.yaml"])
    rows = list(csv.DictReader(open(dirs["05_fewshot_eval"] / "results.csv", encoding="utf-8")))
    assert {r["dataset"] for r in rows} == set(params["datasets"])
    assert {r["initialization"] for r in rows} == set(params["initializations"])
    assert {int(r["seed"]) for r in rows} == set(range(params["seed"], params["seed"] + params["fewshot_seeds"]))


def test_notebook_05_alone_predicts_spans(tmp_path):
    """Opened alone (its own parameters cell, no params file), 05 fine-tunes vanilla MiniLM on CoNLL2003 with
    the default recipe and must predict spans: the old cell (lr 1e-4, 10 epochs) scored F1 0.0 and drew an
    empty chart. Only out_root and run_name are injected."""
    import csv

    from metaie_utils.core.params import STANDALONE

    assert STANDALONE["05_fewshot_eval"] == {"datasets": ["conll2003"]}  # the cell runs the default recipe
    pipeline.execute_stage("05_fewshot_eval", {"out_root": str(tmp_path), "run_name": "alone"}, tmp_path / "nb")
    d = tmp_path / "05_fewshot_eval" / "alone"
    rows = list(csv.DictReader(open(d / "results.csv", encoding="utf-8")))
    van = [r for r in rows if r["initialization"] == "vanilla"]
    assert van and int(van[0]["n_pred"]) > 0 and float(van[0]["f1"]) > 0, van


def test_executed_notebooks_are_clean(smoke_run):
    """What a user sees after Run All (issue 14): no Trainer loss dicts or tqdm fallback warnings on stderr,
    and no figure shown twice (a cell that saves a figure must not also return it)."""
    import nbformat

    _, dirs = smoke_run
    for stage, d in dirs.items():
        nb = nbformat.read(d / f"{stage}.ipynb", as_version=4)
        stderr = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                         for o in c.get("outputs", []) if o.get("name") == "stderr")
        assert "IProgress not found" not in stderr, f"{stage}: progress bars fell back to text (ipywidgets missing?)"
        assert "'loss':" not in stderr and "'train_runtime':" not in stderr, f"{stage}: Trainer logs on stderr"
        images = [o["data"]["image/png"] for c in nb.cells if c.cell_type == "code"
                  for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
        assert len(images) == len(set(images)), f"{stage}: a figure is shown twice"
