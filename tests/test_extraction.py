"""Extraction API: decoding, confidences, conflicts, chunking of long texts, input forms and bad input.

A rule-based stub stands in for the network (logits set by token id) so each expectation is exact:
``new``/``paris`` are tagged B and ``york`` I; with the label ``Location`` in the query the tag has
probability ~0.99, with any other label ~0.58. The checkpoint-loading paths use the tiny BERT of
test_training.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from test_training import VOCAB, make_tiny_model  # noqa: E402

from metaie_utils.core.errors import UserError
from metaie_utils.core.spans import Span, resolve_conflicts
from metaie_utils.models import load_extractor
from metaie_utils.models.extractor import MetaIE, chunk_words, merge_chunks

pytestmark = pytest.mark.unit
IDS = {w: i for i, w in enumerate(VOCAB)}


class RuleTagger:
    """Token logits by rule: B on new/paris, I on york, O elsewhere; confident only for 'location' queries."""

    def __init__(self):
        import torch

        self.torch = torch
        self.config = SimpleNamespace(label2id={"O": 0, "B": 1, "I": 2}, max_position_embeddings=512, model_type="bert")
        self.calls = []

    def to(self, device):
        return self

    def eval(self):
        return self

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, **kw):
        torch = self.torch
        self.calls.append(tuple(input_ids.shape))
        logits = torch.zeros(*input_ids.shape, 3)
        strong = (input_ids == IDS["location"]).any(-1, keepdim=True).float() * 4 + 1  # 5 or 1
        b = (input_ids == IDS["new"]) | (input_ids == IDS["paris"])
        i = input_ids == IDS["york"]
        logits[..., 1] = b.float() * strong
        logits[..., 2] = i.float() * strong
        logits[..., 0] = (~(b | i)).float() * 5
        return SimpleNamespace(logits=logits)


@pytest.fixture(scope="module")
def tok():
    from transformers import BertTokenizerFast

    return BertTokenizerFast(vocab=IDS, do_lower_case=True)


def make_ie(tok, **kw) -> MetaIE:
    return MetaIE(RuleTagger(), tok, device="cpu", **kw)


def test_planted_span_round_trips_with_offsets(tok):
    ie = make_ie(tok)
    [spans] = ie.extract(["Tom lives in New York city."], ["Location"])
    assert [(s.label, s.text, s.start, s.end, s.word_start, s.word_end) for s in spans] == [
        ("Location", "New York", 13, 21, 3, 5)]
    assert spans[0].score == pytest.approx(1 / (1 + 2 * 2.718281828 ** -5), rel=1e-4)
    assert spans[0].as_dict()["text"] == "New York"


def test_word_input_offsets_index_the_joined_words(tok):
    words = ["Tom", "lives", "in", "New", "York", "."]
    [spans] = make_ie(tok).extract([words], ["Location"])
    assert (spans[0].start, spans[0].end) == (13, 21) and " ".join(words)[13:21] == "New York"


def test_conflict_keeps_the_more_confident_label(tok):
    ie = make_ie(tok)
    [kept] = ie.extract(["Tom lives in Paris ."], ["Person", "Location"])
    assert [(s.label, s.text) for s in kept] == [("Location", "Paris")]
    [both] = ie.extract(["Tom lives in Paris ."], ["Person", "Location"], conflict="all")
    assert [s.label for s in both] == ["Location", "Person"]
    assert both[0].score > both[1].score
    a, b = Span("A", "x", 0, 1, 0.9, 0, 1), Span("B", "x", 0, 1, 0.4, 0, 1)
    assert resolve_conflicts([b, a]) == [a]


def test_per_text_labels_and_batching_give_identical_results(tok):
    texts = ["Tom lives in Paris .", "New York is big .", "the city"]
    labels = [["Location"], ["Person", "Location"], []]
    big = make_ie(tok, batch_size=32).extract(texts, labels)
    one = make_ie(tok, batch_size=1).extract(texts, labels)
    assert big == one
    assert [[s.text for s in x] for x in big] == [["Paris"], ["New York"], []]
    assert make_ie(tok).extract(texts, ["Location"])[2] == []


def test_long_text_is_chunked_and_spans_cross_borders(tok):
    # 'New York' at every position of a 60-word text; a 16-sub-token window forces many chunks
    ie = make_ie(tok, max_length=16, stride=4)
    for pos in range(0, 58, 3):
        words = [f"w{i % 40}" for i in range(60)]
        words[pos:pos + 2] = ["New", "York"]
        ie.model.calls.clear()
        [spans] = ie.extract([words], ["Location"])
        assert [(s.word_start, s.word_end, s.text) for s in spans] == [(pos, pos + 2, "New York")], pos
        assert sum(c[0] for c in ie.model.calls) > 3  # several windows
        assert max(c[1] for c in ie.model.calls) <= 16


@given(st.lists(st.integers(1, 4), min_size=1, max_size=60), st.integers(4, 12), st.integers(0, 6))
@settings(max_examples=200, deadline=None)
def test_chunks_cover_every_word_within_budget(costs, budget, stride):
    chunks = chunk_words(costs, budget, stride)
    assert chunks[0][0] == 0 and chunks[-1][1] == len(costs)
    for (s, e), (s2, _e2) in zip(chunks, chunks[1:]):
        assert s < s2 <= e  # progress, no gap
    for s, e in chunks:
        assert sum(costs[s:e]) <= budget or e - s == 1
    owned = merge_chunks(chunks, len(costs))
    assert owned[0][0] == 0 and owned[-1][1] == len(costs)
    for (lo, hi), (s, e), (lo2, _) in zip(owned, chunks, owned[1:] + [(len(costs), 0)]):
        assert s <= lo <= hi <= e and hi == lo2  # each word owned once, by a window that saw it


def test_bad_and_edge_inputs(tok):
    ie = make_ie(tok)
    assert ie.extract(["", "   "], ["Location"]) == [[], []]  # empty text -> no spans
    assert ie.extract(["New York"], []) == [[]]  # empty label list -> no spans
    assert ie.extract([], ["Location"]) == []
    [spans] = ie.extract(["New York"], ["?"])  # punctuation-only label: a valid (weak) query
    assert [s.label for s in spans] == ["?"]
    with pytest.raises(ValueError, match="empty"):
        ie.extract(["New York"], ["  "])
    with pytest.raises(ValueError, match="one label list per text"):
        ie.extract(["a", "b"], [["Location"]])
    with pytest.raises(TypeError, match="wrap a single text"):
        ie.extract("New York", ["Location"])
    with pytest.raises(TypeError, match="labels must be a list"):
        ie.extract(["New York"], "Location")
    with pytest.raises(ValueError, match="conflict"):
        ie.extract(["New York"], ["Location"], conflict="max")
    with pytest.raises(ValueError, match="shorten the label"):
        make_ie(tok, max_length=8).extract(["New York"], ["w1 w2 w3 w4 w5 w6 w7"])


def test_checkpoint_that_is_not_a_tagger_is_refused(tmp_path):
    plain = make_tiny_model(tmp_path / "plain", head=False)
    with pytest.raises(UserError, match="not a MetaIE tagger"):
        MetaIE.from_pretrained(str(plain))
    with pytest.raises(UserError, match="Cannot load a model config"):
        (tmp_path / "empty").mkdir()
        MetaIE.from_pretrained(str(tmp_path / "empty"))
    tagger = make_tiny_model(tmp_path / "tagger")
    ie = load_extractor(str(tagger), device="cpu")
    assert isinstance(ie, MetaIE) and len(ie.extract(["Tom lives in Paris ."], ["Location"])) == 1


def test_cli_extract_writes_jsonl(tmp_path, capsys):
    import json

    from metaie_utils.cli import main

    tagger = make_tiny_model(tmp_path / "tagger")
    src = tmp_path / "in.txt"
    src.write_text("Tom lives in Paris .\n\n")
    out = tmp_path / "out.jsonl"
    assert main(["extract", "--model", str(tagger), "--labels", "Person,Location", "--input", str(src),
                 "--output", str(out), "--device", "cpu"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["text"] for r in rows] == ["Tom lives in Paris .", ""] and rows[1]["spans"] == []
    assert main(["extract", "--model", str(tagger), "--labels", " , "]) == 2
    assert "names no label" in capsys.readouterr().err


def test_precision_auto_is_fp32_on_cpu_and_bad_values_are_named(tok):
    from metaie_utils.core.device import pick_extraction_precision

    assert make_ie(tok).precision == "fp32"
    # a GPU too: bf16 autocast measured 2-3x slower than fp32 at extraction's batch sizes on an H200
    assert pick_extraction_precision("cuda") == pick_extraction_precision("cuda:1") == "fp32"
    with pytest.raises(ValueError, match="precision='fp8'"):
        make_ie(tok, precision="fp8")


def test_bf16_autocast_on_cpu_keeps_the_planted_span(tok):
    ie = make_ie(tok, precision="bf16")
    assert ie.precision == "bf16"
    [spans] = ie.extract(["Tom lives in New York city."], ["Location"])
    assert [(s.label, s.text, s.start, s.end) for s in spans] == [("Location", "New York", 13, 21)]
