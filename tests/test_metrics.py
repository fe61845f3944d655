"""Scorer tests on hand-made cases: partial overlap, duplicates, empty predictions, authors' variant."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metaie_utils.core import metrics
from metaie_utils.core.metrics import mean_std, prf, span_strings, string_prf

pytestmark = pytest.mark.unit


def test_doctests():
    res = doctest.testmod(metrics)
    assert res.failed == 0 and res.attempted > 0


def test_partial_overlap_is_wrong():
    gold = [{(0, 2, "Person")}]
    pred = [{(0, 1, "Person"), (1, 2, "Person")}]
    r = prf(gold, pred)
    assert (r["tp"], r["n_gold"], r["n_pred"]) == (0, 1, 2)
    assert r["precision"] == r["recall"] == r["f1"] == 0.0


def test_wrong_label_is_wrong_and_exact_is_right():
    r = prf([{(0, 2, "Person"), (3, 4, "Location")}], [{(0, 2, "Location"), (3, 4, "Location")}])
    assert (r["tp"], r["precision"], r["recall"], r["f1"]) == (1, 0.5, 0.5, 0.5)


def test_duplicates_count_once():
    r = prf([[(0, 2, "P")]], [[(0, 2, "P"), (0, 2, "P"), (0, 2, "P")]])
    assert (r["tp"], r["n_gold"], r["n_pred"], r["f1"]) == (1, 1, 1, 1.0)


def test_empty_predictions_and_empty_gold():
    r = prf([{(0, 1, "P")}, {(2, 3, "L")}], [set(), set()])
    assert (r["precision"], r["recall"], r["f1"], r["n_pred"]) == (0.0, 0.0, 0.0, 0)
    r = prf([set()], [{(0, 1, "P")}])
    assert (r["precision"], r["recall"], r["f1"]) == (0.0, 0.0, 0.0)
    assert prf([], [])["f1"] == 0.0


def test_micro_not_macro():
    # example 1: 1/1 correct; example 2: 0/3 correct -> micro P = 1/4, not mean(1, 0) = 0.5
    gold = [{(0, 1, "A")}, {(0, 1, "A"), (1, 2, "A"), (2, 3, "A")}]
    pred = [{(0, 1, "A")}, {(5, 6, "A"), (6, 7, "A"), (7, 8, "A")}]
    r = prf(gold, pred)
    assert r["precision"] == 0.25 and r["recall"] == 0.25


def test_predictions_match_only_within_their_example():
    r = prf([{(0, 1, "A")}, set()], [set(), {(0, 1, "A")}])
    assert r["tp"] == 0


def test_length_mismatch_error_names_counts():
    with pytest.raises(ValueError, match="gold has 2 examples but pred has 1"):
        prf([set(), set()], [set()])


def test_string_prf_reproduces_authors_counting():
    # Authors: REF/PRED are lists; TP = #pred items that are `in` REF.
    gold = [[("Location", "Paris"), ("Location", "Paris"), ("Person", "Tom")]]
    pred = [[("Location", "Paris"), ("Person", "Ann")]]
    r = string_prf(gold, pred)
    assert (r["tp"], r["n_gold"], r["n_pred"]) == (1, 3, 2)
    # duplicated predictions of a single gold string both count as hits (position ignored)
    r = string_prf([[("Person", "Tom")]], [[("Person", "Tom"), ("Person", "Tom")]])
    assert (r["tp"], r["n_gold"], r["n_pred"]) == (2, 1, 2)
    assert r["precision"] == 1.0 and r["recall"] == 2.0  # the authors' quirk: recall above 1


def test_string_prf_vs_offsets_on_wrong_occurrence():
    words = "Paris is not Paris".split()
    gold_off = [{(0, 1, "Location")}]
    pred_off = [{(3, 4, "Location")}]
    assert prf(gold_off, pred_off)["tp"] == 0
    assert string_prf([span_strings(words, gold_off[0])], [span_strings(words, pred_off[0])])["tp"] == 1
    assert span_strings(words, [(0, 1, "Location")]) == [("Location", "Paris")]


def test_mean_std():
    m, s = mean_std([0.2, 0.4, 0.6])
    assert m == pytest.approx(0.4) and s == pytest.approx(0.2)
    assert mean_std([0.7]) == (0.7, 0.0)
    with pytest.raises(ValueError):
        mean_std([])


tuples = st.sets(st.tuples(st.integers(0, 5), st.integers(0, 5), st.sampled_from("AB")), max_size=6)


@settings(deadline=None)
@given(st.lists(st.tuples(tuples, tuples), max_size=5))
def test_prf_properties(pairs):
    gold = [g for g, _ in pairs]
    pred = [p for _, p in pairs]
    r = prf(gold, pred)
    assert 0.0 <= r["precision"] <= 1.0 and 0.0 <= r["recall"] <= 1.0 and 0.0 <= r["f1"] <= 1.0
    assert r["tp"] <= min(r["n_gold"], r["n_pred"])
    assert prf(gold, gold)["f1"] == (1.0 if r["n_gold"] else 0.0)
    # swapping gold and pred swaps precision and recall
    s = prf(pred, gold)
    assert s["precision"] == r["recall"] and s["recall"] == r["precision"]
    # on sets, the string variant equals the set variant
    assert string_prf(gold, pred)["tp"] == r["tp"]
