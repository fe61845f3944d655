"""scripts/recipe_compare.py: recipes that do not drift with the defaults, and kept results that survive a new machine."""

import importlib.util
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def rc(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("recipe_compare", ROOT / "scripts" / "recipe_compare.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "ROOT", tmp_path)
    monkeypatch.setattr(mod, "KEPT", tmp_path / "docs" / "results" / "recipe_compare")
    return mod


def test_every_recipe_names_the_keys_it_compares(rc):
    """A recipe that leaves neg_share to the defaults changes meaning when the default moves (it did: fixed300
    became neg50 when fewshot_neg_share became 0.5)."""
    for name, sets in rc.RECIPES.items():
        keys = {kv.split("=", 1)[0] for kv in sets}
        assert "fewshot_neg_share" in keys, name
    assert "fewshot_neg_share=0" in rc.RECIPES["fixed300"] and "fewshot_neg_share=0" in rc.RECIPES["balanced"]


def test_restore_then_export_round_trips_kept_cells(rc, tmp_path, capsys):
    kept = rc.KEPT / "recipe-neg50-conll2003"
    kept.mkdir(parents=True)
    (kept / "results.csv").write_text("dataset,initialization,seed,subtask,f1\nconll2003,vanilla,0,entity,0.3\n"
                                      "conll2003,metaie,0,entity,0.4\n")
    (kept / "counts.jsonl").write_text("{}\n")
    (kept / "recipe_compare_wall.json").write_text(json.dumps([{"seeds": 1, "seconds": 10.0, "fine_tunes": 2}]))
    args = rc.argparse.Namespace(recipes=["neg50", "fixed300"], datasets=["conll2003"])
    assert rc.restore(args) == 0
    out = rc._cell_dir("recipe-neg50-conll2003")
    assert (out / "results.csv").read_text() == (kept / "results.csv").read_text()
    assert "restored recipe-neg50-conll2003 (2 fine-tunes)" in capsys.readouterr().out
    (out / "results.csv").write_text((out / "results.csv").read_text() + "conll2003,vanilla,1,entity,0.2\n")
    rc.restore(args)  # outputs/ already has the cell: never overwritten by the older kept copy
    assert rc._fine_tunes_done("recipe-neg50-conll2003") == 3
    assert rc.export(args) == 0
    assert (kept / "results.csv").read_text().endswith("conll2003,vanilla,1,entity,0.2\n")


def test_versus_pairs_two_recipes_per_initialization(rc, capsys):
    """bf16 against fp32: the same seeds and test sentences, one row per (sub-task, initialization)."""
    from metaie_utils.core.stats import counts_record

    ids = [f"s{i}" for i in range(20)]

    def cell(recipe: str, tp: int) -> None:
        d = rc.KEPT / f"recipe-{recipe}-conll2003"
        d.mkdir(parents=True)
        rows, recs = ["dataset,initialization,seed,subtask,f1,n_pred"], []
        for init, extra in (("vanilla", 0), ("metaie", 1)):
            for seed in (0, 1):
                counts = [(min(tp + extra, 2), 2, 2)] * 20  # F1 = (tp + extra) / 2 on every sentence
                f1 = min(tp + extra, 2) / 2
                rows.append(f"conll2003,{init},{seed},entity,{f1},40")
                recs.append(counts_record("conll2003", "entity", init, seed, ids, counts))
        (d / "results.csv").write_text("\n".join(rows) + "\n")
        (d / "counts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))

    cell("neg50", 0)
    cell("neg50-bf16", 1)
    args = rc.argparse.Namespace(recipes=["neg50-bf16", "neg50"], datasets=["conll2003", "conll04"])
    assert rc.versus(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| dataset | sub-task | initialization | neg50 F1 | neg50-bf16 F1 |")
    rows = {line.split(" | ")[2]: line for line in out[2:]}
    assert set(rows) == {"vanilla", "metaie"}  # conll04 has no cells: left out
    assert "| 0.0 ± 0.0 (2) | 50.0 ± 0.0 (2) | +50.0 [+50.0, +50.0] | 2 |" in rows["vanilla"]
    assert "| 50.0 ± 0.0 (2) | 100.0 ± 0.0 (2) | +50.0 [+50.0, +50.0] | 2 |" in rows["metaie"]
    assert rc.versus(rc.argparse.Namespace(recipes=["neg50"], datasets=["conll2003"])) == 2


def test_fp32_recipes_name_their_precision(rc):
    """fewshot_precision=auto became bf16 on CPUs with bf16 units: the fp32 candidates must not follow it."""
    for name, sets in rc.RECIPES.items():
        assert any(kv.startswith("fewshot_precision=") for kv in sets), name


def test_export_and_restore_default_to_every_cell_found(rc, tmp_path):
    """Cells outside the four comparison datasets (the every-dataset check) are kept too; a cell of neg50-bf16
    is not mistaken for a neg50 cell of dataset 'bf16-conll04'."""
    for name in ("recipe-neg50-up-ewt", "recipe-neg50-bf16-conll04", "recipe-fixed300-conll2003"):
        d = rc._cell_dir(name)
        d.mkdir(parents=True)
        (d / "results.csv").write_text("dataset,initialization,seed,subtask,f1\nx,vanilla,0,entity,0.1\n")
    (rc._cell_dir("recipe-neg50-empty")).mkdir()
    assert rc.main(["export", "--recipes", "neg50", "neg50-bf16"]) == 0
    assert sorted(p.name for p in rc.KEPT.iterdir()) == ["recipe-neg50-bf16-conll04", "recipe-neg50-up-ewt"]
    assert rc._present_cells(rc.KEPT, ["neg50"]) == [("neg50", "up-ewt")]
    import shutil

    shutil.rmtree(tmp_path / "outputs")
    assert rc.main(["restore"]) == 0
    assert (rc._cell_dir("recipe-neg50-up-ewt") / "results.csv").is_file()
    assert (rc._cell_dir("recipe-neg50-bf16-conll04") / "results.csv").is_file()


def test_a_finished_cell_releases_its_claim_so_more_seeds_extend_it(rc, tmp_path, monkeypatch, capsys):
    """A cell run with --seeds 1 and then asked for --seeds 3 was skipped as 'claimed' by the finished first run."""
    calls = []

    def fake_call(cmd, cwd=None):
        calls.append(cmd)
        return 0

    monkeypatch.setattr(rc.subprocess, "call", fake_call)
    monkeypatch.setattr(rc, "_add_wall", lambda *a, **k: None)
    args = rc.argparse.Namespace(recipes=["neg50"], datasets=["conll2003"], seeds=1, model="m", test_cap=5,
                                 reclaim=False)
    assert rc.run(args) == 0 and len(calls) == 1
    assert not (tmp_path / "outputs" / "recipe_compare" / "claims" / "recipe-neg50-conll2003").exists()
    args.seeds = 3
    assert rc.run(args) == 0 and len(calls) == 2  # not skipped as claimed
    assert calls[1][calls[1].index("--seeds") + 1] == "3"
    # a live claim (another worker) is skipped, and says so
    (tmp_path / "outputs" / "recipe_compare" / "claims" / "recipe-neg50-conll2003").touch()
    assert rc.run(args) == 0 and len(calls) == 2
    assert "claimed by another worker" in capsys.readouterr().out
