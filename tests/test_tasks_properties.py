"""Property tests of the BIO conversions and the on-disk parse cache."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metaie_utils.core.bio import bio_spans
from metaie_utils.tasks import _disk_cached, make_instance
from metaie_utils.tasks.base import resolve_conflicts
from metaie_utils.tasks.readers import tags_to_spans

pytestmark = pytest.mark.unit


@st.composite
def disjoint_typed_spans(draw, max_len=12):
    n = draw(st.integers(0, max_len))
    spans, i = [], 0
    while i < n:
        i += draw(st.integers(0, 2))
        if i >= n:
            break
        e = draw(st.integers(i + 1, n))
        spans.append((i, e, draw(st.sampled_from(["PER", "LOC"]))))
        i = e
    return n, spans


def to_iob2(n, spans):
    tags = ["O"] * n
    for s, e, t in spans:
        tags[s] = f"B-{t}"
        for k in range(s + 1, e):
            tags[k] = f"I-{t}"
    return tags


def to_iob1(n, spans):
    """IOB1: I- everywhere, B- only at the start of a span that touches a previous span of its type."""
    tags = ["O"] * n
    prev_end, prev_type = None, None
    for s, e, t in spans:
        for k in range(s, e):
            tags[k] = f"I-{t}"
        if prev_end == s and prev_type == t:
            tags[s] = f"B-{t}"
        prev_end, prev_type = e, t
    return tags


@settings(deadline=None)  # no timing: the first call imports the tokenizer
@given(disjoint_typed_spans())
def test_bio_round_trip_iob1_iob2(case):
    n, spans = case
    assert tags_to_spans(to_iob2(n, spans), "iob2") == spans
    assert tags_to_spans(to_iob1(n, spans), "iob1") == spans


@settings(deadline=None)  # no timing: the first call imports the tokenizer
@given(disjoint_typed_spans())
def test_make_instance_round_trips_through_bio_spans(case):
    n, spans = case
    tokens = [f"w{i}" for i in range(n)]
    inst = make_instance("Other entity", tokens, [(s, e) for s, e, _ in spans])
    assert inst["words"][:3] == ["Other", "entity", ":"] and len(inst["words"]) == len(inst["ner"]) == n + 3
    assert bio_spans(inst["ner"][3:]) == [(s, e) for s, e, _ in spans]


@settings(deadline=None)  # no timing: the first call imports the tokenizer
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(1, 3), st.sampled_from("ABC"), st.floats(0, 1)), max_size=10))
def test_resolve_conflicts_one_label_per_span_with_max_score(raw):
    spans = [(s, s + d, lab, sc) for s, d, lab, sc in raw]
    out = resolve_conflicts(spans)
    assert len({(s, e) for s, e, _ in out}) == len(out) == len({(s, e) for s, e, _, _ in spans})
    for s, e, lab in out:
        best = max(sc for s2, e2, _, sc in spans if (s2, e2) == (s, e))
        assert (s, e, lab, best) in spans


def test_make_instance_rejects_out_of_range_span():
    with pytest.raises(ValueError, match=r"span \(1, 4\) is outside the sentence of 2 words"):
        make_instance("X", ["a", "b"], [(1, 4)])


def test_disk_cache_hits_and_invalidates(tmp_path, monkeypatch):
    monkeypatch.setenv("METAIE_CACHE_DIR", str(tmp_path / "cache"))
    data = tmp_path / "f.txt"
    data.write_text("one")
    calls = []

    def reader(path):
        calls.append(path)
        return [open(path).read()]

    assert _disk_cached(reader, str(data)) == ["one"]
    assert _disk_cached(reader, str(data)) == ["one"] and len(calls) == 1
    data.write_text("two!")  # size (and mtime) change -> new key
    os.utime(data, ns=(1, 1))
    assert _disk_cached(reader, str(data)) == ["two!"] and len(calls) == 2
    monkeypatch.setenv("METAIE_TASKS_CACHE", "0")
    assert _disk_cached(reader, str(data)) == ["two!"] and len(calls) == 3
