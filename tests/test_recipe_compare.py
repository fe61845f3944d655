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
