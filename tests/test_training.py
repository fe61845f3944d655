"""Training: recipe validation, sub-token label alignment, truncation, a tiny model that learns, resume,
the checkpoint contract (plain AutoModelForTokenClassification loads it), data loading and the protocol
grouping. Every model here is a randomly initialised tiny BERT with a locally written vocabulary."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from metaie_utils.core.bio import LABELS
from metaie_utils.core.errors import UserError
from metaie_utils.core.metrics import training_curves
from metaie_utils.core.params import ParamsError
from metaie_utils.models.checkpoint import read_training_info
from metaie_utils.models.trainer import (
    TrainRecipe,
    encode_instance,
    train_token_classifier,
)
from metaie_utils.stages.train import (
    TrainConfig,
    load_training_data,
    protocol_queries,
    split_instance,
)

pytestmark = pytest.mark.unit

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ":", ".", ",", "?", "location", "person", "paris", "new",
         "york", "tom", "lives", "in", "the", "city", "is", "play", "##ing", "##s", "big", "and"] + [f"w{i}" for i in range(40)]


def make_tiny_model(root: Path, n_layers: int = 2, head: bool = True) -> Path:
    """A random tiny BERT (+ a WordPiece tokenizer over ``VOCAB``) saved to ``root``; no download."""
    import torch
    from transformers import (
        BertConfig,
        BertForTokenClassification,
        BertModel,
        BertTokenizerFast,
    )

    root.mkdir(parents=True, exist_ok=True)
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(VOCAB)}, do_lower_case=True)  # transformers 5: vocab dict
    cfg = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=n_layers, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128, num_labels=3,
                     id2label=dict(enumerate(LABELS)), label2id={t: i for i, t in enumerate(LABELS)})
    torch.manual_seed(0)
    model = BertForTokenClassification(cfg) if head else BertModel(cfg)
    model.save_pretrained(root)
    tok.save_pretrained(root)
    return root


INST = {"words": ["Location", ":", "Tom", "lives", "in", "New", "York", "city", "."],
        "ner": ["O", "O", "O", "O", "O", "B", "I", "O", "O"]}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "model"
    recipe = TrainRecipe(lr=5e-3, epochs=1, max_steps=40, batch_size=8, warmup_ratio=0.0, log_steps=5,
                         eval_steps=20, save_steps=1000, seed=0)
    return train_token_classifier([INST] * 8, str(tiny), out, recipe, eval_instances=[INST],
                                  provenance={"input": "in-memory"}, progress=False)


def test_recipe_validation_names_the_bad_field():
    assert TrainRecipe(batch_size=8, grad_accum=4).effective_batch == 32
    with pytest.raises(ParamsError, match="lr"):
        TrainRecipe(lr=0)
    with pytest.raises(ParamsError, match="precision"):
        TrainRecipe(precision="fp8")
    with pytest.raises(ParamsError, match="warmup_ratio"):
        TrainRecipe(warmup_ratio=1.5)


def test_config_recipe_maps_meta_fields():
    cfg = TrainConfig(meta_lr=1e-5, meta_batch_size=8, meta_grad_accum=4, num_layers=3, seed=7)
    r = cfg.recipe()
    assert (r.lr, r.effective_batch, r.num_layers, r.seed) == (1e-5, 32, 3, 7)
    p = cfg.protocol_recipe()
    assert (p.lr, p.epochs, p.num_layers) == (cfg.protocol_lr, cfg.protocol_epochs, 0)


def test_first_subtoken_and_all_subtoken_labels(tiny):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    inst = {"words": ["Person", ":", "playing", "Tom"], "ner": ["O", "O", "B", "I"]}
    # [CLS] person : play ##ing tom [SEP]
    first = encode_instance(inst, tok, 32)
    assert first["labels"] == [-100, 0, 0, 1, -100, 2, -100]
    allsub = encode_instance(inst, tok, 32, label_all_subtokens=True)
    assert allsub["labels"] == [-100, 0, 0, 1, 2, 2, -100]  # a B word's later pieces get I
    masked = encode_instance(inst, tok, 32, ignore_prefix=True)
    assert masked["labels"] == [-100, -100, -100, 1, -100, 2, -100]
    assert first["truncated"] is False
    assert encode_instance(inst, tok, 8 - 3)["truncated"] is True


def test_tiny_model_learns_and_checkpoint_contract(trained):
    from transformers import AutoModelForTokenClassification

    info = read_training_info(trained)
    loss, ev = training_curves(info["log_history"])
    assert info["finished"] and info["global_step"] == 40
    assert loss[-1]["loss"] < 0.5 * loss[0]["loss"], loss
    assert ev and ev[-1]["span_f1"] == 1.0
    assert info["data"] == {"input": "in-memory", "n_train": 8, "n_eval": 1, "truncated": 0, "truncated_eval": 0}
    assert info["recipe"]["lr"] == 5e-3 and info["precision"] == "fp32"
    assert "MetaIE tagger" in (trained / "README.md").read_text()
    m = AutoModelForTokenClassification.from_pretrained(trained)
    assert m.config.id2label == {0: "O", 1: "B", 2: "I"}
    assert not trained.with_name("model-checkpoints").exists()  # intermediate checkpoints cleaned up


def test_trained_model_extracts_the_planted_span(trained):
    from metaie_utils.models.extractor import MetaIE

    ie = MetaIE.from_pretrained(trained, device="cpu")
    [spans] = ie.extract(["Tom lives in New York city ."], ["Location"])
    assert [(s.label, s.text, s.start, s.end, s.word_start, s.word_end) for s in spans] == [
        ("Location", "New York", 13, 21, 3, 5)]
    assert 0.5 < spans[0].score <= 1.0


def test_finished_output_is_reused_not_retrained(trained, tiny):
    f = trained / "metaie_training.json"
    before = f.stat().st_mtime_ns
    out = train_token_classifier([INST], str(tiny), trained, TrainRecipe(max_steps=1))
    assert out == trained and f.stat().st_mtime_ns == before


def test_resume_from_checkpoint_continues_steps(tiny, tmp_path):
    out = tmp_path / "model"
    r1 = TrainRecipe(lr=1e-3, max_steps=4, batch_size=4, save_steps=2, warmup_ratio=0.0)
    # a first run cut after its checkpoint: simulate by training 4 steps, then un-finishing it
    train_token_classifier([INST] * 4, str(tiny), out, r1)
    ck = out.with_name("model-checkpoints")
    assert not ck.exists()
    info = json.loads((out / "metaie_training.json").read_text())
    info["finished"] = False
    (out / "metaie_training.json").write_text(json.dumps(info))
    out2 = train_token_classifier([INST] * 4, str(tiny), out, TrainRecipe(lr=1e-3, max_steps=6, batch_size=4, save_steps=2))
    assert read_training_info(out2)["global_step"] == 6


def test_num_layers_truncates_the_encoder(tiny, tmp_path):
    out = train_token_classifier([INST], str(tiny), tmp_path / "m", TrainRecipe(max_steps=1, num_layers=1))
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 1
    with pytest.raises(ParamsError, match="num_layers"):
        train_token_classifier([INST], str(tiny), tmp_path / "m2", TrainRecipe(max_steps=1, num_layers=5))


def test_bad_instances_are_rejected(tiny, tmp_path):
    with pytest.raises(UserError, match="instance 0 has 2 words but 1 tags"):
        train_token_classifier([{"words": ["a", "b"], "ner": ["O"]}], str(tiny), tmp_path / "x", TrainRecipe())
    with pytest.raises(UserError, match="untyped B/I/O"):
        train_token_classifier([{"words": ["a"], "ner": ["B-PER"]}], str(tiny), tmp_path / "x", TrainRecipe())
    with pytest.raises(UserError, match="no training instances"):
        train_token_classifier([], str(tiny), tmp_path / "x", TrainRecipe())


def test_load_training_data_reference_file_and_errors(tmp_path):
    train, held, prov = load_training_data("metaie_reference/distill/metaie.json", heldout_fraction=0.2, seed=0)
    assert (len(train), len(held)) == (8, 2)
    assert len(prov["sha256"]) == 64 and prov["input"].endswith("metaie.json")
    again = load_training_data("metaie_reference/distill/metaie.json", heldout_fraction=0.2, seed=0)
    assert again[0] == train  # seeded
    run = tmp_path / "run03"
    run.mkdir()
    (run / "instances.json").write_text(json.dumps([INST, INST]))
    (run / "heldout.json").write_text(json.dumps([INST]))
    tr, ho, _ = load_training_data(run)
    assert (len(tr), len(ho)) == (2, 1)
    with pytest.raises(UserError, match="was not found"):
        load_training_data(tmp_path / "nope")
    with pytest.raises(ParamsError, match="heldout_fraction"):
        load_training_data(run, heldout_fraction=0.9)


def test_protocol_grouping_keeps_repeated_sentences_apart():
    rec = lambda lab, tags: {"words": lab.split() + [":", "Tom", "ran"], "ner": ["O"] * (len(lab.split()) + 1) + tags}  # noqa: E731
    recs = [rec("Person", ["B", "O"]), rec("Other entity", ["O", "O"]),
            rec("Person", ["B", "O"]), rec("Other entity", ["O", "O"])]  # the same sentence twice
    s, labels, gold = protocol_queries(recs)
    assert s == [["Tom", "ran"], ["Tom", "ran"]]
    assert labels == [["Person", "Other entity"]] * 2
    assert gold == [[("Person", 0, 1)], [("Person", 0, 1)]]
    with pytest.raises(UserError, match="no ':'"):
        split_instance({"words": ["no", "separator"], "ner": ["O", "O"]})


def test_balanced_tag_weights_equalize_the_tags_and_keep_the_loss_scale():
    import torch

    from metaie_utils.models.trainer import tag_weights, weighted_token_loss

    feats = [{"labels": [0] * 8 + [1, 2, -100]}]
    w = tag_weights(feats)
    counts = [8, 1, 1]
    assert [round(c * x, 6) for c, x in zip(counts, w)] == [round(10 / 3, 6)] * 3  # every tag weighs the same in total
    assert abs(sum(c * x for c, x in zip(counts, w)) / 10 - 1.0) < 1e-9         # mean weight over tokens is 1
    assert tag_weights([{"labels": [0, 0]}]) == [1.0, 1.0, 1.0]                  # one tag only: nothing to balance
    # unit weights reproduce the plain mean cross-entropy over labelled tokens
    logits = torch.randn(2, 4, 3)
    labels = torch.tensor([[0, 1, -100, 2], [0, 0, 0, -100]])
    plain = torch.nn.functional.cross_entropy(logits.reshape(-1, 3), labels.reshape(-1), ignore_index=-100)
    assert torch.allclose(weighted_token_loss([1.0, 1.0, 1.0])({"logits": logits}, labels), plain)
    # and the Trainer's accumulated-batch count divides the sum
    summed = weighted_token_loss([1.0, 1.0, 1.0])({"logits": logits}, labels, num_items_in_batch=12)
    assert torch.allclose(summed, plain * 6 / 12)


def test_balanced_recipe_trains_and_records_its_weights(tiny, tmp_path):
    with pytest.raises(ParamsError, match="class_weight"):
        TrainRecipe(class_weight="inverse")
    out = train_token_classifier([INST] * 4, str(tiny), tmp_path / "m",
                                 TrainRecipe(lr=1e-3, max_steps=2, batch_size=4, class_weight="balanced"))
    w = read_training_info(out)["tag_weights"]
    assert set(w) == set(LABELS) and w["O"] < 1 < w["B"]


def test_samples_seen_counts_what_the_model_saw_and_precision_is_recorded(tiny, tmp_path):
    """3 steps of batch 2 over 5 instances are one epoch whose last batch is short: 5 samples seen, not the
    nominal 6 (and the eval passes are not counted)."""
    from metaie_utils.models.checkpoint import read_training_info

    out = train_token_classifier([INST] * 5, str(tiny), tmp_path / "m", TrainRecipe(max_steps=3, batch_size=2),
                                 eval_instances=[INST], progress=False)
    info = read_training_info(out)
    assert info["samples_seen"] == 5 and info["global_step"] == 3 and info["precision"] == "fp32"


def test_min_epochs_raises_the_step_cap_for_a_large_support_set(tiny, tmp_path):
    from metaie_utils.models.checkpoint import read_training_info

    # 10 instances at batch 2 = 5 steps per epoch: a cap of 3 steps alone stops inside the first epoch,
    # min_epochs=2 lifts it to 10 steps; a cap already above min_epochs is kept.
    out = train_token_classifier([INST] * 10, str(tiny), tmp_path / "a", TrainRecipe(max_steps=3, batch_size=2),
                                 progress=False)
    assert read_training_info(out)["global_step"] == 3
    out = train_token_classifier([INST] * 10, str(tiny), tmp_path / "b",
                                 TrainRecipe(max_steps=3, batch_size=2, min_epochs=2), progress=False)
    assert read_training_info(out)["global_step"] == 10
    out = train_token_classifier([INST] * 4, str(tiny), tmp_path / "c",
                                 TrainRecipe(max_steps=3, batch_size=2, min_epochs=1), progress=False)
    assert read_training_info(out)["global_step"] == 3
    with pytest.raises(ParamsError, match="min_epochs"):
        TrainRecipe(min_epochs=-1)


def test_cpu_bf16_training_needs_bf16_units(tiny, tmp_path, monkeypatch):
    from metaie_utils.core import device as dev
    from metaie_utils.models.checkpoint import read_training_info

    monkeypatch.setattr(dev, "cpu_bf16_units", lambda: "")
    with pytest.raises(ParamsError, match="no bf16 matrix units"):
        train_token_classifier([INST] * 2, str(tiny), tmp_path / "x", TrainRecipe(max_steps=1, precision="bf16",
                                                                                  device="cpu"))
    with pytest.raises(ParamsError, match="fp16"):
        train_token_classifier([INST] * 2, str(tiny), tmp_path / "y", TrainRecipe(max_steps=1, precision="fp16",
                                                                                  device="cpu"))
    monkeypatch.setattr(dev, "cpu_bf16_units", lambda: "amx")
    out = train_token_classifier([INST] * 4, str(tiny), tmp_path / "z", TrainRecipe(max_steps=2, batch_size=2,
                                                                                    precision="bf16", device="cpu"))
    info = read_training_info(out)
    assert info["precision"] == "bf16" and info["samples_seen"] == 4


def test_resume_skips_a_checkpoint_torn_by_a_kill(tmp_path):
    """A fine-tune killed while saving checkpoint-300 left weights and optimizer but no trainer_state.json;
    resuming from it failed with FileNotFoundError in the CPU grid. The newest complete one is used instead."""
    from metaie_utils.models.trainer import last_complete_checkpoint

    for step, complete in ((100, True), (200, True), (300, False)):
        d = tmp_path / f"checkpoint-{step}"
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"x")
        if complete:
            (d / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-notes").mkdir()
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-200")
    (tmp_path / "checkpoint-300" / "trainer_state.json").write_text("{}")
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-300")
    assert last_complete_checkpoint(tmp_path / "missing") is None
