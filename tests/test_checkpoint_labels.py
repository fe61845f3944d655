"""Checkpoints in any B/I/O label order load, fine-tune and extract with their meaning kept.

Every checkpoint is a tiny random BERT (test_training's vocabulary) whose head is set by hand: the
classifier weight is zero and the bias picks one tag for every token, so "the head says O everywhere"
is exact. The authors' run_ner.py sorts tag names, so their checkpoints have B=0, I=1, O=2; this
project's have O=0, B=1, I=2. Overriding id2label at load time (what training.load_model did) renames
rows without moving them: the authors' O row (2) is then read as I.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from test_training import INST, VOCAB, make_tiny_model  # noqa: E402

from metaie_utils.core.params import ParamsError
from metaie_utils.models.labels import (
    OBI,
    LabelOrderError,
    checkpoint_label_order,
    find_head,
    label_permutation,
    load_token_classifier,
    permute_head,
    tag_of,
)

pytestmark = pytest.mark.unit

AUTHORS = {0: "B", 1: "I", 2: "O"}
PROJECT = {0: "O", 1: "B", 2: "I"}
WORDS = ["Location", ":", "Tom", "lives", "in", "New", "York", "city", "playing"]


def save_tagger(root: Path, id2label: dict, says: str | None = None, n_layers: int = 2, seed: int = 0) -> Path:
    """A tiny BERT token classifier with labels ``id2label``; ``says="O"`` makes its head predict O on every
    token (zero weight, bias on that row), ``None`` keeps a random head."""
    import torch
    from transformers import BertConfig, BertForTokenClassification, BertTokenizerFast

    root.mkdir(parents=True, exist_ok=True)
    cfg = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=n_layers, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128, num_labels=len(id2label),
                     id2label=dict(id2label), label2id={v: k for k, v in id2label.items()})
    torch.manual_seed(seed)
    model = BertForTokenClassification(cfg)
    if says is not None:
        with torch.no_grad():
            model.classifier.weight.zero_()
            model.classifier.bias.zero_()
            row = [k for k, v in id2label.items() if (tag_of(v) or ("",))[0] == says][0]
            model.classifier.bias[row] = 10.0
    model.save_pretrained(root)
    BertTokenizerFast(vocab={w: i for i, w in enumerate(VOCAB)}, do_lower_case=True).save_pretrained(root)
    return root


def tags_of(model, words=WORDS) -> list[str]:
    """The tag name (by the model's own id2label) predicted for every sub-token of ``words``."""
    import torch
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model.name_or_path)
    enc = tok(words, is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        ids = model.eval()(**enc).logits[0].argmax(-1).tolist()
    return [model.config.id2label[i] for i in ids]


def naive_load(path):
    """The old training.load_model: id2label O/B/I forced onto the config, rows left where they are."""
    from transformers import AutoConfig, AutoModelForTokenClassification

    cfg = AutoConfig.from_pretrained(path, num_labels=3, id2label=PROJECT, label2id={v: k for k, v in PROJECT.items()})
    return AutoModelForTokenClassification.from_pretrained(path, config=cfg, ignore_mismatched_sizes=True)


# ---------------------------------------------------------------------------------------------- names
def test_permutation_by_name_for_both_orders_and_spellings():
    assert label_permutation(AUTHORS) == [2, 0, 1]
    assert label_permutation(PROJECT) == [0, 1, 2]
    assert label_permutation({"0": "i", "1": "o", "2": "b"}) == [1, 2, 0]  # JSON string keys, any case
    assert label_permutation(["B-SPAN", "I-SPAN", "O"]) == [2, 0, 1]
    assert label_permutation(["O", "I_ent", "B_ent"]) == [0, 2, 1]


@pytest.mark.parametrize("labels", [["PER", "LOC", "ORG"], ["LABEL_0", "LABEL_1", "LABEL_2"], ["B", "B", "O"],
                                    ["B-PER", "I-LOC", "O"], ["B-X", "I-X", "O-X"], ["B", "I", "O", "E"]])
def test_labels_that_are_not_one_bio_set_are_a_clear_error(labels):
    with pytest.raises(LabelOrderError) as e:
        label_permutation(labels, "some/ckpt")
    assert isinstance(e.value, ValueError)
    assert "some/ckpt" in str(e.value) and str(labels) in str(e.value)


def test_three_way_head_with_other_labels_refuses_to_load(tmp_path):
    path = save_tagger(tmp_path / "pos", {0: "NOUN", 1: "VERB", 2: "ADJ"})
    with pytest.raises(LabelOrderError, match=r"pos.*\['NOUN', 'VERB', 'ADJ'\]"):
        load_token_classifier(path)
    generic = save_tagger(tmp_path / "generic", {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"})
    with pytest.raises(LabelOrderError, match="LABEL_0"):
        checkpoint_label_order(generic)


# ---------------------------------------------------------------------------------------------- loading
def test_authors_order_head_that_says_o_still_says_o(tmp_path):
    path = save_tagger(tmp_path / "authors", AUTHORS, says="O")
    assert set(tags_of(naive_load(path))) == {"I"}  # the bug this module fixes: O read as I
    model = load_token_classifier(path)
    assert model.config.id2label == PROJECT and model.config.label2id == {"O": 0, "B": 1, "I": 2}
    assert set(tags_of(model)) == {"O"}
    assert model.classifier.bias.argmax().item() == 0


@pytest.mark.parametrize("order", [AUTHORS, PROJECT, {0: "I-SPAN", 1: "O", 2: "B-SPAN"}])
@pytest.mark.parametrize("says", ["O", "B", "I"])
def test_every_order_keeps_the_meaning_of_every_row(tmp_path, order, says):
    path = save_tagger(tmp_path / "m", order, says=says)
    model = load_token_classifier(path)
    assert set(tags_of(model)) == {says} and model.config.id2label == PROJECT


def test_same_weights_in_both_orders_give_the_same_obi_logits(tmp_path):
    import torch

    proj = save_tagger(tmp_path / "proj", PROJECT, seed=3)
    m = load_token_classifier(proj)
    permute_head(m, [1, 2, 0], labels=("B", "I", "O"))  # rows to the authors' order, named so
    m.save_pretrained(tmp_path / "auth")
    assert checkpoint_label_order(tmp_path / "auth") == [2, 0, 1]
    a, b = load_token_classifier(proj).eval(), load_token_classifier(tmp_path / "auth").eval()
    x = torch.tensor([[2, 14, 15, 16, 12, 13, 3]])
    with torch.no_grad():
        la, lb = a(input_ids=x).logits, b(input_ids=x).logits
    assert torch.allclose(la, lb, atol=1e-6)
    assert not torch.allclose(la, naive_load(tmp_path / "auth").eval()(input_ids=x).logits, atol=1e-3)


def save_plain_encoder(root: Path) -> Path:
    """A tiny BertModel saved with the default config labels (LABEL_0, LABEL_1), as a Hub encoder."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    cfg = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128)
    BertModel(cfg).save_pretrained(root)
    BertTokenizerFast(vocab={w: i for i, w in enumerate(VOCAB)}, do_lower_case=True).save_pretrained(root)
    return root


def test_plain_encoder_and_other_sized_taggers_get_a_fresh_obi_head(tmp_path):
    plain = save_plain_encoder(tmp_path / "plain")
    assert checkpoint_label_order(plain) is None
    m = load_token_classifier(plain)
    assert m.config.id2label == PROJECT and find_head(m)[1].out_features == 3
    named = make_tiny_model(tmp_path / "named", head=False)  # an encoder whose config already names O/B/I
    assert load_token_classifier(named).config.id2label == PROJECT
    nine = save_tagger(tmp_path / "nine", dict(enumerate(["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG",
                                                          "B-MISC", "I-MISC"])))
    assert checkpoint_label_order(nine) is None
    m = load_token_classifier(nine)
    assert m.config.num_labels == 3 and m.config.id2label == PROJECT and m.classifier.out_features == 3


def test_num_layers_truncation_keeps_the_mapping(tmp_path):
    path = save_tagger(tmp_path / "authors", AUTHORS, says="B")
    m = load_token_classifier(path, num_layers=1)
    assert m.config.num_hidden_layers == 1 and len(m.bert.encoder.layer) == 1
    assert set(tags_of(m)) == {"B"}
    with pytest.raises(ParamsError, match="num_layers = 5"):
        load_token_classifier(path, num_layers=5)
    with pytest.raises(ParamsError, match="num_layers = 5"):
        load_token_classifier(make_tiny_model(tmp_path / "plain", head=False), num_layers=5)


def test_find_head_names_the_classifier(tmp_path):
    m = load_token_classifier(save_tagger(tmp_path / "m", AUTHORS))
    name, head = find_head(m)
    assert name == "classifier" and head is m.classifier


# ---------------------------------------------------------------------------------------------- downstream
def test_fine_tune_from_an_authors_order_checkpoint_keeps_its_head(tmp_path, monkeypatch):
    """Fine-tuning starts from the checkpoint's meaning: one tiny step on an O-everywhere head in the authors'
    order still predicts O (the old load path starts from I everywhere)."""
    from transformers import AutoModelForTokenClassification

    from metaie_utils.models import trainer as training

    path = save_tagger(tmp_path / "authors", AUTHORS, says="O")
    out = training.train_token_classifier([INST], str(path), tmp_path / "ft",
                                          training.TrainRecipe(lr=1e-6, max_steps=1, batch_size=1, warmup_ratio=0.0))
    m = AutoModelForTokenClassification.from_pretrained(out)
    assert m.config.id2label == PROJECT
    assert set(tags_of(m)) == {"O"}


def test_training_load_model_maps_rows_by_name(tmp_path):
    from metaie_utils.models.checkpoint import load_model

    path = save_tagger(tmp_path / "authors", AUTHORS, says="O")
    assert set(tags_of(load_model(str(path)))) == {"O"}


def test_extraction_reads_the_authors_order(tmp_path):
    from metaie_utils.models.checkpoint import load_tokenizer
    from metaie_utils.models.extractor import MetaIE

    b_all = save_tagger(tmp_path / "b", AUTHORS, says="B")
    o_all = save_tagger(tmp_path / "o", AUTHORS, says="O")
    text = ["Tom lives in New York"]
    for path in (b_all, o_all):
        direct = MetaIE.from_pretrained(path, device="cpu").extract(text, ["Location"])
        mapped = MetaIE(load_token_classifier(path), load_tokenizer(str(path)), device="cpu").extract(text, ["Location"])
        assert [(s.text, s.word_start) for s in direct[0]] == [(s.text, s.word_start) for s in mapped[0]]
    [spans] = MetaIE(load_token_classifier(b_all), load_tokenizer(str(b_all)), device="cpu").extract(text, ["Location"])
    assert [s.text for s in spans] == ["Tom", "lives", "in", "New", "York"]
    [spans] = MetaIE(load_token_classifier(o_all), load_tokenizer(str(o_all)), device="cpu").extract(text, ["Location"])
    assert spans == []
    assert tuple(OBI) == ("O", "B", "I")


def test_fresh_head_load_is_one_quiet_line_but_missing_encoder_weights_warn(tmp_path, caplog, capsys):
    """transformers' LOAD REPORT table (fresh classifier, unused pooler) is expected on every few-shot fine-tune
    of a plain encoder and is not printed; an encoder weight missing from the checkpoint is a named warning."""
    import logging

    from safetensors.torch import load_file, save_file

    plain = save_plain_encoder(tmp_path / "plain")
    with caplog.at_level(logging.WARNING):
        load_token_classifier(plain)
    out = capsys.readouterr()
    assert "LOAD REPORT" not in out.out + out.err + caplog.text
    assert "not sharded" not in out.out + out.err + caplog.text  # transformers' TP-plan check, set off by quieting
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("metaie_utils")]

    f = plain / "model.safetensors"
    sd = load_file(str(f))
    gone = next(k for k in sd if "encoder.layer.1.attention.self.query.weight" in k)
    del sd[gone]
    save_file(sd, str(f), metadata={"format": "pt"})
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_token_classifier(plain)
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert "encoder.layer.1.attention.self.query.weight" in warned and "LOAD REPORT" not in warned
