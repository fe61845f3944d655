"""decode="authors": models.authors_decode gives the spans of the authors' inference.py on the same logits.

``authors_inference`` below re-implements their per-query loop (KomeijiForce/MetaIE inference.py) step
by step: tokenize the joined string, cut the special tokens, argmax / max-logit per sub-token,
find_sequences (B then I*, labels in their sorted order B=0, I=1, O=2), decode, keep a span when its
text is a run of the input words. It also returns each run's position so that runs beginning in the
``label :`` prefix (which authors_spans drops by design) can be set aside. The model is a tiny BERT
trained a few steps, saved in the authors' label order; our side loads it with models.labels (O, B, I).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from test_training import make_tiny_model  # noqa: E402

from metaie_utils.core.spans import to_doc
from metaie_utils.models.authors_decode import authors_runs, authors_spans
from metaie_utils.models.extractor import spans_from_tags
from metaie_utils.models.labels import load_token_classifier, permute_head

pytestmark = pytest.mark.unit

# lower-case, punctuation-free words, so BERT's decode gives a whole-word run back as its words; no word
# equals the first piece of another (no bare "play"/"tom"/"city" next to "playing"/"toms"/"citys")
SENTENCES = [
    ["tom", "lives", "in", "new", "york", "city"],
    ["the", "big", "city", "is", "new", "york"],
    ["playing", "in", "paris", "and", "new", "york"],
    ["toms", "plays", "in", "the", "big", "citys"],
    ["w1", "playing", "w2", "new", "york", "w3", "plays", "paris"],
]
LABELS_Q = ["Location", "Person"]


# ------------------------------------------------------------------ the authors' loop, re-implemented
def find_sequences(tags):
    """Their run finder: a run starts at tag 0 (B) and takes the 1s (I) that follow; half-open."""
    runs, i = [], 0
    while i < len(tags):
        if tags[i] != 0:
            i += 1
            continue
        start = end = i
        i += 1
        while i < len(tags) and tags[i] == 1:
            end = i
            i += 1
        runs.append((start, end + 1))
    return runs


def is_sublst(lst1, lst2):
    """lst2 occurs in lst1 as a contiguous run."""
    return any(lst1[k:k + len(lst2)] == lst2 for k in range(len(lst1) - len(lst2) + 1))


def authors_inference(tokenizer, tagger, words):
    """One query ``words`` (label words, ':', sentence words) -> [(text, confidence, label, run)]."""
    import torch

    sentence = " ".join(words)
    label = " ".join(words[:words.index(":")])
    inputs = tokenizer(sentence, return_tensors="pt")
    with torch.no_grad():
        logits = tagger(**inputs).logits[0, 1:-1]
    confidences = logits.amax(-1)
    tag_predictions = logits.argmax(-1).tolist()
    ids = inputs.input_ids[0, 1:-1]
    preds = [(tokenizer.decode(ids[s:e]).strip(), confidences[s:e].mean().item(), label, (s, e))
             for s, e in find_sequences(tag_predictions)]
    return [p for p in preds if is_sublst(words, p[0].split())]


class FixedTagger:
    """A stand-in model whose logits are given (authors' column order B, I, O), for hand-made cases."""

    def __init__(self, logits):
        self.logits = logits

    def __call__(self, **inputs):
        from types import SimpleNamespace

        import torch

        return SimpleNamespace(logits=torch.as_tensor(self.logits, dtype=torch.float32)[None])


# ------------------------------------------------------------------ our side
def encode(tok, label, words):
    prefix = label.split() + [":"]
    enc = tok(prefix + words, is_split_into_words=True)
    return enc, len(prefix)


def first_sentence_run_pos(word_ids, n_prefix):
    """Position, in the authors' [1:-1] coordinates, of the first sentence sub-token."""
    return next(p for p, w in enumerate(word_ids) if w is not None and w >= n_prefix) - 1


def compare(tok, authors_model, our_logits_fn, label, words):
    """Our spans and the authors' (sentence runs only) on the same query; returns both as (text, score)."""
    enc, n_prefix = encode(tok, label, words)
    assert enc["input_ids"] == tok(" ".join(label.split() + [":"] + words))["input_ids"]  # same sub-tokens
    ours = authors_spans(our_logits_fn(enc), enc.word_ids(), n_prefix, words, label)
    cut = first_sentence_run_pos(enc.word_ids(), n_prefix)
    theirs = [p for p in authors_inference(tok, authors_model, label.split() + [":"] + words) if p[3][0] >= cut]
    assert [s.text for s in ours] == [p[0] for p in theirs], (words, ours, theirs)
    assert [s.score for s in ours] == pytest.approx([p[1] for p in theirs], abs=1e-5)
    for s in ours:
        assert " ".join(words[s.word_start:s.word_end]) == s.text == to_doc(words).text[s.start:s.end]
    return ours, theirs


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def authors_ckpt(tmp_path_factory) -> Path:
    """A tiny BERT trained 30 steps (first sub-token labels), then saved in the authors' order B, I, O."""
    from metaie_utils.models.trainer import TrainRecipe, train_token_classifier

    root = tmp_path_factory.mktemp("authors")
    tiny = make_tiny_model(root / "tiny")
    inst = [{"words": ["Location", ":"] + s, "ner": ["O", "O"] + t} for s, t in [
        (SENTENCES[0], ["O", "O", "O", "B", "I", "O"]), (SENTENCES[2], ["O", "O", "B", "O", "B", "I"]),
        (SENTENCES[3], ["O", "O", "O", "O", "O", "B"])]] + [
        {"words": ["Person", ":"] + SENTENCES[3], "ner": ["O", "O", "B", "O", "O", "O", "O", "O"]}]
    model_dir = train_token_classifier(inst * 4, str(tiny), root / "model",
                                       TrainRecipe(lr=5e-3, max_steps=30, batch_size=8, warmup_ratio=0.0, seed=0))
    m = load_token_classifier(model_dir)
    permute_head(m, [1, 2, 0], labels=("B", "I", "O"))
    m.save_pretrained(root / "ckpt")
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(model_dir).save_pretrained(root / "ckpt")
    return root / "ckpt"


# ------------------------------------------------------------------ tests
def test_trained_tiny_model_gives_the_authors_spans(authors_ckpt):
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(authors_ckpt)
    theirs_model = AutoModelForTokenClassification.from_pretrained(authors_ckpt).eval()  # as inference.py loads
    assert theirs_model.config.id2label == {0: "B", 1: "I", 2: "O"}
    ours_model = load_token_classifier(authors_ckpt).eval()

    def our_logits(enc):
        with torch.no_grad():
            return ours_model(**{k: torch.tensor([v]) for k, v in enc.items()}).logits[0]

    found = []
    for words in SENTENCES:
        for label in LABELS_Q:
            ours, _ = compare(tok, theirs_model, our_logits, label, words)
            found += [(label, s.text) for s in ours]
    assert ("Location", "new york") in found  # the few training steps made spans appear


@pytest.mark.parametrize("seed", range(60))
def test_random_logits_give_the_authors_spans(authors_ckpt, seed):
    """Random logits on every sub-token (prefix too): I after O, B on a ##piece, O inside a B word ..."""
    import numpy as np
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(authors_ckpt)
    rng = np.random.default_rng(seed)
    words = SENTENCES[seed % len(SENTENCES)]
    enc, _ = encode(tok, "Location", words)
    bio = rng.normal(size=(len(enc["input_ids"]), 3)) * 2  # columns B, I, O (theirs)
    obi = bio[:, [2, 0, 1]]  # the same logits in our column order
    compare(tok, FixedTagger(bio), lambda e: obi, "Location", words)


def test_hand_made_cases_and_the_documented_difference_to_the_default(authors_ckpt):
    from transformers import AutoTokenizer

    from metaie_utils.core.bio import bio_spans

    tok = AutoTokenizer.from_pretrained(authors_ckpt)
    words = ["playing", "in", "new", "york", "w1", "toms"]
    enc, n_prefix = encode(tok, "location", words)  # lower case: their decode of the prefix run matches
    pieces = tok.convert_ids_to_tokens(enc["input_ids"])
    assert pieces == ["[CLS]", "location", ":", "play", "##ing", "in", "new", "york", "w1", "tom", "##s", "[SEP]"]
    row = {"B": [4.0, 0, 0], "I": [0, 3.0, 0], "O": [0, 0, 5.0]}  # authors' columns B, I, O
    #        CLS  location ":"  play ##ing in   new  york w1  tom  ##s  SEP
    tags = ["O", "B", "O", "B", "I", "I", "O", "I", "O", "B", "O", "O"]
    bio = [row[t] for t in tags]
    obi = [[r[2], r[0], r[1]] for r in bio]
    ours, _ = compare(tok, FixedTagger(bio), lambda e: obi, "location", words)
    # "playing in" (B on play, I on ##ing and in) is kept; "york" (I after O) is dropped; "tom" of "toms"
    # (B then O on ##s) ends inside a word and is dropped; the prefix run "location" is theirs only
    assert [(s.text, s.word_start, s.word_end, s.score) for s in ours] == [("playing in", 0, 2, round(10 / 3, 6))]
    assert [p[0] for p in authors_inference(tok, FixedTagger(bio), ["location", ":"] + words)] == [
        "location", "playing in"]
    assert authors_runs(obi, enc.word_ids()) == [(1, 2, 4.0), (3, 6, pytest.approx(10 / 3)), (9, 10, 4.0)]
    # the default decode reads first sub-tokens only: play=B, in=I, new=O, york=I, w1=O, tom=B
    first = {w: tags[p] for p, w in reversed(list(enumerate(enc.word_ids()))) if w is not None and w >= n_prefix}
    word_tags = [first[w] for w in sorted(first)]
    assert word_tags == ["B", "I", "O", "I", "O", "B"]
    assert bio_spans(word_tags) == [(0, 2), (3, 4), (5, 6)]  # york kept (I after O), toms kept whole
    default = spans_from_tags(word_tags, [1.0] * 6, to_doc(words), "Location")
    assert [s.text for s in default] == ["playing in", "york", "toms"]


def test_word_offset_and_padding_positions(authors_ckpt):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(authors_ckpt)
    doc = ["w1", "w2", "new", "york", "w3"]
    window = doc[2:]  # a window of a long text that starts at word 2
    enc, n_prefix = encode(tok, "Location", window)
    wids = enc.word_ids() + [None, None]  # right padding of a batch
    row = {"B": [0, 5.0, 0], "I": [0, 0, 5.0], "O": [5.0, 0, 0]}  # our columns O, B, I
    tags = ["O", "O", "O", "B", "I", "O", "O", "B", "I"]  # padding rows say B, I: never a span
    [span] = authors_spans([row[t] for t in tags], wids, n_prefix, doc, "Location", word_offset=2)
    assert (span.text, span.word_start, span.word_end, span.start, span.end) == ("new york", 2, 4, 6, 14)
