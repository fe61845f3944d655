"""The paper's backbone kind (RoBERTa: byte-level BPE, add_prefix_space, a 512-token window) on a tiny random
RoBERTa built here (tests/helpers_paper.py), and the GPU-only half of the paper path (the `gpu` tier).

unit: pre-split words get word_ids aligned to words with the FIRST sub-token labelled; every word starts a
new "Ġ" piece (add_prefix_space is on); a 600-word instance is cut at exactly 512 sub-tokens and the model
runs on them (positions 2..513 of max_position_embeddings 514); the extractor's window is 512 and a text
longer than it is still tagged end to end.

gpu (skipped without CUDA): a one-step bf16 and fp16 fine-tune and an extract on cuda, and a one-process
torchrun launch of the train CLI (the documented multi-GPU command with --nproc_per_node 1).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_paper import build_tiny_roberta, conll_documents

from metaie_utils.core.bio import LABEL2ID
from metaie_utils.core.paths import data_dir
from metaie_utils.models.checkpoint import load_tokenizer
from metaie_utils.models.trainer import (
    IGNORE,
    TrainRecipe,
    encode_instance,
    train_token_classifier,
)

REPO = Path(__file__).resolve().parent.parent
INST = {"words": ["Person", ":", "Hillary", "Clinton", "meets", "reporters", "in", "St.", "Louis", "."],
        "ner": ["O", "O", "B", "I", "O", "O", "O", "O", "O", "O"]}


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


@pytest.fixture(scope="module")
def roberta(tmp_path_factory) -> Path:
    texts = [s for d in conll_documents(data_dir(), 300) for s in d]
    return build_tiny_roberta(tmp_path_factory.mktemp("tiny-roberta"), texts)


@pytest.fixture(scope="module")
def tagger(roberta, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tagger") / "model"
    recipe = TrainRecipe(lr=1e-3, epochs=1, max_steps=2, batch_size=4, warmup_ratio=0.0, save_steps=1000, device="cpu",
                         max_length=512)
    return train_token_classifier([INST] * 4, str(roberta), out, recipe, progress=False)


@pytest.mark.unit
def test_byte_level_bpe_word_ids_align_and_first_subtoken_is_labelled(roberta):
    tok = load_tokenizer(str(roberta))
    assert tok.is_fast and tok.model_max_length == 512
    enc = tok(INST["words"], is_split_into_words=True)
    pieces = tok.convert_ids_to_tokens(enc["input_ids"])
    wids = enc.word_ids()
    assert wids[0] is None and wids[-1] is None and pieces[0] == "<s>" and pieces[-1] == "</s>"
    assert [w for w in dict.fromkeys(wids) if w is not None] == list(range(len(INST["words"])))
    firsts = [i for i, w in enumerate(wids) if w is not None and (i == 0 or wids[i - 1] != w)]
    assert len(firsts) == len(INST["words"])
    assert all(pieces[i].startswith("Ġ") for i in firsts)  # add_prefix_space: every word is a new "Ġ" piece
    assert any(wids[i] == wids[i + 1] for i in range(1, len(wids) - 2))  # some word really is several pieces
    labels = encode_instance(INST, tok, 512)["labels"]
    for i, w in enumerate(wids):
        expected = IGNORE if w is None or i not in firsts else LABEL2ID[INST["ner"][w]]
        assert labels[i] == expected, (i, pieces[i], w)
    # the label_all_subtokens variant: a B word's later pieces are I
    all_sub = encode_instance(INST, tok, 512, label_all_subtokens=True)["labels"]
    hill = [i for i, w in enumerate(wids) if w == 2]
    assert all_sub[hill[0]] == LABEL2ID["B"] and all(all_sub[i] == LABEL2ID["I"] for i in hill[1:])


@pytest.mark.unit
def test_the_512_token_window_is_real(roberta, tagger):
    import torch
    from transformers import AutoModelForTokenClassification

    from metaie_utils.models import load_extractor

    tok = load_tokenizer(str(roberta))
    words = ["Person", ":"] + ["Tom", "Smith", "visited", "Brussels", "on", "Thursday", "."] * 90  # 632 words
    long = {"words": words, "ner": ["O"] * len(words)}
    f = encode_instance(long, tok, 512)
    assert len(f["input_ids"]) == 512 and f["truncated"] and f["input_ids"][-1] == tok.eos_token_id
    model = AutoModelForTokenClassification.from_pretrained(str(tagger)).eval()
    with torch.no_grad():
        out = model(input_ids=torch.tensor([f["input_ids"]]), attention_mask=torch.tensor([f["attention_mask"]]))
    assert out.logits.shape == (1, 512, 3)
    ie = load_extractor(str(tagger), device="cpu")
    assert ie.max_length == 512  # min(model_max_length, max_position_embeddings - 2)
    text = " ".join(words[2:])
    res = ie.extract([text, "Tom Smith visited Brussels ."], ["Person"])
    assert len(res) == 2 and all(isinstance(r, list) for r in res)
    assert all(text[s.start:s.end] == s.text for s in res[0])


# ----------------------------------------------------------------------------------------------- gpu tier


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_one_step_half_precision_finetune_and_extract_on_cuda(roberta, tmp_path, precision):
    import torch

    from metaie_utils.models import load_extractor
    from metaie_utils.models.checkpoint import read_training_info

    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    recipe = TrainRecipe(lr=1e-3, epochs=1, max_steps=1, batch_size=4, warmup_ratio=0.0, save_steps=1000,
                         device="cuda", precision=precision, max_length=512)
    out = train_token_classifier([INST] * 4, str(roberta), tmp_path / "model", recipe, progress=False)
    info = read_training_info(out)
    assert info["finished"] and info["global_step"] == 1
    assert info["device"].startswith("cuda") and info["precision"] == precision
    ie = load_extractor(str(out), device="cuda", precision=precision)
    assert ie.precision == precision and str(next(ie.model.parameters()).device).startswith("cuda")
    res = ie.extract(["Hillary Clinton meets reporters in St. Louis ."], ["Person", "Location"])
    assert len(res) == 1 and all(0.0 <= s.score <= 1.0 for s in res[0])


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda() or shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="needs a CUDA GPU and torchrun")
def test_torchrun_train_cli_on_one_gpu(roberta, tmp_path):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    src = data_dir() / "metaie_reference" / "distill" / "metaie.json"
    out = tmp_path / "ddp-model"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    cmd = [torchrun, "--standalone", "--nproc_per_node", "1", "-m", "metaie_utils", "train", "--input", str(src),
           "--output", str(out), "--backbone", str(roberta), "--set", "max_steps=2", "--set", "batch_size=4",
           "--set", "lr=1e-3"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    info = json.loads((out / "metaie_training.json").read_text())
    assert info["finished"] and info["global_step"] == 2 and info["device"].startswith("cuda")
    assert info["precision"] in ("bf16", "fp16")
