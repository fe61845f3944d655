"""The generative student: formatting, parsing, span location, training a tiny causal LM, extraction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metaie_utils.models import generative as gen
from metaie_utils.models.generative import GenerativeIE, locate_spans, parse_generation

pytestmark = pytest.mark.unit

INSTANCES = [
    {"words": ["Person", ":", "Tom", "met", "Ann", "in", "Paris", "."], "ner": ["O", "O", "B", "O", "B", "O", "O", "O"]},
    {"words": ["Location", ":", "Tom", "met", "Ann", "in", "Paris", "."], "ner": ["O", "O", "O", "O", "O", "O", "B", "O"]},
    {"words": ["Date", ":", "Tom", "met", "Ann", "in", "Paris", "."], "ner": ["O"] * 8},
    {"words": ["Company", "name", ":", "Apple", "Inc", "sells", "phones", "."], "ner": ["O", "O", "O", "B", "I", "O", "O", "O"]},
]


# --- pure formatting / parsing ---------------------------------------------------------------------


def test_instance_to_example_formats():
    assert gen.instance_to_example(INSTANCES[0]) == ("Sentence: Tom met Ann in Paris .\nLabel: Person\nSpans:", " Tom; Ann")
    assert gen.instance_to_example(INSTANCES[2])[1] == " none"
    assert gen.instance_to_example(INSTANCES[3]) == ("Sentence: Apple Inc sells phones .\nLabel: Company name\nSpans:", " Apple Inc")


def test_instance_parts_uses_label_key_when_label_has_colon():
    inst = {"words": ["Time", ":", "x", ":", "at", "5", ":", "00"], "ner": ["O", "O", "O", "O", "O", "B", "I", "I"],
            "label": "Time: x"}
    words, label, spans = gen.instance_parts(inst)
    assert label == "Time : x" and words == ["at", "5", ":", "00"] and spans == [(1, 4)]


def test_instance_parts_errors():
    with pytest.raises(ValueError, match="no ':'"):
        gen.instance_parts({"words": ["a", "b"], "ner": ["O", "O"]})
    with pytest.raises(ValueError, match="2 words but 1 tags"):
        gen.instance_parts({"words": ["a", ":"], "ner": ["O"]})


def test_parse_generation_cases():
    assert parse_generation(" Tom; Ann\nLabel: junk") == ["Tom", "Ann"]
    assert parse_generation(" None") == []
    assert parse_generation("") == []
    assert parse_generation(" a;;a; b ") == ["a", "b"]


def test_locate_spans_cases():
    words = "Tom met tom and New York Times in New York .".split()
    assert locate_spans(words, ["Tom"]) == [(0, 1), (2, 3)]
    assert locate_spans(words, ["New York Times", "New York"]) == [(4, 7), (8, 10)]
    assert locate_spans(words, ["Berlin"]) == []
    assert locate_spans(["U.S.", "troops"], ["U.S. troops"]) == [(0, 2)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c", "dd"]), min_size=1, max_size=12), st.data())
def test_locate_spans_roundtrip(words, data):
    """Any contiguous word run is found, and every returned span spells the text asked for."""
    i = data.draw(st.integers(0, len(words) - 1))
    j = data.draw(st.integers(i + 1, len(words)))
    text = " ".join(words[i:j])
    found = locate_spans(words, [text])
    assert found, (words, text)
    assert all(" ".join(words[s:e]) == text for s, e in found)
    assert all(found[k][1] <= found[k + 1][0] for k in range(len(found) - 1))  # no overlaps


def test_as_recipe_maps_aliases_and_ignores_unknown():
    r = gen.as_recipe({"learning_rate": 2e-5, "num_epochs": 3, "gradient_accumulation_steps": 4, "label_all_tokens": 1})
    assert (r.lr, r.epochs, r.grad_accum) == (2e-5, 3, 4)

    class Obj:
        lr = 1e-3
        batch_size = 2

    assert gen.as_recipe(Obj(), max_steps=5).batch_size == 2 and gen.as_recipe(Obj(), max_steps=5).max_steps == 5


def test_labels_per_text_validation():
    assert gen._labels_per_text(["A", "B"], 2) == [["A", "B"], ["A", "B"]]
    assert gen._labels_per_text([["A"], ["B"]], 2) == [["A"], ["B"]]
    with pytest.raises(TypeError):
        gen._labels_per_text("A", 1)
    with pytest.raises(ValueError, match="one list per text"):
        gen._labels_per_text([["A"]], 2)


# --- a tiny causal LM built locally ----------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer GPT-2 and a byte-level BPE tokenizer trained here (no download)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("tiny_lm")
    corpus = [gen.instance_to_example(x)[0] + gen.instance_to_example(x)[1] for x in INSTANCES] * 5
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tok.save_pretrained(d)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=128, n_embd=32, n_layer=2, n_head=2,
                     eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id)
    GPT2LMHeadModel(cfg).save_pretrained(d)
    return d


def test_encode_example_masks_prompt(tiny_lm):
    model, tok, seq2seq = gen.load_backbone(tiny_lm)
    assert seq2seq is False
    prompt, target = gen.instance_to_example(INSTANCES[0])
    ex = gen.encode_example(tok, prompt, target, seq2seq, max_length=192)
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    assert ex["labels"][:n_prompt] == [-100] * n_prompt
    assert ex["labels"][n_prompt:] == ex["input_ids"][n_prompt:]
    assert ex["input_ids"][-1] == tok.eos_token_id
    assert tok.decode(ex["input_ids"][n_prompt:-1]) == target
    short = gen.encode_example(tok, prompt, target, seq2seq, max_length=12)
    assert len(short["input_ids"]) <= 12 and short["labels"][-1] == tok.eos_token_id


def test_train_generative_loss_falls_and_checkpoint_loads(tiny_lm, tmp_path):
    out = gen.train_generative(INSTANCES * 4, tiny_lm, tmp_path / "model",
                               {"max_steps": 40, "lr": 3e-3, "batch_size": 4, "logging_steps": 5, "scheduler": "constant",
                                "max_new_tokens": 8},
                               eval_instances=INSTANCES[:2])
    info = json.loads((out / "metaie_training.json").read_text())
    assert info["architecture"] == "generative" and info["seq2seq"] is False and info["global_steps"] == 40
    hist = info["loss_history"]
    assert len(hist) >= 4 and hist[-1] < 0.5 * hist[0], hist
    assert "eval_loss" in info and not (out / "checkpoints").exists()
    assert gen.is_generative_checkpoint(out) and (out / "README.md").is_file()
    m = GenerativeIE.from_pretrained(out)
    res = m.extract(["Tom met Ann in Paris.", ["Apple", "Inc", "sells", "phones", "."]], ["Person", "Company name"])
    assert len(res) == 2
    for text, spans in zip(["Tom met Ann in Paris.", "Apple Inc sells phones ."], res):
        for sp in spans:
            assert text[sp.start:sp.end] == sp.text and 0 <= sp.score <= 1 and sp.word_start < sp.word_end
    # after 40 steps on these 16 examples the memorised answer's start comes back ("Apple" or "Apple Inc")
    assert any(s.label == "Company name" and s.word_start == 0 for s in res[1]), res[1]


def test_train_generative_follows_the_recorded_precision(tiny_lm, tmp_path, monkeypatch):
    """Stage 05 records the few-shot precision in results.csv and hands it to both trainers: the generative
    student must train in it (it used to ignore it and always train fp32 on a CPU) and record what it ran in."""
    from metaie_utils.core import device as dev
    from metaie_utils.core.params import ParamsError

    rec = {"max_steps": 2, "batch_size": 4, "logging_steps": 1}
    out = gen.train_generative(INSTANCES, tiny_lm, tmp_path / "fp32", {**rec, "precision": "fp32"})
    info = json.loads((out / "metaie_training.json").read_text())
    assert (info["precision"], info["device"]) == ("fp32", "cpu")
    with pytest.raises(ParamsError, match="fp16' needs a CUDA GPU"):
        gen.train_generative(INSTANCES, tiny_lm, tmp_path / "fp16", {**rec, "precision": "fp16", "device": "cpu"})
    monkeypatch.setattr(dev, "cpu_bf16_units", lambda: "")
    with pytest.raises(ParamsError, match="no bf16 matrix units"):
        gen.train_generative(INSTANCES, tiny_lm, tmp_path / "bf16", {**rec, "precision": "bf16", "device": "cpu"})
    monkeypatch.setattr(dev, "cpu_bf16_units", lambda: "amx")  # autocast runs (emulated) on any CPU
    out = gen.train_generative(INSTANCES, tiny_lm, tmp_path / "bf16", {**rec, "precision": "bf16", "device": "cpu"})
    assert json.loads((out / "metaie_training.json").read_text())["precision"] == "bf16"


def test_max_length_zero_is_the_backbone_window(tiny_lm, tmp_path):
    """Stage 05's few-shot recipe says max_length 0 (the backbone's window). Taken literally it cut every example to
    one target token and the generative fine-tunes trained on nothing (loss 0.0 from the first step)."""
    out = gen.train_generative(INSTANCES, tiny_lm, tmp_path / "m", {"max_steps": 3, "batch_size": 4, "logging_steps": 1,
                                                                   "max_length": 0})
    info = json.loads((out / "metaie_training.json").read_text())
    assert info["max_length"] == 128 and info["loss_history"][0] > 0.1, info["loss_history"]
    model, tok, seq2seq = gen.load_backbone(tiny_lm)
    with pytest.raises(ValueError, match="max_length = 0"):
        gen.encode_example(tok, *gen.instance_to_example(INSTANCES[0]), seq2seq, max_length=0)


def test_stage05_fewshot_recipe_trains_the_generative_student(tiny_lm, tmp_path):
    """The few-shot fine-tune as stage 05 runs it (its TrainRecipe with the defaults' fewshot_max_length 0 and the
    recorded precision) must train the generative student: a loss above 0 from the first step."""
    from metaie_utils.stages.fewshot.loop import EvalConfig, fewshot_precision, train_fewshot

    cfg = EvalConfig(architecture="generative", fewshot_max_steps=10, fewshot_batch_size=4, fewshot_precision="fp32")
    assert cfg.fewshot_max_length == 0
    out = train_fewshot(INSTANCES, str(tiny_lm), tmp_path / "fs", cfg, seed=0)
    info = json.loads((out / "metaie_training.json").read_text())
    assert info["loss_history"][0] > 0.1 and info["global_steps"] == 10, info["loss_history"]  # logged at step 10
    assert info["max_length"] == 128 and info["precision"] == fewshot_precision(cfg) == "fp32"


def test_from_pretrained_refuses_other_checkpoints(tmp_path, tiny_lm):
    with pytest.raises(FileNotFoundError, match="not a generative MetaIE checkpoint"):
        GenerativeIE.from_pretrained(tiny_lm)
    (tmp_path / "metaie_training.json").write_text(json.dumps({"architecture": "seqlabel"}))
    with pytest.raises(ValueError, match="MetaIE.from_pretrained"):
        GenerativeIE.from_pretrained(tmp_path)


def test_load_backbone_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="Cannot load the generative backbone"):
        gen.load_backbone(tmp_path / "nothing-here")


def test_extract_parses_planted_generations(tiny_lm, monkeypatch):
    model, tok, _ = gen.load_backbone(tiny_lm)
    m = GenerativeIE(model, tok)
    planted = {
        "Person": " Tom; ann\nLabel: Person",  # case-insensitive match, junk after the newline dropped
        "Location": " Paris; Berlin",          # Berlin is not in the sentence: dropped
        "Date": " none",
    }
    prompts_seen = []

    def fake_generate(prompts):
        prompts_seen.extend(prompts)
        return [(planted[p.split("\nLabel: ")[1].split("\n")[0]], 0.8) for p in prompts]

    monkeypatch.setattr(m, "_generate", fake_generate)
    text = "Tom met Ann in Paris."
    res = m.extract([text, ["Ann", "left", "Paris", "."]], [["Person", "Location", "Date"], ["Location"]])
    assert [(s.label, s.text, s.start, s.end, s.word_start, s.word_end) for s in res[0]] == [
        ("Person", "Tom", 0, 3, 0, 1), ("Person", "Ann", 8, 11, 2, 3), ("Location", "Paris", 15, 20, 4, 5)]
    assert [(s.label, s.text, s.start, s.end, s.word_start, s.word_end) for s in res[1]] == [
        ("Location", "Paris", 9, 14, 2, 3)]
    assert all(s.score == 0.8 for r in res for s in r)
    assert prompts_seen[0] == "Sentence: Tom met Ann in Paris .\nLabel: Person\nSpans:"
    assert m.extract([], ["Person"]) == []


def test_extract_resolves_label_conflicts_and_blank_texts(tiny_lm, monkeypatch):
    model, tok, _ = gen.load_backbone(tiny_lm)
    m = GenerativeIE(model, tok)
    scores = {"Person": 0.4, "Location": 0.9}
    monkeypatch.setattr(m, "_generate", lambda prompts: [(" Paris", scores[p.split("\nLabel: ")[1].split("\n")[0]])
                                                         for p in prompts])
    best = m.extract(["Paris is big.", "   "], ["Person", "Location"])
    assert [(s.label, s.score) for s in best[0]] == [("Location", 0.9)] and best[1] == []
    both = m.extract(["Paris is big."], ["Person", "Location"], conflict="all")
    assert sorted(s.label for s in both[0]) == ["Location", "Person"]


@pytest.mark.slow
def test_smollm2_gguf_backbone_trains_and_extracts(tmp_path):
    """The offline SmolLM2-135M GGUF (asset smollm2-135m) dequantizes, trains a few steps and extracts."""
    from metaie_utils.core import assets

    if not assets.is_installed("smollm2-135m"):
        pytest.skip("asset smollm2-135m not installed: python -m metaie_utils assets install smollm2-135m")
    out = gen.train_generative(INSTANCES * 2, "smollm2-135m", tmp_path / "m",
                               {"max_steps": 4, "lr": 1e-4, "batch_size": 4, "logging_steps": 1, "max_new_tokens": 8})
    info = json.loads((out / "metaie_training.json").read_text())
    assert info["architecture"] == "generative" and info["init"] == "smollm2-135m" and info["global_steps"] == 4
    m = GenerativeIE.from_pretrained(out)
    res = m.extract(["Tom met Ann in Paris."], ["Person"])
    assert len(res) == 1 and all("Tom met Ann in Paris."[s.start:s.end] == s.text for s in res[0])


def test_seq2seq_path_trains_and_extracts(tiny_lm, tmp_path):
    """The BART/T5 branch (AutoModelForSeq2SeqLM): a tiny random BART with the local tokenizer."""
    import torch
    from transformers import AutoTokenizer, BartConfig, BartForConditionalGeneration

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tiny_lm)
    d = tmp_path / "tiny_bart"
    tok.save_pretrained(d)
    e = tok.eos_token_id
    cfg = BartConfig(vocab_size=len(tok), d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                     decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=128,
                     pad_token_id=e, eos_token_id=e, bos_token_id=e, decoder_start_token_id=e, forced_eos_token_id=None)
    BartForConditionalGeneration(cfg).save_pretrained(d)
    model, _, seq2seq = gen.load_backbone(d)
    assert seq2seq is True
    ex = gen.encode_example(tok, *gen.instance_to_example(INSTANCES[0]), seq2seq, max_length=64)
    assert -100 not in ex["labels"] and tok.decode(ex["labels"], skip_special_tokens=True) == "Tom; Ann"
    assert ex["labels"][-1] == e
    out = gen.train_generative(INSTANCES * 2, d, tmp_path / "m", {"max_steps": 6, "lr": 1e-3, "batch_size": 4, "logging_steps": 1})
    info = json.loads((out / "metaie_training.json").read_text())
    assert info["seq2seq"] is True and info["global_step"] == 6
    res = GenerativeIE.from_pretrained(out).extract(["Tom met Ann in Paris."], ["Person"])
    assert len(res) == 1 and all("Tom met Ann in Paris."[s.start:s.end] == s.text for s in res[0])



def test_generative_training_steps_reach_the_log_under_their_own_name(tiny_lm, tmp_path, caplog):
    """The per-step loss lines (the evidence that found the one-token few-shot bug) go through the shared
    route_trainer_logs to the generative module's logger, which a run's log file records, not to the cell."""
    import logging

    with caplog.at_level(logging.INFO, logger="metaie_utils"):
        gen.train_generative(INSTANCES, tiny_lm, tmp_path / "m", {"max_steps": 2, "batch_size": 4, "logging_steps": 1})
    steps = [r for r in caplog.records if r.getMessage().startswith("step ")]
    assert steps and {r.name for r in steps} == {"metaie_utils.models.generative"}, [r.name for r in steps]
    assert "'loss'" in steps[0].getMessage()
