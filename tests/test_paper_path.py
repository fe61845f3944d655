"""The paper path end to end at toy scale: params/paper.yaml with only the sizes overridden, all six stages.

``python -m metaie_utils run --params params/paper.yaml --stages 01,...,06 --set <sizes>`` runs as a
subprocess, with three offline stand-ins for the online pieces (tests/helpers_paper.py):

- the corpus: a local OpenWebText-shaped dataset folder, read with ``corpus: hf:<folder>`` through the same
  ``datasets.load_dataset(..., streaming=True)`` call that streams ``hf:Skylion007/openwebtext``;
- the teacher: a fake OpenAI-compatible endpoint on 127.0.0.1 answering as ``gpt-3.5-turbo`` (base_url is
  set; OPENAI_API_KEY holds a fake value, so no real key is needed and none can leak);
- the backbone: a random 2-layer RoBERTa with a byte-level BPE tokenizer trained here (add_prefix_space,
  word_ids, a 512-token window, as roberta-large has).

Everything that is not a size (teacher, prompt, temperature, max_tokens, parser, sampler, recipes,
initializations, the sweeps of 06) comes from params/paper.yaml, and the assertions read it back.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers_paper import (
    PAPER_MODEL,
    PaperTeacher,
    build_tiny_roberta,
    conll_documents,
    write_local_corpus,
)

from metaie_utils.core.params import load_params
from metaie_utils.core.paths import data_dir
from metaie_utils.llm.client import build_messages

pytestmark = pytest.mark.notebooks

REPO = Path(__file__).resolve().parent.parent
FAKE_KEY = "sk-fake-paper-path-0000000000000000"
STAGES = ["01_sample_corpus", "02_distill_llm", "03_convert_bio", "04_train_meta_model", "05_fewshot_eval", "06_ablations"]
# conll2003-authors: the authors' fixed 20-sentence support set; conll04: a sampled (per-type) RE dataset,
# where llm-icl asks the teacher the student's two-stage queries. The other paper datasets run the same code.
DATASETS = ["conll2003-authors", "conll04"]


def size_overrides(corpus: Path, base_url: str, backbone: Path, out_root: Path) -> dict[str, object]:
    """Every override of the run: sizes, plus where the three stand-ins live (corpus, endpoint, backbone)."""
    return {
        "out_root": str(out_root), "run_name": "paper-toy",
        # where the stand-ins are
        "corpus": f"hf:{corpus}", "base_url": base_url, "backbone": str(backbone),
        # sizes
        "max_docs": 60, "n_sentences": 24,
        "heldout_fraction": 0.1,  # 0.01 of 24 sentences would hold out at most one
        "meta_max_steps": 2,
        "datasets": DATASETS, "fewshot_seeds": 1, "test_cap": 8, "icl_test_cap": 4, "fewshot_max_steps": 2,
    }


def _yaml(v: object) -> str:
    return json.dumps(v) if isinstance(v, list) else str(v)


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper")
    ddir = data_dir()
    corpus = write_local_corpus(root / "owt-local", ddir, max_docs=80)
    texts = [s for d in conll_documents(ddir, 300) for s in d]
    backbone = build_tiny_roberta(root / "tiny-roberta", texts)
    env = {**os.environ, "OPENAI_API_KEY": FAKE_KEY, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "HF_DATASETS_CACHE": str(root / "hf-datasets"), "TOKENIZERS_PARALLELISM": "false",
           "METAIE_DATA_DIR": str(ddir), "MPLBACKEND": "Agg",
           # the notebooks' kernels import this checkout's package (not another editable install's)
           "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    with PaperTeacher() as teacher:
        sets = size_overrides(corpus, teacher.base_url, backbone, root / "outputs")
        cmd = [sys.executable, "-m", "metaie_utils", "run", "--params", "params/paper.yaml",
               "--stages", ",".join(s[:2] for s in STAGES)]
        for k, v in sets.items():
            cmd += ["--set", f"{k}={_yaml(v)}"]
        t0 = time.time()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        wall = time.time() - t0
    assert proc.returncode == 0, f"paper run failed ({wall:.0f}s):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    out = root / "outputs"
    dirs = {s: out / s / "paper-toy" for s in STAGES}
    paper = load_params(["params/paper.yaml"], {})
    return {"dirs": dirs, "teacher": teacher, "paper": paper, "corpus": corpus, "backbone": backbone,
            "stdout": proc.stdout, "wall": wall}


def _manifest(d: Path) -> dict:
    return json.loads((d / "manifest.json").read_text())


def test_every_stage_finished_with_the_paper_params(paper_run):
    paper, dirs = paper_run["paper"], paper_run["dirs"]
    for s, d in dirs.items():
        assert (d / "metrics.json").is_file(), f"{s} did not finish"
        m = _manifest(d)
        assert m["status"] == "finished"
    # non-size parameters are the paper's, as recorded by the stages
    p02 = _manifest(dirs["02_distill_llm"])["params"]
    assert (p02["teacher"], p02["prompt_version"], p02["temperature"], p02["max_tokens"]) == \
        (PAPER_MODEL, "metaie-v1", paper["temperature"], paper["max_tokens"])
    assert _manifest(dirs["03_convert_bio"])["params"]["parse_mode"] == paper["parse_mode"]
    p05 = _manifest(dirs["05_fewshot_eval"])["params"]
    assert p05["fewshot_sampler"] == paper["fewshot_sampler"] == "per-type"
    assert p05["initializations"] == paper["initializations"]
    assert "conll2003-authors" in paper["datasets"]
    assert _manifest(dirs["06_ablations"])["params"]["sweeps"] == paper["sweeps"]
    print(f"paper path wall time: {paper_run['wall']:.1f}s")


def test_corpus_was_streamed_through_datasets(paper_run):
    d = paper_run["dirs"]["01_sample_corpus"]
    rows = [json.loads(x) for x in (d / "sentences.jsonl").read_text().splitlines()]
    assert len(rows) == 24
    assert {r["source"] for r in rows} == {f"hf:{paper_run['corpus']}"}
    m = json.loads((d / "metrics.json").read_text())
    assert 0 < m.get("documents", 60) <= 60


def test_endpoint_got_the_papers_messages_with_a_fake_key(paper_run):
    t, paper = paper_run["teacher"], paper_run["paper"]
    sents = [json.loads(x)["text"] for x in (paper_run["dirs"]["01_sample_corpus"] / "sentences.jsonl").read_text().splitlines()]
    paper_reqs = [r for r in t.requests if r["messages"][0]["content"].startswith("Extract some short important")]
    assert sorted(r["messages"][0]["content"] for r in paper_reqs) == sorted(build_messages("metaie-v1", s)[0]["content"] for s in sents)
    for r in paper_reqs:
        sentence = r["messages"][0]["content"].split("\n", 1)[1]
        assert r["messages"] == build_messages("metaie-v1", sentence)  # user first, then system, verbatim
        assert [m["role"] for m in r["messages"]] == ["user", "system"]
        assert r["model"] == PAPER_MODEL and r["temperature"] == paper["temperature"] and r["max_tokens"] == paper["max_tokens"]
    assert set(t.auth_headers) == {f"Bearer {FAKE_KEY}"}
    # ner-distill asked the same teacher for named entities (ner-icl-v1: NER demonstrations first) on MetaIE's
    # sentences, and on more of the same corpus when its instances fell short of MetaIE's; llm-icl prompted it
    ner = [r for r in t.requests if r["messages"][-1]["content"].startswith("Extract all named entities")]
    assert all(r["messages"][0]["role"] == "system" and r["messages"][2]["role"] == "assistant" for r in ner)
    asked = [r["messages"][-1]["content"].split("\n", 1)[1] for r in ner]
    assert set(sents) <= set(asked) and len(asked) == len(set(asked))
    assert any(r["messages"][0]["role"] == "system" and "user's sentence" in r["messages"][0]["content"] for r in t.requests)
    m02 = json.loads((paper_run["dirs"]["02_distill_llm"] / "metrics.json").read_text())
    assert m02["model"] == PAPER_MODEL and m02["answered"] == 24 and m02["prompt_tokens"] > 0 and m02["cost_usd"] > 0
    for d in paper_run["dirs"].values():  # the key is never written anywhere
        for f in d.rglob("*"):
            if f.is_file() and f.suffix in (".json", ".jsonl", ".ipynb", ".csv", ".log", ".txt", ".md"):
                assert FAKE_KEY not in f.read_text(errors="replace"), f


def test_instances_and_meta_model(paper_run):
    dirs = paper_run["dirs"]
    inst = json.loads((dirs["03_convert_bio"] / "instances.json").read_text())
    assert len(inst) >= 24 and all(len(i["words"]) == len(i["ner"]) and "B" in i["ner"] for i in inst)
    model = dirs["04_train_meta_model"] / "model"
    cfg = json.loads((model / "config.json").read_text())
    assert cfg["model_type"] == "roberta" and cfg["max_position_embeddings"] == 514
    assert cfg["architectures"] == ["RobertaForTokenClassification"]
    assert (model / "tokenizer.json").is_file() and (model / "metaie_training.json").is_file()


def test_results_cover_conll2003_authors_and_every_initialization(paper_run):
    d, paper = paper_run["dirs"]["05_fewshot_eval"], paper_run["paper"]
    with open(d / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    inits = paper["initializations"]
    assert {r["initialization"] for r in rows if r["dataset"] == "conll2003-authors"} == set(inits)
    authors = [r for r in rows if r["dataset"] == "conll2003-authors"]
    assert all(r["n_support"] == "20" and r["n_test"] in ("8", "4") for r in authors)
    # conll04 (relations): every initialization, llm-icl included (entities, then relation queries), with the
    # gold-anchor row next to the end-to-end one
    assert {r["initialization"] for r in rows if r["dataset"] == "conll04"} == set(inits)
    icl = {r["subtask"]: r for r in rows if r["dataset"] == "conll04" and r["initialization"] == "llm-icl"}
    assert {"entity", "relation", "relation@gold"} <= set(icl) and icl["entity"]["n_test"] == "4"
    assert any("\nQueries: " in r["messages"][-1]["content"] for r in paper_run["teacher"].requests)  # icl-v2
    sup = json.loads((d / "support" / "conll04" / "seed0.json").read_text())
    assert sup["sampler"] == "per-type"
    assert (d / "summary.csv").is_file()
