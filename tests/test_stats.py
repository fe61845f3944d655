"""Paired bootstrap, counts.jsonl and the ``summary`` command (metaie_utils.core.stats, metaie_utils.summary)."""

from __future__ import annotations

import argparse
import csv
import doctest
import json
import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metaie_utils.core import stats
from metaie_utils.core.metrics import prf
from metaie_utils.core.stats import (
    append_counts,
    counts_record,
    counts_records,
    example_counts,
    format_table,
    micro_f1,
    paired_bootstrap,
    read_counts,
    summary_table,
)

pytestmark = pytest.mark.unit

RESULT_FIELDS = ["dataset", "task", "initialization", "seed", "subtask", "precision", "recall", "f1",
                 "tp", "n_gold", "n_pred", "n_test", "test_cap", "shots", "n_support", "n_instances", "recipe", "note"]


def test_doctests():
    res = doctest.testmod(stats)
    assert res.failed == 0 and res.attempted > 0


# --------------------------------------------------------------------------------------------------
# counts
# --------------------------------------------------------------------------------------------------


def test_example_counts_dedup_and_per_example():
    gold = [{(0, 2, "P"), (3, 4, "L")}, [(1, 2, "O"), (1, 2, "O")], set()]
    pred = [[(0, 2, "P"), (0, 2, "P"), (3, 5, "L")], set(), {(0, 1, "P")}]
    assert example_counts(gold, pred) == [(1, 2, 2), (0, 0, 1), (0, 1, 0)]
    with pytest.raises(ValueError, match="2 examples but pred has 1"):
        example_counts([set(), set()], [set()])


tuples = st.tuples(st.integers(0, 4), st.integers(0, 4), st.sampled_from(["A", "B"]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.lists(tuples, max_size=4), st.lists(tuples, max_size=4)), min_size=1, max_size=8))
def test_counts_sum_to_prf(pairs):
    gold = [g for g, _ in pairs]
    pred = [p for _, p in pairs]
    c = np.array(example_counts(gold, pred))
    r = prf(gold, pred)
    assert c.sum(0).tolist() == [r["tp"], r["n_pred"], r["n_gold"]]
    assert micro_f1(c) == pytest.approx(r["f1"])


def test_counts_record_validates():
    with pytest.raises(ValueError, match="2 test ids but 1 count"):
        counts_record("d", "entity", "metaie", 0, ["a", "b"], [(0, 0, 0)])
    with pytest.raises(ValueError, match="tp <= min"):
        counts_record("d", "entity", "metaie", 0, ["a"], [(2, 1, 3)])
    r = counts_record("d", "entity", "metaie", "3", [1, 2], [(0, 1, 0), (1, 1, 1)])
    assert r["seed"] == 3 and r["test_ids"] == ["1", "2"]


def test_append_read_roundtrip_last_wins_and_torn_line(tmp_path):
    path = tmp_path / "run" / "counts.jsonl"
    assert read_counts(path) == []
    r1 = counts_record("d", "entity", "metaie", 0, ["a"], [(1, 1, 1)])
    r2 = counts_record("d", "entity", "vanilla", 0, ["a"], [(0, 1, 1)])
    append_counts(path, r1)
    append_counts(path, [r2])
    with path.open("a") as f:
        f.write('{"dataset": "d", "subtask": "ent')  # a crash mid-line
    r1b = counts_record("d", "entity", "metaie", "0", ["a"], [(0, 0, 1)])
    append_counts(path, r1b)
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[-1]) == r1b
    got = read_counts(path)
    assert [(r["initialization"], r["counts"]) for r in got] == [("vanilla", [[0, 1, 1]]), ("metaie", [[0, 0, 1]])]
    with pytest.raises(ValueError, match="lacks"):
        append_counts(path, {"dataset": "d"})
    # kept results (docs/results/cpu) hold the counts gzip'd: read in place of a missing counts.jsonl
    import gzip

    kept = tmp_path / "kept" / "counts.jsonl"
    kept.parent.mkdir()
    with gzip.open(kept.with_name("counts.jsonl.gz"), "wt", encoding="utf-8") as f:
        f.write(path.read_text())
    assert read_counts(kept) == got


# --------------------------------------------------------------------------------------------------
# paired bootstrap
# --------------------------------------------------------------------------------------------------


def _system(rng, gold, p_hit, p_extra=0.2):
    """(n_seeds, n_sentences, 3) counts of a system that finds each gold item with p_hit."""
    tp = rng.binomial(gold, p_hit)
    extra = rng.binomial(1, p_extra, size=gold.shape)
    return np.stack([tp, tp + extra, gold], axis=-1)


def test_identical_systems_zero_diff():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 4, size=(3, 200))
    a = _system(rng, gold, 0.6)
    r = paired_bootstrap(a, a.copy(), n_boot=500)
    assert r["diff"] == 0.0 and r["lo"] <= 0.0 <= r["hi"] and r["p"] == 1.0
    assert (r["n_seeds"], r["n_sentences"], r["n_boot"]) == (3, 200, 500)


def test_clearly_better_system_ci_above_zero():
    rng = np.random.default_rng(1)
    gold = np.broadcast_to(rng.integers(1, 4, size=200), (3, 200))
    a, b = _system(rng, gold, 0.8), _system(rng, gold, 0.4)
    r = paired_bootstrap(a, b, n_boot=1000)
    assert r["lo"] > 0 and r["p"] < 0.01
    assert r["lo"] <= r["diff"] <= r["hi"]
    # the point estimate is the mean over seeds of per-seed F1 differences, as prf-style counts give
    per_seed = [micro_f1(a[s]) - micro_f1(b[s]) for s in range(3)]
    assert r["diff"] == pytest.approx(np.mean(per_seed))
    back = paired_bootstrap(b, a, n_boot=1000)
    assert back["hi"] < 0 and back["diff"] == pytest.approx(-r["diff"])


def test_pairing_matters():
    """Sentences vary a lot in difficulty; b is a slightly worse copy of a. Paired on the same sentences
    the CI is narrow and above 0; breaking the pairing (shuffling b's sentences) keeps the point estimate
    but widens the CI past 0. An implementation that drew independent indices for a and b would give the
    same (wide) CI both ways."""
    rng = np.random.default_rng(2)
    n = 400
    gold = rng.integers(1, 6, size=n)
    hard = rng.random(n) < 0.5
    tp_a = np.where(hard, 0, gold)
    tp_b = tp_a.copy()
    worse = rng.choice(np.flatnonzero(~hard), size=12, replace=False)
    tp_b[worse] -= 1
    a = np.stack([tp_a, gold, gold], -1)[None]
    b = np.stack([tp_b, gold, gold], -1)[None]
    paired = paired_bootstrap(a, b, n_boot=1000)
    perm = rng.permutation(n)
    unpaired = paired_bootstrap(a, b[:, perm], n_boot=1000)
    assert paired["diff"] == pytest.approx(unpaired["diff"])
    assert paired["lo"] > 0
    assert unpaired["lo"] < 0 < unpaired["hi"]
    assert (unpaired["hi"] - unpaired["lo"]) > 4 * (paired["hi"] - paired["lo"])


def test_seeds_are_resampled():
    """Same sentences, but a wins by a lot on seed 0 and loses by a lot on seed 1: the CI must reflect
    the seed spread (sentence resampling alone would give a narrow interval around 0)."""
    n = 300
    gold = np.full(n, 2)
    good = np.stack([gold, gold, gold], -1)
    bad = np.stack([gold // 2, gold, gold], -1)
    a = np.stack([good, bad])
    b = np.stack([bad, good])
    r = paired_bootstrap(a, b, n_boot=1000)
    assert r["diff"] == pytest.approx(0.0)
    assert r["lo"] < -0.2 and r["hi"] > 0.2


def test_one_seed_2d_and_3d_agree():
    rng = np.random.default_rng(3)
    gold = rng.integers(0, 3, size=(1, 150))
    a, b = _system(rng, gold, 0.7), _system(rng, gold, 0.5)
    r3 = paired_bootstrap(a, b, n_boot=400, seed=5)
    r2 = paired_bootstrap(a[0], b[0], n_boot=400, seed=5)
    assert r3 == r2 and r3["n_seeds"] == 1
    assert r3["lo"] < r3["hi"]


def test_deterministic_and_seed_sensitive():
    rng = np.random.default_rng(4)
    gold = rng.integers(0, 3, size=(2, 100))
    a, b = _system(rng, gold, 0.7), _system(rng, gold, 0.6)
    assert paired_bootstrap(a, b, n_boot=300, seed=1) == paired_bootstrap(a, b, n_boot=300, seed=1)
    assert paired_bootstrap(a, b, n_boot=300, seed=1)["lo"] != paired_bootstrap(a, b, n_boot=300, seed=2)["lo"]


def test_mismatch_errors():
    a = np.ones((2, 3, 3))
    with pytest.raises(ValueError, match=r"test sentence ids .* position 1: 'x' vs 'y'"):
        paired_bootstrap(a, a, ids_a=["s", "x", "t"], ids_b=["s", "y", "t"])
    with pytest.raises(ValueError, match="seeds of a"):
        paired_bootstrap(a, a, seeds_a=[0, 1], seeds_b=[0, 2])
    with pytest.raises(ValueError, match="2 seeds x 3 sentences but b has 2 seeds x 2 sentences"):
        paired_bootstrap(a, np.ones((2, 2, 3)))
    with pytest.raises(ValueError, match="shape"):
        paired_bootstrap(np.ones((2, 3, 2)), np.ones((2, 3, 2)))
    paired_bootstrap(a, a, ids_a=[1, 2, 3], ids_b=["1", "2", "3"], seeds_a=[0, 1], seeds_b=["0", "1"], n_boot=10)


def test_vectorized_is_fast():
    import time

    rng = np.random.default_rng(5)
    gold = rng.integers(0, 4, size=(3, 3000))
    a, b = _system(rng, gold, 0.6), _system(rng, gold, 0.5)
    t = time.perf_counter()
    paired_bootstrap(a, b, n_boot=2000)
    assert time.perf_counter() - t < 10.0


counts_arrays = st.integers(1, 3).flatmap(lambda s: st.integers(1, 12).flatmap(
    lambda n: st.tuples(*(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)),
                                   min_size=s * n, max_size=s * n) for _ in range(2))).map(
        lambda xy: tuple(_fix(np.array(v).reshape(s, n, 3)) for v in xy))))


def _fix(arr):
    arr[..., 0] = np.minimum(arr[..., 0], np.minimum(arr[..., 1], arr[..., 2]))
    return arr


@settings(max_examples=40, deadline=None)
@given(counts_arrays)
def test_antisymmetric_and_bounded(ab):
    a, b = ab
    r = paired_bootstrap(a, b, n_boot=200, seed=7)
    s = paired_bootstrap(b, a, n_boot=200, seed=7)
    assert s["diff"] == pytest.approx(-r["diff"], abs=1e-12)
    assert s["lo"] == pytest.approx(-r["hi"], abs=1e-9) and s["hi"] == pytest.approx(-r["lo"], abs=1e-9)
    assert -1 <= r["lo"] <= r["hi"] <= 1 and 0 <= r["p"] <= 1
    assert r["p"] == pytest.approx(s["p"])


@settings(max_examples=30, deadline=None)
@given(counts_arrays)
def test_self_comparison_is_exactly_zero(ab):
    a, _ = ab
    r = paired_bootstrap(a, a, n_boot=100)
    assert (r["diff"], r["lo"], r["hi"], r["p"]) == (0.0, 0.0, 0.0, 1.0)


# --------------------------------------------------------------------------------------------------
# the table and the command on a fake run directory
# --------------------------------------------------------------------------------------------------

HIT = {"metaie": 0.8, "vanilla": 0.5, "ner-distill": 0.78, "llm-icl": 0.3}


def make_run(run_dir, seeds=(1, 2, 3), n=80, inits=("metaie", "vanilla", "ner-distill", "llm-icl"), with_counts=True,
             icl_n=20):
    """A stage-05-like run: results.csv scored with metrics.prf, counts.jsonl from per-example sets."""
    rng = random.Random(0)
    run_dir.mkdir(parents=True, exist_ok=True)
    test_ids = [f"test-{i}" for i in range(n)]
    golds = [{"entity": {(j, j + 1, rng.choice("AB")) for j in range(rng.randint(0, 3))}} for _ in range(n)]
    rows, records = [], []
    for seed in seeds:
        for init in inits:
            ids, gl = (test_ids[:icl_n], golds[:icl_n]) if init == "llm-icl" else (test_ids, golds)
            preds = []
            for g in gl:
                hits = {t for t in g["entity"] if rng.random() < HIT[init]}
                if rng.random() < 0.2:
                    hits.add((9, 10, "A"))
                preds.append({"entity": hits})
            m = prf([g["entity"] for g in gl], [p["entity"] for p in preds])
            rows.append({"dataset": "toy", "task": "ner", "initialization": init, "seed": seed, "subtask": "entity",
                         "precision": m["precision"], "recall": m["recall"], "f1": m["f1"], "tp": m["tp"],
                         "n_gold": m["n_gold"], "n_pred": m["n_pred"], "n_test": len(gl), "test_cap": n, "shots": 5,
                         "n_support": 10, "n_instances": 20, "recipe": "lr=1", "note": ""})
            records += counts_records("toy", init, seed, ids, gl, preds, ["entity"])
    with (run_dir / "results.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=RESULT_FIELDS)
        w.writeheader()
        w.writerows(rows)
    if with_counts:
        for r in records:
            append_counts(run_dir / "counts.jsonl", r)
    return rows, records


def _read_rows(run_dir):
    with (run_dir / "results.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_summary_table_on_fake_run(tmp_path):
    rows, _ = make_run(tmp_path / "run")
    csv_rows = _read_rows(tmp_path / "run")
    df = summary_table(csv_rows, read_counts(tmp_path / "run" / "counts.jsonl"), n_boot=500)
    assert list(df["initialization"]) == ["metaie", "vanilla", "ner-distill", "llm-icl"]
    by = df.set_index("initialization")
    f1 = {i: [r["f1"] for r in rows if r["initialization"] == i] for i in HIT}
    assert by.loc["metaie", "f1"] == pytest.approx(100 * np.mean(f1["metaie"]))
    assert by.loc["metaie", "f1_std"] == pytest.approx(100 * np.std(f1["metaie"], ddof=1))
    assert by.loc["metaie", "n_seeds"] == 3 and math.isnan(by.loc["metaie", "diff"])
    assert by.loc["metaie", "n_pred"] == pytest.approx(np.mean([r["n_pred"] for r in rows if r["initialization"] == "metaie"]))
    # full pairing: the point estimate is the difference of the seed means of results.csv
    v = by.loc["vanilla"]
    assert v["diff"] == pytest.approx(100 * (np.mean(f1["metaie"]) - np.mean(f1["vanilla"])))
    assert v["diff_lo"] > 0 and v["p"] < 0.05 and v["n_paired_seeds"] == 3 and v["n_sentences"] == 80 and v["note"] == ""
    nd = by.loc["ner-distill"]
    assert nd["diff_lo"] < nd["diff"] < nd["diff_hi"]
    icl = by.loc["llm-icl"]  # scored on a 20-sentence subset: paired on the common sentences
    assert icl["n_sentences"] == 20 and "20 test sentences" in icl["note"] and not math.isnan(icl["diff"])
    text = format_table(df)
    assert "metaie − init [95% CI]" in text
    assert f"{v['diff']:+.1f} [{v['diff_lo']:+.1f}, {v['diff_hi']:+.1f}]" in text
    assert f"{by.loc['metaie', 'f1']:.1f} ± {by.loc['metaie', 'f1_std']:.1f}" in text
    # baselines select rows
    only = summary_table(csv_rows, read_counts(tmp_path / "run" / "counts.jsonl"), baselines=["vanilla"], n_boot=50)
    assert list(only["initialization"]) == ["metaie", "vanilla"]


def test_summary_table_notes_missing_counts_and_unpaired_seeds(tmp_path):
    rows, records = make_run(tmp_path / "run", with_counts=False)
    df = summary_table(rows, [], n_boot=50).set_index("initialization")
    assert math.isnan(df.loc["vanilla", "diff"]) and "no counts.jsonl records" in df.loc["vanilla", "note"]
    assert df.loc["vanilla", "f1"] > 0  # means still there
    # vanilla only on seeds 4..6: nothing pairs
    shifted = [dict(r, seed=r["seed"] + 3) if r["initialization"] == "vanilla" else r for r in rows]
    rec2 = [dict(r, seed=r["seed"] + 3) if r["initialization"] == "vanilla" else r for r in records]
    df = summary_table(shifted, rec2, n_boot=50).set_index("initialization")
    assert math.isnan(df.loc["vanilla", "diff"]) and "seeds do not pair" in df.loc["vanilla", "note"]
    # one vanilla seed lacks counts: paired on the other two, said in the note
    partial = [r for r in records if not (r["initialization"] == "vanilla" and r["seed"] == 2)]
    df = summary_table(rows, partial, n_boot=50).set_index("initialization")
    assert df.loc["vanilla", "n_paired_seeds"] == 2 and "vanilla seed 2" in df.loc["vanilla", "note"]
    # stale counts (another run's): totals disagree with results.csv -> NaN
    stale = [dict(r, counts=[[0, 0, c[2]] for c in r["counts"]]) if r["initialization"] == "vanilla" else r for r in records]
    df = summary_table(rows, stale, n_boot=50).set_index("initialization")
    assert math.isnan(df.loc["vanilla", "diff"]) and "differ from results.csv" in df.loc["vanilla", "note"]
    # no reference at all
    df = summary_table([r for r in rows if r["initialization"] != "metaie"], records, n_boot=50)
    assert "metaie" not in set(df["initialization"]) and df["note"].str.contains("no metaie results").all()


def _parser():
    from metaie_utils import summary

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    summary.register_cli(sub)
    return parser


def test_cli_end_to_end(tmp_path, capsys):
    run = tmp_path / "run"
    make_run(run)
    args = _parser().parse_args(["summary", str(run), "--n-boot", "300", "--baselines", "vanilla,llm-icl"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "metaie − init [95% CI]" in out and "vanilla" in out and "ner-distill" not in out
    # a narrowed comparison has files of its own: the run's full table (summary_ci.csv) is not overwritten
    assert not (run / "summary_ci.csv").exists()
    table = list(csv.DictReader((run / "summary_ci_metaie_vs_vanilla+llm-icl.csv").open()))
    assert [r["initialization"] for r in table] == ["metaie", "vanilla", "llm-icl"]
    assert float(table[1]["diff_lo"]) > 0
    png = run / "summary_ci_metaie_vs_vanilla+llm-icl.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    args = _parser().parse_args(["summary", str(run), "--n-boot", "50", "--no-figure"])
    assert args.func(args) == 0 and not (run / "summary_ci.png").exists()
    with (run / "summary_ci.csv").open() as f:
        assert {r["initialization"] for r in csv.DictReader(f)} >= {"metaie", "vanilla", "ner-distill", "llm-icl"}
    args = _parser().parse_args(["summary", str(run), "--n-boot", "50", "--no-figure", "--reference", "vanilla"])
    assert args.func(args) == 0
    with (run / "summary_ci_vanilla_vs_all.csv").open() as f:
        assert next(csv.DictReader(f))["initialization"] == "vanilla"
    with (run / "summary_ci.csv").open() as f:  # still the full metaie table
        assert next(csv.DictReader(f))["initialization"] == "metaie"


def test_cli_through_main_and_user_errors(tmp_path, capsys, monkeypatch):
    from metaie_utils import cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", ["metaie_utils.summary"])
    missing = tmp_path / "nope"
    assert cli.main(["summary", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["summary", str(tmp_path / "empty")]) == 2
    assert str(tmp_path / "empty" / "results.csv") in capsys.readouterr().err
    make_run(tmp_path / "run", with_counts=False)
    assert cli.main(["summary", str(tmp_path / "run"), "--n-boot", "20"]) == 0
    out = capsys.readouterr().out
    assert "counts.jsonl is missing" in out and "n/a" in out
    assert (tmp_path / "run" / "summary_ci.png").is_file()


def test_ci_figure_draws_one_series_per_baseline(tmp_path):
    import matplotlib.pyplot as plt

    from metaie_utils.plots.summary import ci_figure

    make_run(tmp_path / "run")
    df = summary_table(_read_rows(tmp_path / "run"), read_counts(tmp_path / "run" / "counts.jsonl"), n_boot=50)
    fig = ci_figure(df)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["metaie − vanilla", "metaie − ner-distill", "metaie − llm-icl"]
    assert any(np.allclose(line.get_xdata(), [0, 0]) for line in ax.get_lines())
    plt.close(fig)
    empty = ci_figure(df[df["initialization"] == "metaie"])
    assert "no paired differences" in empty.axes[0].texts[0].get_text()
    plt.close(empty)


def test_summary_counts_collapsed_fine_tunes_and_prints_markdown():
    from metaie_utils.core.stats import markdown_table

    rows = [{"dataset": "d", "subtask": "e", "initialization": i, "seed": s, "f1": f, "collapsed": c}
            for i, s, f, c in [("metaie", 0, 0.4, ""), ("metaie", 1, 0.5, ""),
                               ("vanilla", 0, 0.0, "support+test"), ("vanilla", 1, 0.3, "")]]
    df = summary_table(rows, [], n_boot=50)
    assert dict(zip(df["initialization"], df["n_collapsed"])) == {"metaie": 0, "vanilla": 1}
    md = markdown_table(df).splitlines()
    assert md[0] == "| dataset | sub-task | metaie | vanilla | metaie − vanilla [95% CI] |"
    assert md[2].startswith("| d | e | 45.0 ± 7.1 | 15.0 ± 21.2 (collapsed 1/2) |")
    one = markdown_table(summary_table([r for r in rows if r["seed"] == 1], [], n_boot=50)).splitlines()[2]
    assert one.startswith("| d | e | 50.0 | 30.0 |")  # one seed: no "± 0.0" pretending to be a spread
