"""Sweep spec validation and expansion, sweep records, and reading sweep metrics into tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from metaie_utils.stages import ablations as ab
from metaie_utils.stages.ablations import (
    Point,
    SweepSpecError,
    expand_sweep,
    validate_sweep_spec,
)

pytestmark = pytest.mark.unit

KNOWN = {"seed", "backbone", "num_layers", "architecture", "max_sentences", "max_instances", "label_subset",
         "label_top_k", "epochs", "datasets", "test_cap"}


def spec(**kw):
    base = {"name": "s", "stages": ["04_train_meta_model", "05_fewshot_eval"], "grid": {"seed": [0, 1]}}
    base.update(kw)
    return validate_sweep_spec(base, known_keys=KNOWN)


# --- validation ------------------------------------------------------------------------------------


def test_valid_spec_keeps_fields():
    s = spec(description="d", params=["params/cpu.yaml"], set={"epochs": 1}, reuse={"03_convert_bio": "cpu"},
             points=[{"backbone": "minilm-l6", "num_layers": 0}])
    assert s.name == "s" and s.reuse == {"03_convert_bio": "cpu"} and s.set == {"epochs": 1}
    assert s.varied_keys() == ["seed", "backbone", "num_layers"]


@pytest.mark.parametrize(
    "kw, needle",
    [
        ({"grids": {"seed": [0]}}, "unknown key 'grids'"),
        ({"grid": {}}, "empty grid and no points"),
        ({"grid": {"seed": []}}, "grid key 'seed' has an empty list"),
        ({"grid": {"seed": [1, 1]}}, "repeats a value"),
        ({"stages": []}, "stages is empty"),
        ({"stages": ["04_train"]}, "unknown stage"),
        ({"stages": ["05_fewshot_eval", "04_train_meta_model"]}, "out of pipeline order"),
        ({"reuse": {"04_train_meta_model": "x"}}, "both reused and executed"),
        ({"reuse": {"05_fewshot_eval": "x"}, "stages": ["04_train_meta_model"]}, "reuse only upstream"),
        ({"reuse": {"03_convert_bio": ""}}, "needs an existing run name"),
        ({"grid": {"seed": [0]}, "points": [{"seed": 1}]}, "both `grid` and `points`"),
        ({"set": {"seed": 0}}, "both `set` and `grid`"),
        ({"set": {"run_name": "x"}}, "runner owns"),
        ({"points": [{}]}, "empty mapping"),
        ({"name": "bad name"}, "sweep name 'bad name'"),
        ({"name": "a--b"}, "sweep name 'a--b'"),
        ({"grid": {"sed": [0, 1]}}, "unknown parameter(s) 'sed' (did you mean 'seed'?)"),
    ],
)
def test_bad_specs_raise_clear_errors(kw, needle):
    with pytest.raises(SweepSpecError) as e:
        spec(**kw)
    assert needle in str(e.value)


def test_missing_name_and_non_mapping():
    with pytest.raises(SweepSpecError, match="missing required key 'name'"):
        validate_sweep_spec({"stages": ["04_train_meta_model"], "grid": {"seed": [0]}}, known_keys=None)
    with pytest.raises(SweepSpecError, match="is a mapping"):
        validate_sweep_spec([1, 2], known_keys=None)  # type: ignore[arg-type]


def test_known_keys_none_skips_key_check():
    s = validate_sweep_spec({"name": "x", "stages": ["04_train_meta_model"], "grid": {"whatever": [1]}}, known_keys=None)
    assert s.grid == {"whatever": [1]}


# --- expansion -------------------------------------------------------------------------------------


def test_expand_grid_times_points_in_order():
    s = spec(set={"epochs": 1}, grid={"seed": [0, 1]},
             points=[{"backbone": "minilm-l6", "num_layers": 0}, {"backbone": "mpnet-base", "num_layers": 3}])
    pts = expand_sweep(s)
    assert [p.run_name for p in pts] == [
        "s--seed=0,backbone=minilm-l6,num_layers=0",
        "s--seed=0,backbone=mpnet-base,num_layers=3",
        "s--seed=1,backbone=minilm-l6,num_layers=0",
        "s--seed=1,backbone=mpnet-base,num_layers=3",
    ]
    assert pts[1] == Point("s--seed=0,backbone=mpnet-base,num_layers=3",
                           {"epochs": 1, "seed": 0, "backbone": "mpnet-base", "num_layers": 3})


def test_cartesian_product_size_and_uniqueness():
    s = spec(grid={"seed": [0, 1, 2], "max_sentences": [0, 100, 300, 1000]})
    pts = expand_sweep(s)
    assert len(pts) == 12 and len({p.run_name for p in pts}) == 12
    assert pts[0].overrides == {"seed": 0, "max_sentences": 0}
    assert pts[-1].overrides == {"seed": 2, "max_sentences": 1000}


def test_run_names_are_filesystem_safe():
    s = spec(grid={"backbone": ["FacebookAI/roberta-large", "a b:c"], "label_subset": ["top_k"]})
    names = [p.run_name for p in expand_sweep(s)]
    assert names == ["s--backbone=FacebookAI_roberta-large,label_subset=top_k", "s--backbone=a_b_c,label_subset=top_k"]
    for n in names:
        assert "/" not in n and " " not in n


def test_name_collision_after_sanitizing_is_an_error():
    with pytest.raises(SweepSpecError, match="both map to run name"):
        expand_sweep(spec(grid={"backbone": ["a/b", "a:b"]}))


def test_long_names_are_cut_with_a_hash():
    long = "x" * 300
    pts = expand_sweep(spec(grid={"backbone": [long, long + "y"]}))
    assert all(len(p.run_name) <= ab.MAX_RUN_NAME for p in pts)
    assert pts[0].run_name != pts[1].run_name


def test_expand_accepts_raw_mapping(monkeypatch):
    pts = expand_sweep({"name": "r", "stages": ["04_train_meta_model"], "points": [{"seed": 3}]})
    assert pts == [Point("r--seed=3", {"seed": 3})]


def test_safe_value_formats():
    assert [ab.safe_value(v) for v in (False, None, 1e-5, 3, "ner_types", [1, 2])] == \
        ["false", "none", "1e-05", "3", "ner_types", "_1_2_"]


# --- shipped sweep specs ---------------------------------------------------------------------------


SPEC_FILES = sorted(ab.SWEEPS_DIR.glob("*.yaml"))


@pytest.mark.parametrize("path", SPEC_FILES, ids=[p.stem for p in SPEC_FILES])
def test_shipped_specs_validate_and_expand(path):
    data = yaml.safe_load(path.read_text())
    s = validate_sweep_spec(data, known_keys=None, source=str(path))
    assert s.name == path.stem, f"{path}: name should equal the file stem"
    pts = expand_sweep(s)
    assert pts and len({p.run_name for p in pts}) == len(pts)
    for f in s.params:
        assert (ab.resolve(f)).is_file(), f"{path}: params layer {f} missing"


# --- compatibility checks --------------------------------------------------------------------------


def test_record_compatibility(tmp_path):
    s = spec()
    ab.check_compatible_record(s, {"spec": s.model_dump()})
    ab.check_compatible_record(s, {"spec": {**s.model_dump(), "description": "changed"}})
    raw = {"name": "s", "stages": ["04_train_meta_model", "05_fewshot_eval"], "grid": {"seed": [0, 1]}}
    ab.check_compatible_record(s, {"spec": raw})  # defaults left out of the record are not differences
    with pytest.raises(SweepSpecError, match=r"keys \['grid'\] differ"):
        ab.check_compatible_record(s, {"spec": {**s.model_dump(), "grid": {"seed": [5]}}})
    with pytest.raises(SweepSpecError, match="no 'spec' entry"):
        ab.check_compatible_record(s, {})


def test_record_compatibility_extends_datasets_only():
    """A spec whose set lists more datasets than its record extends the finished points; fewer, or another key
    changed, is a different sweep."""
    grown = spec(set={"datasets": ["conll2003", "conll2004"]})
    rec = {"spec": spec(set={"datasets": ["conll2003"]}).model_dump()}
    ab.check_compatible_record(grown, rec, extendable=["datasets", "initializations"])
    with pytest.raises(SweepSpecError, match=r"keys \['set'\] differ"):
        ab.check_compatible_record(grown, rec)  # datasets not extendable for these stages
    with pytest.raises(SweepSpecError, match=r"keys \['set'\] differ"):
        ab.check_compatible_record(spec(set={"datasets": ["conll2004"]}), rec, extendable=["datasets"])
    with pytest.raises(SweepSpecError, match=r"keys \['set'\] differ"):
        ab.check_compatible_record(spec(set={"datasets": ["conll2003", "conll2004"], "test_cap": 30}), rec,
                                   extendable=["datasets"])


def test_record_compatibility_admits_added_points_only():
    one = spec(grid={}, points=[{"backbone": "minilm-l6"}])
    two = spec(grid={}, points=[{"backbone": "minilm-l6"}, {"backbone": "mpnet-base", "epochs": 2}])
    ab.check_compatible_record(two, {"spec": one.model_dump()})
    with pytest.raises(SweepSpecError, match=r"keys \['points'\] differ"):  # a recorded point changed
        ab.check_compatible_record(spec(grid={}, points=[{"backbone": "minilm-l6", "epochs": 2}]), {"spec": one.model_dump()})
    with pytest.raises(SweepSpecError, match=r"keys \['points'\] differ"):  # or dropped
        ab.check_compatible_record(one, {"spec": two.model_dump()})


def test_run_manifest_mismatch(tmp_path):
    d = tmp_path / "run"
    ab.check_run_matches(d, {"seed": 1})  # nothing there yet
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps({"params": {"seed": 1, "backbone": "minilm-l6"}}))
    ab.check_run_matches(d, {"seed": 1, "max_sentences": 100})  # key not declared by that stage: ignored
    with pytest.raises(SweepSpecError, match="backbone: run has 'minilm-l6', spec wants 'mpnet-base'"):
        ab.check_run_matches(d, {"backbone": "mpnet-base"})


# --- reading finished sweeps -----------------------------------------------------------------------


def _write(p: Path, obj) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(obj))


def fake_sweep(root: Path, name: str, spec_extra: dict, points: list[tuple[dict, dict | None, dict | None]]) -> None:
    """Write sweep.json and per-point run files: (overrides, 03 metrics or None, 05 metrics or None)."""
    raw = {"name": name, "stages": ["03_convert_bio", "04_train_meta_model", "05_fewshot_eval"], **spec_extra}
    s = validate_sweep_spec(raw, known_keys=None)
    pts = expand_sweep(s)
    assert len(pts) == len(points)
    _write(root / "sweeps" / name / "sweep.json",
           {"spec": raw, "points": [{"run_name": p.run_name, "overrides": p.overrides} for p in pts]})
    for p, (_, m03, m05) in zip(pts, points):
        for stage, m in (("03_convert_bio", m03), ("04_train_meta_model", {} if m05 else None), ("05_fewshot_eval", m05)):
            d = root / stage / p.run_name
            _write(d / "manifest.json", {"start_time": "2026-01-01T00:00:00+00:00", "end_time": "2026-01-01T00:00:10+00:00"})
            if m is not None:
                _write(d / "metrics.json", m)


def m05(meta: float, vanilla: float) -> dict:
    return {"conll2003": {"conll2003": {"metaie": {"f1": meta, "f1_std": 1.0, "n_seeds": 1},
                                        "vanilla": {"f1": vanilla, "f1_std": 0.5, "n_seeds": 1}}}}


def test_read_data_size_sweep(tmp_path):
    fake_sweep(tmp_path, "ds", {"grid": {"max_sentences": [100, 1000, 0]}}, [
        ({}, {"sentences": 100, "train_instances": 300}, m05(20.0, 10.0)),
        ({}, {"sentences": 1000, "train_instances": 3000}, m05(40.0, 10.0)),
        ({}, {"sentences": 5000}, None),  # cut off: 03 finished only
    ])
    res = ab.read_sweep("ds", tmp_path)
    assert res.kind == "data_size" and res.varied == ["max_sentences"] and res.n_finished == 2
    assert list(res.points["status"]) == ["finished", "finished", "partial"]
    assert list(res.points["seconds"]) == [30.0, 30.0, 30.0]
    assert len(res.scores) == 4 and set(res.scores["task"]) == {"conll2003/conll2003"}
    curve = ab.data_size_curve(res.scores)
    meta = curve[curve["initialization"] == "metaie"]
    assert list(meta["n_sentences"]) == [100, 1000] and list(meta["mean"]) == [20.0, 40.0]
    van = curve[curve["initialization"] == "vanilla"]
    assert list(van["n_sentences"]) == [0.0] and list(van["mean"]) == [10.0]
    table = ab.ablation_table(res.scores)
    assert table.loc[("conll2003/conll2003", "metaie"), "max_sentences=1000"] == "40.00 ± 1.00"
    m = ab.ablation_metrics([res])
    assert m["ds"]["finished"] == 2 and m["ds"]["mean_f1"]["max_sentences=100 | metaie"] == 20.0


def test_read_model_size_sweep_with_seeds(tmp_path):
    fake_sweep(tmp_path, "ms", {"grid": {"seed": [0, 1]}, "points": [{"backbone": "mpnet-base", "num_layers": 3},
                                                                    {"backbone": "minilm-l6", "num_layers": 0}]}, [
        ({}, {}, m05(30.0, 5.0)), ({}, {}, m05(20.0, 5.0)), ({}, {}, m05(34.0, 5.0)), ({}, {}, m05(22.0, 5.0)),
    ])
    res = ab.read_sweep(tmp_path / "sweeps" / "ms" / "sweep.json", tmp_path)
    assert res.kind == "model_size"
    fake_sweep(tmp_path, "capped", {"set": {"meta_max_instances": 1000}, "points": [{"backbone": "minilm-l6"}]},
               [({}, {"train_instances": 8812}, None)])  # not trained yet: its cap, not the conversion's 8,812
    assert list(ab.read_sweep("capped", tmp_path).points["n_instances"]) == [1000]
    assert list(res.points["n_params"]) == [45_105_024, 22_565_376, 45_105_024, 22_565_376]
    agg = ab.aggregate_scores(res.scores)
    row = agg[(agg["label"] == "backbone=mpnet-base, num_layers=3") & (agg["initialization"] == "metaie")].iloc[0]
    assert row["mean"] == 32.0 and round(row["std"], 4) == round((8 ** 0.5), 4) and row["n_points"] == 2


def test_figures_for_each_kind_and_empty(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from metaie_utils.plots import ablations as pab

    fake_sweep(tmp_path, "ds", {"grid": {"max_sentences": [100, 1000]}}, [
        ({}, {"sentences": 100}, m05(20.0, 10.0)), ({}, {"sentences": 1000}, m05(40.0, 10.0))])
    fake_sweep(tmp_path, "ms", {"points": [{"backbone": "mpnet-base", "num_layers": 3}]}, [({}, {}, m05(30.0, 5.0))])
    fake_sweep(tmp_path, "none_done", {"grid": {"architecture": ["seqlabel", "generative"]}},
               [({}, None, None), ({}, None, None)])
    got = {r.name: r for r in ab.load_sweeps([], tmp_path)}
    assert sorted(got) == ["ds", "ms", "none_done"]
    assert sorted(pab.figures_for(got["ds"])) == ["per_task", "vs_sentences"]
    assert sorted(pab.figures_for(got["ms"])) == ["per_task", "vs_params"]
    figs = pab.figures_for(got["none_done"])
    assert got["none_done"].kind == "architecture" and list(figs) == ["per_task"]
    assert figs["per_task"].axes[0].texts[0].get_text() == "no finished points"


def test_f1_vs_params_one_panel_per_task_ticks_at_the_sizes(tmp_path):
    """The size figure: a panel per task, MetaIE and vanilla as two lines in each, x ticks the points' own
    parameter counts; an export of a model-size sweep keeps it beside the intervals."""
    import matplotlib

    matplotlib.use("Agg")
    from metaie_utils.plots import ablations as pab

    two_tasks = lambda a, b: {"conll2003": {"entity": m05(a, b)["conll2003"]["conll2003"]},  # noqa: E731
                              "conll04": {"relation": m05(a / 2, b / 2)["conll2003"]["conll2003"]}}
    fake_sweep(tmp_path, "ms", {"points": [{"backbone": "mpnet-base", "num_layers": 3},
                                           {"backbone": "minilm-l6", "num_layers": 0}]},
               [({}, {}, two_tasks(30.0, 20.0)), ({}, {}, two_tasks(25.0, 24.0))])
    res = ab.read_sweep("ms", tmp_path)
    fig = pab.f1_vs_params(res.scores)
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    assert [ax.get_title() for ax in panels] == ["conll2003/entity", "conll04/relation"]
    for ax in panels:
        assert len(ax.get_lines()) >= 2 and [t.get_text() for t in ax.get_xticklabels()] == ["23M", "45M"]
    meta = [ln for ln in panels[0].get_lines() if ln.get_linestyle() == "-" and len(ln.get_xdata()) == 2][0]
    assert list(meta.get_ydata()) == [25.0, 30.0]  # sorted by size: MiniLM (22.6M) first
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["vanilla", "metaie"]

    kept = ab.export_sweep("ms", tmp_path / "kept", tmp_path, baseline_run=None)
    assert (kept / "vs_params.png").is_file() and not (kept / "per_task.png").exists()
    (kept / "vs_params.png").unlink()
    assert ab.export_sweep("ms", tmp_path / "kept", tmp_path / "kept", baseline_run=None) == kept  # in place: redrawn
    assert (kept / "vs_params.png").is_file()


def test_missing_sweep_and_corrupt_record(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m metaie_utils sweep params/sweeps/nope.yaml"):
        ab.read_sweep("nope", tmp_path)
    _write(tmp_path / "sweeps" / "bad" / "sweep.json", {"points": []})
    with pytest.raises(SweepSpecError, match="lacks 'spec' or 'points'"):
        ab.read_sweep("bad", tmp_path)
    assert ab.load_sweeps([], tmp_path / "empty") == []
    assert ab.load_sweeps(["nope"], tmp_path) == [] and ab.missing_sweeps(["nope", "bad"], tmp_path) == ["nope"]
    with pytest.raises(FileNotFoundError):
        ab.load_sweeps(["nope"], tmp_path, skip_missing=False)
    assert "No finished sweep" in ab.no_sweeps_message(tmp_path / "empty")


def test_flatten_ignores_other_entries():
    rows = ab.flatten_fewshot_metrics({"a": {"b": {"vanilla": {"f1": 1.0}, "junk": 3}}, "n": 1, "c": {"d": 2}})
    assert rows == [{"dataset": "a", "subtask": "b", "initialization": "vanilla", "f1": 1.0}]


def test_ablation_config_fields():
    cfg = ab.AblationConfig(sweeps=["model_size_cpu"], metric="recall")
    assert cfg.stage == "06_ablations" and cfg.sweeps == ["model_size_cpu"]
    with pytest.raises(Exception, match="metric 'acc'"):
        ab.AblationConfig(metric="acc")


def test_cli_prints_tables(tmp_path, capsys):
    from metaie_utils.cli import main

    fake_sweep(tmp_path, "ds", {"grid": {"max_sentences": [100]}}, [({}, {"sentences": 100}, m05(20.0, 10.0))])
    assert main(["ablations", "--out-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "== ds (data_size): 1/1 points finished, 0.5 min" in out and "20.00 ± 1.00" in out
    assert main(["ablations", "--out-root", str(tmp_path / "none"), "x"]) == 0
    assert "not recorded yet: x" in capsys.readouterr().out


def _planted_run(d: Path, per_init: dict[str, list[int]], n: int = 40, seeds=(0, 1, 2), dataset: str = "conll2003") -> None:
    """results.csv + counts.jsonl of a stage-05 run (appended to when it exists): init -> the test sentences
    (of n, one gold span each) it gets right (tp 1, pred 1) per seed; the others it misses (tp 0, pred 0)."""
    from metaie_utils.core.stats import append_counts, counts_record

    d.mkdir(parents=True, exist_ok=True)
    old = (d / "results.csv").read_text().splitlines() if (d / "results.csv").is_file() else []
    lines = old or ["dataset,initialization,seed,subtask,f1,n_pred,n_test"]
    for init, right in per_init.items():
        for s in seeds:
            hits = set(right)
            cnt = [(1, 1, 1) if i in hits else (0, 0, 1) for i in range(n)]
            tp = len(hits)
            f1 = 2 * tp / (tp + n)
            lines.append(f"{dataset},{init},{s},entity,{f1},{tp},{n}")
            append_counts(d / "counts.jsonl", counts_record(dataset, "entity", init, s, [f"t{i}" for i in range(n)], cnt))
    (d / "results.csv").write_text("\n".join(lines) + "\n")


def test_interval_note_names_the_recipe_keys_that_differ(tmp_path):
    """A baseline fine-tuned under another recipe is named in the row's note by the keys that differ; a key
    only one side records (added to the recipe after the older run) is not a difference."""
    import csv

    fake_sweep(tmp_path, "ls", {"grid": {"label_subset": ["all"]}}, [({}, {"sentences": 30}, m05(20.0, 10.0))])
    res = ab.read_sweep("ls", tmp_path)
    run, grid = Path(res.points["dir_05_fewshot_eval"][0]), tmp_path / "05_fewshot_eval" / "cpu"
    _planted_run(run, {"metaie": list(range(20))})
    _planted_run(grid, {"vanilla": list(range(10))})

    def with_recipe(d: Path, recipe: str) -> None:
        rows = list(csv.DictReader((d / "results.csv").open()))
        with (d / "results.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, [*rows[0], "recipe"] if "recipe" not in rows[0] else list(rows[0]))
            w.writeheader()
            w.writerows({**r, "recipe": recipe} for r in rows)

    with_recipe(run, "lr=0.0003;max_steps=300;min_epochs=3.0;collapse_retries=1")
    with_recipe(grid, "lr=0.0001;max_steps=300;min_epochs=3.0")
    note = ab.sweep_intervals(res, n_boot=50, baseline_run=grid)["note"].iloc[0]
    assert "vanilla's recipe differs (lr: 0.0001 vs 0.0003)" in note and "collapse_retries" not in note
    with_recipe(grid, "lr=0.0003;max_steps=300;min_epochs=3.0")
    assert "differs" not in str(ab.sweep_intervals(res, n_boot=50, baseline_run=grid)["note"].iloc[0])


def test_sweep_intervals_pair_each_point_with_vanilla(tmp_path, capsys):
    """Issue 17 item 3: every ablation point gets F1 mean ± std and a paired CI against vanilla; vanilla run
    once (at the first point) serves the points that do not repeat it."""
    import matplotlib

    matplotlib.use("Agg")
    from metaie_utils.plots import ablations as pab

    fake_sweep(tmp_path, "ds", {"grid": {"max_sentences": [30, 1000, 0]}}, [
        ({}, {"sentences": 30}, m05(20.0, 10.0)), ({}, {"sentences": 1000}, m05(40.0, 10.0)), ({}, {"sentences": 3000}, None)])
    res = ab.read_sweep("ds", tmp_path)
    runs = [Path(p) for p in res.points["dir_05_fewshot_eval"]]
    _planted_run(runs[0], {"vanilla": list(range(10)), "metaie": list(range(10))})   # 30 sentences: same as vanilla
    _planted_run(runs[1], {"metaie": list(range(30))})                                # 1,000: 20 more right, every seed
    t = ab.sweep_intervals(res, n_boot=500)
    assert list(t["label"]) == ["max_sentences=30", "max_sentences=1000"] and set(t["initialization"]) == {"metaie"}
    same, more = t.iloc[0], t.iloc[1]
    assert same["diff"] == 0 and same["diff_lo"] == 0 == same["diff_hi"]
    assert more["diff"] > 20 and more["diff_lo"] > 0 and more["n_paired_seeds"] == 3
    assert "vanilla from another point" in more["note"] and "vanilla from another point" not in str(same["note"])
    assert round(more["f1"], 1) == round(100 * 2 * 30 / 70, 1) and more["f1_std"] == 0
    table = ab.interval_table(t)
    assert table.loc[("conll2003/entity", "metaie"), "max_sentences=1000"].startswith("85.7 ± 0.0 (+")
    from metaie_utils.cli import main

    assert main(["ablations", "--out-root", str(tmp_path), "ds"]) == 0
    assert "each point − vanilla" in capsys.readouterr().out
    fig = pab.interval_figure(t)
    assert [tk.get_text() for tk in fig.axes[0].get_xticklabels()] == ["max_sentences=30", "max_sentences=1000"]
    assert "no points" in pab.interval_figure(t.iloc[0:0]).axes[0].texts[0].get_text()
    several = t.assign(label=["backbone=b, num_layers=3, lr=1", "backbone=b, num_layers=0, lr=5"])
    fig = pab.interval_figure(several)   # shared parts dropped, one key per line, the legend beside the axes
    assert [tk.get_text() for tk in fig.axes[0].get_xticklabels()] == ["num_layers=3\nlr=1", "num_layers=0\nlr=5"]
    assert fig.axes[0].get_legend().get_bbox_to_anchor().x0 > fig.axes[0].get_window_extent().x1 - 1


def test_sweep_intervals_take_vanilla_from_the_grid_when_no_point_has_it(tmp_path):
    fake_sweep(tmp_path, "ls", {"grid": {"label_subset": ["all", "top_k"]}}, [
        ({}, {"sentences": 30}, m05(20.0, 10.0)), ({}, {"sentences": 30}, m05(30.0, 10.0))])
    res = ab.read_sweep("ls", tmp_path)
    runs = [Path(p) for p in res.points["dir_05_fewshot_eval"]]
    _planted_run(runs[0], {"metaie": list(range(20))})
    _planted_run(runs[1], {"metaie": list(range(10))})
    assert ab.sweep_intervals(res, n_boot=100)["diff"].isna().all()  # no vanilla anywhere: F1 only, no difference
    grid = tmp_path / "05_fewshot_eval" / "cpu"
    _planted_run(grid, {"vanilla": list(range(10)), "metaie": list(range(25))})
    _planted_run(grid, {"vanilla": list(range(5))}, dataset="wnut17")  # a dataset the sweep did not evaluate
    t = ab.sweep_intervals(res, n_boot=100, baseline_run=grid)
    assert list(t["diff"] > 0) == [True, False] and all("vanilla from cpu" in n for n in t["note"])
    assert set(t["dataset"]) == {"conll2003"}  # no empty rows for the grid's other datasets


def test_baseline_run_resolves_outputs_then_the_kept_copy(tmp_path, monkeypatch):
    """The CPU grid's vanilla pairs with the *_cpu sweeps from outputs/, else from docs/results/<name>
    (a new machine); a directory is taken as given; nothing found -> None, not an error."""
    import metaie_utils.stages.ablations as mod

    out = tmp_path / "outputs"
    kept = tmp_path / "repo"
    monkeypatch.setattr(mod, "resolve", lambda p: Path(p) if Path(p).is_absolute() else kept / p)
    assert ab.resolve_baseline_run("", out) is None and ab.resolve_baseline_run("cpu", out) is None
    _planted_run(kept / "docs" / "results" / "cpu", {"vanilla": [1]})
    assert ab.resolve_baseline_run("cpu", out) == kept / "docs" / "results" / "cpu"
    _planted_run(out / "05_fewshot_eval" / "cpu", {"vanilla": [1]})
    assert ab.resolve_baseline_run("cpu", out) == out / "05_fewshot_eval" / "cpu"
    assert ab.resolve_baseline_run(str(kept / "docs" / "results" / "cpu"), out) == kept / "docs" / "results" / "cpu"


def test_export_sweep_reads_back_with_the_same_intervals(tmp_path, capsys):
    """outputs/ may be gone next session: a kept sweep (no checkpoints) gives the same points, scores and
    intervals as the original, the CLI reads it with --out-root, and re-exporting changes no byte."""
    import matplotlib

    matplotlib.use("Agg")
    src, dest = tmp_path / "outputs", tmp_path / "kept"
    fake_sweep(src, "ls", {"grid": {"label_subset": ["all", "top_k"]}}, [
        ({}, {"sentences": 30}, m05(20.0, 10.0)), ({}, {"sentences": 30}, m05(30.0, 10.0))])
    res = ab.read_sweep("ls", src)
    runs = [Path(p) for p in res.points["dir_05_fewshot_eval"]]
    _planted_run(runs[0], {"metaie": list(range(20))})
    _planted_run(runs[1], {"metaie": list(range(10))})
    (runs[0] / "model.safetensors").write_bytes(b"x" * 10)  # a checkpoint-sized file is not kept
    grid = src / "05_fewshot_eval" / "cpu"
    _planted_run(grid, {"vanilla": list(range(10)), "metaie": list(range(25))})
    before = ab.sweep_intervals(res, n_boot=200, baseline_run=grid)

    kept = ab.export_sweep("ls", dest, src, baseline_run=grid)
    assert all((kept / f).is_file() for f in ("sweep.json", "intervals.csv", "intervals.png"))
    assert not any(p.name == "model.safetensors" for p in dest.rglob("*"))
    assert (dest / "05_fewshot_eval" / runs[0].name / "counts.jsonl.gz").is_file()
    again = ab.read_sweep("ls", dest)
    assert list(again.points["status"]) == ["finished", "finished"] and again.scores.equals(res.scores)
    after = ab.sweep_intervals(again, n_boot=200, baseline_run=grid)
    cols = ["label", "f1", "diff", "diff_lo", "diff_hi", "n_paired_seeds"]
    assert after[cols].equals(before[cols]) and list(after["diff"] > 0) == [True, False]

    snapshot = {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    ab.export_sweep("ls", dest, src, baseline_run=grid)
    assert {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()} == snapshot

    from metaie_utils.cli import main

    assert main(["ablations", "--out-root", str(dest), "--baseline-run", str(grid), "ls"]) == 0
    out = capsys.readouterr().out
    assert "== ls (label_distribution): 2/2 points finished" in out and f"else {grid}" in out


def test_point_differences_pair_two_points_of_a_sweep(tmp_path, capsys):
    """'NER types beat all labels' is decided between two points, paired on the same sentences and seeds,
    not by comparing their two intervals against vanilla."""
    fake_sweep(tmp_path, "ls", {"grid": {"label_subset": ["all", "top_k", "ner_types"]}}, [
        ({}, {"sentences": 30}, m05(20.0, 10.0)), ({}, {"sentences": 30}, m05(30.0, 10.0)), ({}, {"sentences": 30}, None)])
    res = ab.read_sweep("ls", tmp_path)
    runs = [Path(p) for p in res.points["dir_05_fewshot_eval"]]
    _planted_run(runs[0], {"metaie": list(range(10)), "vanilla": list(range(12))})
    _planted_run(runs[1], {"metaie": list(range(25)), "vanilla": list(range(5))})   # metaie: 15 more sentences right
    t = ab.point_differences(res, "label_subset=all", n_boot=300)
    assert list(t["label"]) == ["label_subset=top_k"] and t.iloc[0]["baseline"] == "label_subset=all"
    assert t.iloc[0]["diff"] > 15 and t.iloc[0]["diff_lo"] > 0 and t.iloc[0]["n_paired_seeds"] == 3
    same = ab.point_differences(res, "label_subset=top_k", n_boot=300)
    assert same.iloc[0]["diff"] < 0 and same.iloc[0]["diff_hi"] < 0       # the sign follows the reference
    with pytest.raises(ab.SweepSpecError, match="label_subset=ner_types.*no results"):
        ab.point_differences(res, "label_subset=ner_types")             # a point without a finished run
    from metaie_utils.cli import main

    assert main(["ablations", "--out-root", str(tmp_path), "--baseline-run", "", "--versus", "label_subset=all", "ls"]) == 0
    assert "each point − label_subset=all (metaie)" in capsys.readouterr().out
    v = ab.point_differences(res, "label_subset=all", initialization="vanilla", n_boot=300)  # the backbones alone
    assert v.iloc[0]["diff"] < -5 and v.iloc[0]["initialization"] == "vanilla"
    assert main(["ablations", "--out-root", str(tmp_path), "--baseline-run", "", "--versus", "label_subset=all",
                 "--versus-init", "vanilla", "ls"]) == 0
    assert "each point − label_subset=all (vanilla)" in capsys.readouterr().out


def test_point_differences_against_another_run(tmp_path, capsys):
    """A student-size point against the CPU grid's MiniLM MetaIE: another run's rows, paired on the datasets the
    points evaluated (the grid's other datasets are left out), and a clear error for a run without results."""
    fake_sweep(tmp_path, "ms", {"grid": {"num_layers": [3, 6]}}, [
        ({}, {"sentences": 30}, m05(20.0, 10.0)), ({}, {"sentences": 30}, m05(30.0, 10.0))])
    res = ab.read_sweep("ms", tmp_path)
    runs = [Path(p) for p in res.points["dir_05_fewshot_eval"]]
    _planted_run(runs[0], {"metaie": list(range(10))})
    _planted_run(runs[1], {"metaie": list(range(25))})
    grid = tmp_path / "05_fewshot_eval" / "cpu"
    _planted_run(grid, {"metaie": list(range(12)), "vanilla": list(range(3))})
    t = ab.point_differences(res, "", reference_run=grid, n_boot=300)
    assert list(t["label"]) == ["num_layers=3", "num_layers=6"] and set(t["baseline"]) == {"cpu metaie"}
    assert t.iloc[0]["diff"] < 0 < t.iloc[1]["diff_lo"] and set(t["n_paired_seeds"]) == {3}
    with pytest.raises(ab.SweepSpecError, match="no results.csv rows"):
        ab.point_differences(res, "", reference_run=tmp_path / "nothing")
    from metaie_utils.cli import main

    assert main(["ablations", "--out-root", str(tmp_path), "--baseline-run", "", "--versus-run", "cpu", "ms"]) == 0
    assert f"each point − {grid} (metaie)" in capsys.readouterr().out
    assert main(["ablations", "--out-root", str(tmp_path), "--versus-run", "nope", "ms"]) != 0
    assert "--versus-run 'nope': no such stage-05 run" in capsys.readouterr().err
