"""scripts/layer_probe.py: the per-layer diagnostic of a frozen backbone (token cosine, B/I probe) on a tiny BERT."""

import importlib.util
import json
from pathlib import Path

import pytest

from tests.test_dataset_spec import tiny_model

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("layer_probe", ROOT / "scripts" / "layer_probe.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _instances(n: int) -> list[dict]:
    a = {"words": ["person", ":", "tom", "lives", "in", "paris", "."], "ner": ["O", "O", "B", "O", "O", "O", "O"]}
    b = {"words": ["location", ":", "ann", "visits", "new", "york", "."], "ner": ["O", "O", "O", "O", "B", "I", "O"]}
    return [a if i % 2 else b for i in range(n)]


def test_layer_profile_rows_per_layer_and_files(tmp_path, capsys):
    lp = _script()
    model = tiny_model(tmp_path / "m")
    held = tmp_path / "heldout.json"
    held.write_text(json.dumps(_instances(12)))
    assert lp.main(["--backbone", str(model), "--heldout", str(held), "--train", "8", "--out", str(tmp_path / "o")]) == 0
    import pandas as pd

    df = pd.read_csv(tmp_path / "o" / "m.csv")
    assert list(df["layer"]) == [0, 1] and df["token_cosine"].between(-1, 1).all() and df["probe_f1"].between(0, 1).all()
    assert (tmp_path / "o" / "m.png").is_file() and "probe_f1" in capsys.readouterr().out
    # the same words, tags and vectors in train and test: a linear probe on word identity tags them all
    assert df["probe_f1"].iloc[0] == 1.0


def test_layer_profile_refuses_an_empty_split(tmp_path):
    lp = _script()
    with pytest.raises(ValueError, match="0 < train < 4"):
        lp.layer_profile(str(tiny_model(tmp_path / "m")), _instances(4), 4)
