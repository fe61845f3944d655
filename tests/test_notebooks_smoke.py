"""Papermill smoke runs of every notebook, in pipeline order, on params/smoke.yaml (the `notebooks` tier).

Each stage reads the previous stage's run directory, exactly as `python -m metaie_utils run` chains them, then
06_ablations runs on whatever sweeps exist. Asserts on the files each stage promises, not on notebook output.
"""

import json

import pytest

from metaie_utils import pipeline
from metaie_utils.params import PIPELINE, load_params

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
