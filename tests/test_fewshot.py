"""Stage 05: K-shot sampling, results bookkeeping, the ICL parser and an end-to-end few-shot loop.

The loop runs on a tiny fake NER dataset (defined here, following the tasks contract) and a tiny
randomly initialised BERT written to a temp folder, so these tests need no assets and take seconds.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from metaie_utils.core.metrics import prf
from metaie_utils.stages.fewshot import loop as fewshot
from metaie_utils.stages.fewshot import support
from metaie_utils.stages.fewshot.baselines import (
    IclExtractor,
    demonstrations,
    find_upstream,
    icl_messages,
    parse_icl_response,
    subsample,
)
from metaie_utils.stages.fewshot.loop import (
    Backend,
    EvalConfig,
    FewShotError,
    run_fewshot,
    summarize,
    summary_metrics,
    write_summary,
)
from metaie_utils.stages.fewshot.support import (
    capped_test,
    instance_spans,
    sample_support,
)

pytestmark = pytest.mark.unit

# ------------------------------------------------------------------------------------------- fakes
PEOPLE = ["Tom", "Ann", "Bob", "Eve"]
PLACES = ["Paris", "Rome", "Oslo", "Lima"]
FILLER = ["visits", "likes", "sees", "and", "the", "city", "today", "."]


@dataclass
class Ex:
    id: str
    tokens: list[str]
    entities: list[tuple[int, int, str]] = field(default_factory=list)


def make_examples(n: int, seed: int) -> list[Ex]:
    """Sentences like "Tom visits Paris ." with PER/LOC entities; some have none."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            toks, ents = [rng.choice(PEOPLE), "visits", rng.choice(PLACES), "."], [(0, 1, "PER"), (2, 3, "LOC")]
        elif kind == 1:
            toks, ents = [rng.choice(PEOPLE), "likes", "the", "city", "."], [(0, 1, "PER")]
        elif kind == 2:
            toks, ents = ["the", "city", rng.choice(PLACES), "today", "."], [(2, 3, "LOC")]
        else:
            toks, ents = ["the", "city", "sees", "today", "."], []
        out.append(Ex(f"ex{seed}-{i}", toks, ents))
    return out


class FakeNER:
    """The tasks contract (name, task, splits, load, types, example_types, instances, gold, predict)."""

    task = "ner"
    labels = {"PER": "Person", "LOC": "Location"}

    def __init__(self, name: str = "fake", n_train: int = 24, n_test: int = 12):
        self.name = name
        self.splits = ["train", "test"]
        self._data = {"train": make_examples(n_train, 1), "test": make_examples(n_test, 2)}

    def load(self, split: str) -> list[Ex]:
        return self._data[split]

    def types(self, examples) -> list[str]:
        return sorted({t for ex in examples for *_, t in ex.entities})

    def example_types(self, ex: Ex) -> set[str]:
        return {t for *_, t in ex.entities}

    def instances(self, ex: Ex) -> list[dict]:
        out = []
        for raw, label in self.labels.items():
            tags = ["O"] * len(ex.tokens)
            for s, e, t in ex.entities:
                if t == raw:
                    tags[s] = "B"
                    tags[s + 1:e] = ["I"] * (e - s - 1)
            out.append({"words": [label, ":"] + ex.tokens, "ner": ["O", "O"] + tags})
        return out

    def gold(self, ex: Ex) -> dict[str, set]:
        return {"entity": {(s, e, t) for s, e, t in ex.entities}}

    def predict(self, extractor, examples, batch_size: int = 64) -> list[dict[str, set]]:
        raw = {v: k for k, v in self.labels.items()}
        res = extractor.extract([ex.tokens for ex in examples], list(self.labels.values()))
        return [{"entity": {(sp.word_start, sp.word_end, raw[sp.label]) for sp in spans}} for spans in res]


def fake_score(dataset, gold, pred) -> dict:
    subs = sorted({k for g in gold for k in g})
    return {s: prf([g[s] for g in gold], [p.get(s, set()) for p in pred]) for s in subs}


class OracleExtractor:
    """Predicts every capitalised word as a span of every label: PER right on people, LOC right on places."""

    def extract(self, texts, labels):
        out = []
        for words in texts:
            spans = []
            for lab in labels:
                pool = PEOPLE if lab == "Person" else PLACES
                for i, w in enumerate(words):
                    if w in pool:
                        spans.append(type("S", (), {"label": lab, "word_start": i, "word_end": i + 1})())
            out.append(spans)
        return out


# ------------------------------------------------------------------------------------------- sampler
def test_sampler_is_deterministic_per_seed_and_varies_across_seeds():
    ds = FakeNER(n_train=200)
    pool = ds.load("train")
    a = sample_support(pool, ds.example_types, k=3, seed=7)
    b = sample_support(pool, ds.example_types, k=3, seed=7)
    others = {tuple(sample_support(pool, ds.example_types, k=3, seed=s)) for s in range(8, 14)}
    assert a == b
    assert len(others | {tuple(a)}) > 1


@pytest.mark.parametrize("k", [1, 2, 5])
def test_sampler_covers_every_type_k_times(k):
    ds = FakeNER(n_train=60)
    pool = ds.load("train")
    counts_of = lambda ex: Counter(t for *_, t in ex.entities)  # noqa: E731
    idx = sample_support(pool, ds.example_types, k=k, seed=0, counts_of=counts_of)
    got = Counter(t for i in idx for *_, t in pool[i].entities)
    assert got["PER"] >= k and got["LOC"] >= k
    # greedy: every kept sentence was needed when it was added, so no sentence without entities is kept
    assert all(pool[i].entities for i in idx)
    assert len(idx) <= 2 * k


def test_sampler_counts_mentions_not_sentences():
    pool = [{"PER": 3}, {"LOC": 1}, {"LOC": 1}, {"PER": 1}]
    idx = sample_support(pool, lambda ex: set(ex), k=2, seed=0, counts_of=lambda ex: ex)
    got = Counter()
    for i in idx:
        got.update(pool[i])
    assert got["LOC"] == 2 and got["PER"] >= 2


def test_k_larger_than_split_allows_names_the_numbers():
    pool = [{"PER"}, {"PER"}, {"LOC"}]
    with pytest.raises(FewShotError) as e:
        sample_support(pool, lambda ex: ex, k=3, seed=0, where="the train split of toy")
    msg = str(e.value)
    assert "K=3" in msg and "'LOC': 1" in msg and "'PER': 2" in msg and "<= 2" in msg and "3 sentences" in msg


def test_a_rare_type_is_sampled_best_effort():
    pool = [{"PER"}, {"PER"}, {"PER"}, {"LOC"}, set()]
    idx = sample_support(pool, lambda ex: ex, k=2, seed=0)
    got = Counter(t for i in idx for t in pool[i])
    assert got == {"PER": 2, "LOC": 1}
    assert support.short_types(pool, lambda ex: ex, 2) == {"LOC": 1}


def test_per_type_sampler_gives_k_sentences_per_type():
    ds = FakeNER(n_train=60)
    pool = ds.load("train")
    idx = sample_support(pool, ds.example_types, k=5, seed=1, method="per-type")
    assert len(idx) == 10 and len(set(idx)) == 10
    assert idx == sample_support(pool, ds.example_types, k=5, seed=1, method="per-type")


def test_capped_test_is_fixed_and_ordered():
    xs = list(range(100))
    a, b = capped_test(xs, 10), capped_test(xs, 10)
    assert a == b and a == sorted(a) and len(a) == 10
    assert capped_test(xs, 0) == xs and capped_test(xs, 500) == xs


def test_unknown_initialization_is_rejected():
    with pytest.raises(Exception, match="unknown initializations"):
        EvalConfig(initializations=["vanila"])


def test_unknown_dataset_lists_known_ones():
    pytest.importorskip("metaie_utils.tasks")
    from metaie_utils import tasks

    if not hasattr(tasks, "DATASETS"):
        pytest.skip("tasks registry not in this checkout yet")
    with pytest.raises(FewShotError, match="Known datasets: .*conll2003"):
        fewshot._real_get_dataset("conll2033")


# ------------------------------------------------------------------------------------------- helpers
def test_instance_spans_and_demonstrations():
    inst = {"words": ["Other", "entity", ":", "EU", "rejects", "German", "call"],
            "ner": ["O", "O", "O", "B", "O", "B", "O"]}
    assert instance_spans(inst) == [(0, 1), (2, 3)]
    assert demonstrations([inst]) == [(["EU", "rejects", "German", "call"], [("Other entity", "EU"), ("Other entity", "German")])]


def test_icl_messages_and_parser_round_trip():
    demos = [(["Ann", "sings", "in", "Rome"], [("Person", "Ann"), ("Location", "Rome")])]
    msgs = icl_messages(["Tom", "visits", "Paris"], ["Person", "Location"], demos)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[2]["content"] == "- Person: Ann\n- Location: Rome" and msgs[-1]["content"] == "Tom visits Paris"
    spans = parse_icl_response("- Person: Tom\n- location: paris\n- Date: today\n- Person: Zed", ["Tom", "visits", "Paris"],
                               ["Person", "Location"])
    assert [(s.label, s.word_start, s.word_end, s.text) for s in spans] == [("Person", 0, 1, "Tom"), ("Location", 2, 3, "Paris")]
    assert spans[1].start == 11 and spans[1].end == 16


def test_icl_prompts_of_one_stage_share_everything_but_the_last_message():
    """llama.cpp re-reads only what differs from the previous prompt: with the queries in the last message, the
    second-stage prompts of one support set (each naming its own anchors) share the system prompt and every
    demonstration; the demonstrations show their own second-stage answers with their own queries."""
    demos = [(["Ann", "lives", "in", "Rome"], [("Person", "Ann"), ("Location", "Rome"), ("Ann lives in", "Rome")]),
             (["Bob", "sings"], [("Person", "Bob")])]
    fixed = frozenset({"Person", "Location"})
    a = icl_messages(["Tom", "lives", "in", "Oslo"], ["Tom lives in"], demos, task="re", fixed_labels=fixed)
    b = icl_messages(["Eve", "works", "for", "IBM", "in", "Paris"], ["Eve works for", "Eve lives in"], demos,
                     task="re", fixed_labels=fixed)
    assert a[:-1] == b[:-1] and a[-1] != b[-1]
    assert b[-1]["content"] == "Eve works for IBM in Paris\nQueries: Eve works for; Eve lives in"
    assert a[1]["content"].endswith("Queries: Ann lives in") and a[2]["content"] == "- Ann lives in: Rome"
    assert a[3]["content"].endswith("Queries: -") and a[4]["content"] == "- none"
    # first stage: every demonstration is asked (and answers) the same queries as the sentence
    c = icl_messages(["Tom", "runs"], ["Person", "Location"], demos, task="re", fixed_labels=fixed)
    assert c[1]["content"].endswith("Queries: Person; Location") and c[2]["content"] == "- Person: Ann\n- Location: Rome"
    # the word budget counts the queries too: a demonstration that does not fit is dropped
    assert len(icl_messages(["Tom", "runs"], ["Person", "Location"], demos, max_words=12, task="re", fixed_labels=fixed)) == 4


def test_icl_queries_with_quotes_are_shown_plain_and_matched_however_the_teacher_quotes_them():
    """ASTE's and CASIE's second-stage queries name words in quotes; the support instances hold them as the
    tokenizer's `` x '' and the 0.5B teacher copied them back as "x '', so no answer matched its query and
    14lap triplets scored 0.0 even on gold opinions."""
    from metaie_utils.stages.fewshot.baselines import plain_quotes

    q = 'Term for Positive Opinion "hard for me"'
    demos = [(["the", "screen", "is", "good"], [("Positive opinion term", "good"), ("Term for Positive Opinion `` good ''", "screen")])]
    msgs = icl_messages(["it", "is", "hard", "for", "me"], [q], demos, task="aste",
                        fixed_labels=frozenset({"Positive opinion term"}))
    assert msgs[1]["content"].endswith('Queries: Term for Positive Opinion "good"')
    assert msgs[2]["content"] == '- Term for Positive Opinion "good": screen' and msgs[-1]["content"].endswith(q)
    words = ["the", "laptop", "is", "hard", "for", "me"]
    for answer in ("- Term for Positive Opinion \"hard for me '': laptop", "- term for positive opinion ``hard for me'': laptop",
                   f"- {q}: laptop"):
        assert [(s.label, s.word_start) for s in parse_icl_response(answer, words, [q])] == [(q, 1)], answer
    assert parse_icl_response('- Term for Positive Opinion "hard": laptop', words, [q]) == []  # another query
    assert plain_quotes("A0 Argument for Predicate `` loves ''") == 'A0 Argument for Predicate "loves"'


def test_icl_extractor_scores_through_the_dataset():
    ds = FakeNER()

    def complete(chats):
        return ["\n".join(f"- Person: {w}" for w in m[-1]["content"].split() if w in PEOPLE) or "- none" for m in chats]

    ext = IclExtractor(complete=complete, demos=demonstrations(ds.instances(ds.load("train")[0])))
    test = ds.load("test")
    scores = fake_score(ds, [ds.gold(ex) for ex in test], ds.predict(ext, test))
    assert scores["entity"]["precision"] == 1.0 and 0 < scores["entity"]["recall"] < 1


def test_icl_extractor_against_a_real_openai_compatible_server(tmp_path):
    """The fake server answers '- First: <first word of the last user message>'."""
    import sys

    from metaie_utils.stages.fewshot import baselines

    sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "distill"))
    fake_openai = pytest.importorskip("fake_openai")
    cfg = EvalConfig(out_root=str(tmp_path), teacher="fake-model")
    demo = [{"words": ["First", ":", "Ann", "sings"], "ner": ["O", "O", "B", "O"]}]
    with fake_openai.FakeOpenAI() as srv:
        cfg = cfg.model_copy(update={"base_url": srv.base_url})
        ext = baselines.icl_extractor(cfg, demo, dataset=None)
        out = ext.extract([["Tom", "visits", "Tom"], ["Zed", "sees", "Oslo"]], ["First", "Location"])
        ext.close()
    assert [[(s.label, s.word_start) for s in spans] for spans in out] == [[("First", 0), ("First", 2)], [("First", 0)]]
    assert (tmp_path / "baselines" / "icl-cache.sqlite").is_file()


def test_subsample_is_seeded():
    xs = list(range(100))
    assert subsample(xs, 10, 3) == subsample(xs, 10, 3) != subsample(xs, 10, 4)
    assert subsample(xs, 0, 3) == xs


def test_negative_subsampling_keeps_every_positive_and_caps_the_all_o_share():
    pos = [{"words": ["a"], "ner": ["B"], "id": i} for i in range(10)]
    neg = [{"words": ["a"], "ner": ["O"], "id": 100 + i} for i in range(90)]
    mixed = [x for pair in zip(pos * 9, neg) for x in pair][:100]
    items = pos + neg
    out = fewshot.subsample_negatives(items, 0.5, seed=0)
    assert [x for x in out if x["ner"] == ["B"]] == pos and len(out) == 20       # all 10 positives + 10 negatives
    assert out == fewshot.subsample_negatives(items, 0.5, seed=0) != fewshot.subsample_negatives(items, 0.5, seed=1)
    assert [x["id"] for x in out] == sorted(x["id"] for x in out)                 # order kept
    assert fewshot.subsample_negatives(items, 0.0, 0) == items                    # off
    assert len(fewshot.subsample_negatives(pos + neg[:3], 0.5, 0)) == 13         # fewer negatives than the cap: all kept
    assert fewshot.subsample_negatives(neg, 0.5, 0) == neg                        # no positive: nothing to balance
    with pytest.raises(fewshot.FewShotError, match="fewshot_neg_share = 1.0"):
        fewshot.subsample_negatives(mixed, 1.0, 0)


def test_find_upstream_walks_manifests(tmp_path):
    r1 = tmp_path / "01_sample_corpus" / "a"
    r2 = tmp_path / "02_distill_llm" / "a"
    r1.mkdir(parents=True), r2.mkdir(parents=True)
    (r1 / "sentences.jsonl").write_text("{}\n")
    (r1 / "manifest.json").write_text(json.dumps({"stage": "01_sample_corpus", "params": {}}))
    pytest.importorskip("metaie_utils.llm.client")
    (r2 / "manifest.json").write_text(json.dumps({"stage": "02_distill_llm", "params": {"input_dir": str(r1)}}))
    assert find_upstream(r2, "sentences.jsonl") == r1 / "sentences.jsonl"
    assert find_upstream(r2, "nothing.json") is None


def test_summary_mean_std_in_percent():
    rows = [{"dataset": "d", "subtask": "entity", "initialization": "vanilla", "seed": s, "f1": f, "precision": f,
             "recall": f, "n_test": 10, "test_cap": 10, "shots": 5} for s, f in [(0, 0.5), (1, 0.7)]]
    s = summarize(rows)
    assert s.loc[0, "f1"] == 60.0 and s.loc[0, "f1_std"] == pytest.approx(14.14, abs=0.01) and s.loc[0, "n_seeds"] == 2
    assert summary_metrics(s)["d"]["entity"]["vanilla"]["f1"] == 60.0


# ------------------------------------------------------------------------------------------- the loop
def test_loop_with_fake_trainer_is_paired_resumable_and_skips_metaie(tmp_path):
    ds = FakeNER()
    trained = []

    def train(instances, init, out, cfg, seed):
        trained.append((init, seed, len(instances)))
        return out

    backend = Backend(get_dataset=lambda n: ds, score=fake_score, train=train,
                      load_extractor=lambda p, cfg: OracleExtractor(), icl_extractor=lambda *a: None,
                      build_init=lambda name, cfg: f"/init/{name}")
    cfg = EvalConfig(datasets=["fake"], initializations=["vanilla", "metaie"], shots=2, fewshot_seeds=2,
                     test_cap=8, meta_model="")
    logs = []
    rows = run_fewshot(cfg, tmp_path, backend, log=logs.append)
    assert {r["initialization"] for r in rows} == {"vanilla"} and len(rows) == 2
    assert all(float(r["f1"]) == 1.0 and r["n_test"] == "8" for r in rows)
    assert json.loads((tmp_path / "notes.json").read_text())["metaie"].startswith("skipped")
    sup = json.loads((tmp_path / "support" / "fake" / "seed0.json").read_text())
    assert sup["type_counts"]["PER"] >= 2 and sup["type_counts"]["LOC"] >= 2 and sup["shots"] == 2
    # resume: nothing is retrained
    n = len(trained)
    run_fewshot(cfg, tmp_path, backend, log=logs.append)
    assert len(trained) == n
    summary = write_summary(tmp_path)
    assert (tmp_path / "summary.csv").is_file() and summary.loc[0, "f1"] == 100.0
    # resuming (or extending to more seeds) under another recipe is refused, naming what differs
    other = cfg.model_copy(update={"fewshot_neg_share": 0.0, "fewshot_seeds": 3})
    with pytest.raises(fewshot.FewShotError, match=r"neg_share: recorded 0.5, asked 0.0"):
        run_fewshot(other, tmp_path, backend, log=logs.append)
    assert len(trained) == n
    run_fewshot(cfg.model_copy(update={"fewshot_seeds": 3}), tmp_path, backend, log=logs.append)  # same recipe
    assert len(trained) == n + 1


def test_two_workers_writing_one_support_file_never_lose_each_others_tmp(tmp_path, monkeypatch):
    """The flaky CI failure of session 20 (FileNotFoundError in a paper-path fine-tune), replayed: two few-shot
    workers write the authors' fixed support file at once. Worker B's write and rename happen between worker A's
    write and A's rename; with one shared tmp name, A's rename then finds its tmp gone."""
    import os

    ds = FakeNER("conll2003-authors")
    cfg = EvalConfig(datasets=["conll2003-authors"], initializations=["vanilla"], shots=2, test_cap=4)
    real_replace, calls = os.replace, []

    def interleaved(src, dst):
        calls.append(str(dst))
        if len(calls) == 1:  # worker A is about to rename: worker B runs to completion first
            fewshot.prepare_support(ds, "conll2003-authors", cfg, 0, tmp_path)
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", interleaved)
    fewshot.prepare_support(ds, "conll2003-authors", cfg, 0, tmp_path)
    path = tmp_path / "support" / "conll2003-authors" / "seed0.json"
    assert len(calls) == 2 and json.loads(path.read_text())["fixed"] is True
    assert [p.name for p in path.parent.iterdir()] == ["seed0.json"]  # no tmp file left behind
    # a fixed support file already written is read, not written again (each worker used to rewrite it)
    fewshot.prepare_support(ds, "conll2003-authors", cfg, 0, tmp_path)
    assert len(calls) == 2


def test_fewshot_precision_auto_is_bf16_only_on_a_cpu_with_bf16_units(monkeypatch):
    from metaie_utils.core import device as dev

    monkeypatch.setattr(dev, "pick_device", lambda prefer="auto": "cpu")
    monkeypatch.setattr(dev, "cpu_bf16_units", lambda: "avx512_bf16")
    assert fewshot.fewshot_precision(EvalConfig()) == "bf16"
    assert fewshot.recipe_dict(EvalConfig())["precision"] == "bf16"  # the recipe records what ran, not "auto"
    assert fewshot.fewshot_recipe(EvalConfig(), seed=0).precision == "bf16"
    assert fewshot.fewshot_precision(EvalConfig(fewshot_precision="fp32")) == "fp32"  # exact, one flag away
    monkeypatch.setattr(dev, "cpu_bf16_units", lambda: "")
    assert fewshot.fewshot_precision(EvalConfig()) == "fp32"  # no bf16 units: never emulated
    monkeypatch.setattr(dev, "pick_device", lambda prefer="auto": "mps")
    assert fewshot.fewshot_precision(EvalConfig()) == "fp32"


def test_resume_refuses_a_precision_change_hidden_in_auto(tmp_path, monkeypatch):
    """Rows written when ``auto`` meant fp32 on a CPU (recipe ``precision=auto``, ``train_precision`` fp32) extend
    under an explicit fp32, but not under an ``auto`` that now resolves to bf16."""
    import csv

    from metaie_utils.core import device as dev

    monkeypatch.setattr(dev, "pick_device", lambda prefer="auto": "cpu")
    monkeypatch.setattr(dev, "cpu_bf16_units", lambda: "avx512_bf16")
    trained = []
    backend = Backend(get_dataset=lambda n: FakeNER(), score=fake_score,
                      train=lambda instances, init, out, cfg, seed: trained.append(seed) or out,
                      load_extractor=lambda p, cfg: OracleExtractor(), icl_extractor=lambda *a: None,
                      build_init=lambda name, cfg: f"/init/{name}")
    cfg = EvalConfig(datasets=["fake"], initializations=["vanilla"], shots=2, fewshot_seeds=1, test_cap=8,
                     meta_model="", fewshot_precision="fp32")
    run_fewshot(cfg, tmp_path, backend, log=lambda m: None)
    path = tmp_path / "results.csv"
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert "precision=fp32" in rows[0]["recipe"]
    for r in rows:  # as an older results.csv has it
        r["recipe"] = r["recipe"].replace("precision=fp32", "precision=auto")
        r["train_precision"] = "fp32"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(fewshot.FewShotError, match=r"precision: recorded fp32, asked bf16"):
        run_fewshot(cfg.model_copy(update={"fewshot_precision": "auto", "fewshot_seeds": 2}), tmp_path, backend,
                    log=lambda m: None)
    run_fewshot(cfg.model_copy(update={"fewshot_seeds": 2}), tmp_path, backend, log=lambda m: None)
    assert trained == [0, 1]


def test_append_results_widens_an_old_header_without_losing_rows(tmp_path):
    import csv

    path = tmp_path / "results.csv"
    path.write_text("dataset,initialization,seed,f1,legacy\nconll2003,vanilla,0,0.5,x\n")
    fewshot.append_results(path, [{"dataset": "conll2003", "initialization": "metaie", "seed": 0, "f1": 0.6,
                                   "train_s": 12.5, "train_precision": "bf16"}])
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    header = list(rows[0])
    assert header[:5] == ["dataset", "initialization", "seed", "f1", "legacy"]  # old columns first, kept
    assert set(fewshot.RESULT_FIELDS) <= set(header)
    assert rows[0]["legacy"] == "x" and rows[0]["train_s"] == "" and rows[0]["f1"] == "0.5"
    assert rows[1]["train_s"] == "12.5" and rows[1]["train_precision"] == "bf16" and rows[1]["legacy"] == ""
    fewshot.append_results(path, [{"dataset": "conll04", "initialization": "vanilla", "seed": 1, "train_s": 3}])
    with path.open(newline="") as f:
        assert [r["train_s"] for r in csv.DictReader(f)] == ["", "12.5", "3"]
    assert not list(tmp_path.glob("*.tmp"))


class SilentExtractor:
    """A collapsed fine-tune: predicts no span for any query."""

    def extract(self, texts, labels, **kw):
        return [[] for _ in texts]


def test_a_collapsed_fine_tune_is_flagged_in_results_summary_and_report(tmp_path):
    ds = FakeNER()
    backend = Backend(get_dataset=lambda n: ds, score=fake_score, train=lambda i, init, out, cfg, seed: out,
                      load_extractor=lambda p, cfg: SilentExtractor() if "vanilla" in str(p) else OracleExtractor(),
                      icl_extractor=lambda *a: None, build_init=lambda name, cfg: f"/init/{name}")
    cfg = EvalConfig(datasets=["fake"], initializations=["vanilla", "metaie"], shots=2, fewshot_seeds=1,
                     test_cap=8, meta_model="/some/meta")
    logs = []
    rows = run_fewshot(cfg, tmp_path, backend, log=logs.append)
    by_init = {r["initialization"]: r for r in rows}
    assert by_init["vanilla"]["collapsed"] == "support+test" and by_init["vanilla"]["support_n_pred"] == "0"
    assert by_init["metaie"]["collapsed"] == "" and int(by_init["metaie"]["support_n_pred"]) > 0
    assert any("collapsed" in m and "vanilla" in m and "lr=" in m for m in logs)  # with the recipe
    summary = write_summary(tmp_path)
    assert dict(zip(summary["initialization"], summary["collapsed"])) == {"vanilla": "1/1", "metaie": "0/1"}
    assert "collapsed" in fewshot.summary_table(summary).loc[("fake", "entity"), "vanilla"]
    assert "collapsed" not in fewshot.summary_table(summary).loc[("fake", "entity"), "metaie"]


def test_a_fine_tune_that_does_not_fit_its_support_is_retrained_once_with_twice_the_steps(tmp_path):
    """Issue 13: 14lap ASTE's vanilla opinion stage predicted nothing, on its support sentences or the test ones,
    after 300 steps. The rule looks at the support set only: a model that predicts no span there is trained
    again from its initialization (not resumed) with twice the budget; both initializations are under it."""
    ds = FakeNER()
    trained = []

    def train(instances, init, out, cfg, seed):
        assert not (Path(out) / "marker").exists(), "the retry resumed from the collapsed model"
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "marker").write_text(init)
        trained.append((init, cfg.fewshot_max_steps, cfg.fewshot_min_epochs))
        return out

    def load(path, cfg):  # vanilla fits only with the doubled budget
        return OracleExtractor() if "metaie" in str(path) or cfg.fewshot_max_steps >= 600 else SilentExtractor()

    backend = Backend(get_dataset=lambda n: ds, score=fake_score, train=train, load_extractor=load,
                      icl_extractor=lambda *a: None, build_init=lambda name, cfg: f"/init/{name}")
    cfg = EvalConfig(datasets=["fake"], initializations=["vanilla", "metaie"], shots=2, fewshot_seeds=1, test_cap=8,
                     meta_model="/some/meta", fewshot_workers=1)
    rows = {r["initialization"]: r for r in run_fewshot(cfg, tmp_path / "a", backend, log=lambda m: None)}
    assert sorted(trained) == [("/init/metaie", 300, 3.0), ("/init/vanilla", 300, 3.0), ("/init/vanilla", 600, 6.0)]
    assert (rows["vanilla"]["train_attempts"], rows["vanilla"]["collapsed"]) == ("2", "")
    assert (rows["metaie"]["train_attempts"], rows["metaie"]["collapsed"]) == ("1", "")
    assert "collapse_retries=1" in rows["vanilla"]["recipe"]
    trained.clear()  # the rule off (the authors' recipe): the collapse stands and is flagged
    rows = {r["initialization"]: r for r in run_fewshot(cfg.model_copy(update={"fewshot_collapse_retries": 0}),
                                                         tmp_path / "b", backend, log=lambda m: None)}
    assert sorted(trained) == [("/init/metaie", 300, 3.0), ("/init/vanilla", 300, 3.0)]
    assert (rows["vanilla"]["train_attempts"], rows["vanilla"]["collapsed"]) == ("1", "support+test")


def _tiny_model(path: Path) -> str:
    """A randomly initialised 2-layer BERT (hidden 32) with a word-level vocab, saved to ``path``."""
    from transformers import BertConfig, BertForTokenClassification, BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ":", "person", "location"] + \
        sorted({w.lower() for w in PEOPLE + PLACES + FILLER})
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizerFast(vocab_file=str(path / "vocab.txt"), do_lower_case=True)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64, num_labels=3, id2label={0: "O", 1: "B", 2: "I"}, label2id={"O": 0, "B": 1, "I": 2})
    BertForTokenClassification(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def test_end_to_end_loop_on_a_tiny_random_model(tmp_path):
    pytest.importorskip("metaie_utils.models.trainer")
    pytest.importorskip("metaie_utils.models.extractor")
    init = _tiny_model(tmp_path / "tiny")
    ds = FakeNER(n_train=24, n_test=8)
    backend = Backend(get_dataset=lambda n: ds, score=fake_score, icl_extractor=lambda *a: None,
                      build_init=lambda name, cfg: init)
    cfg = EvalConfig(datasets=["fake"], initializations=["vanilla"], shots=1, fewshot_seeds=1, test_cap=0,
                     fewshot_lr=5e-3, fewshot_epochs=2, fewshot_batch_size=4, device="cpu", meta_model="")
    rows = run_fewshot(cfg, tmp_path / "run", backend, log=lambda m: None)
    assert len(rows) == 1 and rows[0]["subtask"] == "entity" and rows[0]["n_test"] == "8"
    n_gold = sum(len(ex.entities) for ex in ds.load("test"))
    assert int(rows[0]["n_gold"]) == n_gold and 0.0 <= float(rows[0]["f1"]) <= 1.0
    sup = json.loads((tmp_path / "run" / "support" / "fake" / "seed0.json").read_text())
    assert int(rows[0]["n_instances"]) == 2 * sup["n_sentences"] == len(sup["instances"])  # 2 labels per sentence
    assert not (tmp_path / "run" / "work").exists()  # keep_models=False: fine-tuned checkpoints deleted
    # the window is recorded with what it cut: training truncation and test queries read in windows (issue 15)
    assert int(rows[0]["max_length"]) > 0 and rows[0]["train_truncated"] == f"0/{rows[0]['n_instances']}"
    windowed, asked = map(int, rows[0]["test_windowed"].split("/"))
    assert windowed == 0 and asked == 2 * 8  # 2 labels x 8 test sentences, all shorter than the window


# ------------------------------------------------------------------------------------------- baselines
def test_ner_distilled_checkpoint_is_count_matched_and_cached(tmp_path, monkeypatch):
    from metaie_utils import models
    from metaie_utils.stages import train as training
    from metaie_utils.stages.fewshot import baselines

    responses = tmp_path / "responses.jsonl"
    rows = [{"id": f"s{i}", "text": t, "response": r, "model": "m", "prompt_version": "ner-v1", "sample_index": 0,
             "finish_reason": "stop", "error": None}
            for i, (t, r) in enumerate([("Tom visits Paris .", "- Person: Tom\n- Location: Paris"),
                                        ("Ann likes Rome .", "- Person: Ann\n- City: Rome"),
                                        ("Bob sees Oslo .", "- Person: Bob")])]
    responses.write_text("".join(json.dumps(r) + "\n" for r in rows))
    calls = []

    def fake_finetune(instances, init, out, recipe, architecture="seqlabel", **kw):
        calls.append((len(instances), init, recipe.lr))
        Path(out).mkdir(parents=True, exist_ok=True)
        return Path(out)

    monkeypatch.setattr(models, "finetune", fake_finetune)
    cfg = EvalConfig(out_root=str(tmp_path / "out"), ner_responses=str(responses), baseline_instances=3, meta_model="")
    ckpt = baselines.ner_distilled_checkpoint(cfg)
    assert calls == [(3, "minilm-l6", training.TrainConfig().meta_lr)]  # 5 instances -> 3, 04's default recipe
    saved = json.loads((ckpt.parent / "instances.json").read_text())
    assert len(saved) == 3 and all(i["words"][1] == ":" or ":" in i["words"] for i in saved)
    assert baselines.ner_distilled_checkpoint(cfg) == ckpt and len(calls) == 1  # finished checkpoint reused


def test_multiie_pools_train_instances_of_every_source(monkeypatch):
    from metaie_utils.stages.fewshot import baselines

    got = baselines.multiie_instances(["ncbi-disease", "casie"], get_dataset=lambda n: FakeNER(n, n_train=6))
    assert len(got) == 2 * 6 * 2 and {i["source"] for i in got} == {"ncbi-disease", "casie"}
    with pytest.raises(baselines.BaselineError, match="FewNERD"):
        baselines.multiie_instances(["fewnerd"], get_dataset=lambda n: FakeNER())


def test_cli_config_layers_flags_over_params():
    import argparse

    args = argparse.Namespace(model="", dataset=["wnut17"], shots=3, seeds=2, seed=None, test_cap=7, backbone=None,
                              init=None, run_name="x", params=["params/smoke.yaml"], set=["fewshot_lr=0.001"])
    cfg = fewshot.config_from_args(args)
    assert (cfg.datasets, cfg.shots, cfg.fewshot_seeds, cfg.test_cap, cfg.fewshot_lr, cfg.run_name) == (["wnut17"], 3, 2, 7, 0.001, "x")
    assert "metaie" not in cfg.initializations  # no --model: metaie dropped instead of noted


def test_cli_seeds_default_to_the_protocols_three_unless_params_say_otherwise(tmp_path):
    import argparse

    def cfg(params=None, sets=None, seeds=None):
        args = argparse.Namespace(model="", dataset=["conll2003"], shots=None, seeds=seeds, seed=None, test_cap=None,
                                  backbone=None, init=None, run_name="x", params=params, set=sets)
        return fewshot.config_from_args(args).fewshot_seeds

    one = tmp_path / "one.yaml"
    one.write_text("fewshot_seeds: 1\n")
    assert cfg() == fewshot.PROTOCOL_SEEDS == 3          # defaults.yaml's 1 is make run's, not evaluate's
    assert cfg(params=[str(one)]) == 1 and cfg(sets=["fewshot_seeds=2"]) == 2 and cfg(seeds=5) == 5


def test_cli_unknown_dataset_exits_2(capsys):
    from metaie_utils.cli import main

    assert main(["evaluate", "--dataset", "conll2033"]) == 2
    err = capsys.readouterr().err
    assert "Unknown dataset 'conll2033'" in err and "conll2003" in err


def test_cli_evaluate_that_fails_records_it_in_the_manifest(tmp_path, monkeypatch):
    """``evaluate`` runs stage 05 in-process (no papermill): an error in it marks its manifest "failed" with the
    error, where it used to read "running" for ever; the error itself still propagates (a traceback)."""
    import json

    from metaie_utils.cli import main
    from metaie_utils.stages.fewshot import loop

    def boom(cfg, run_dir):
        (run_dir / "results.csv").write_text("dataset\n")
        raise RuntimeError("worker died: exit code -9")

    monkeypatch.setattr(loop, "run_fewshot", boom)
    with pytest.raises(RuntimeError, match="worker died"):
        main(["evaluate", "--dataset", "conll2003", "--run-name", "dies", "--set", f"out_root={tmp_path}"])
    m = json.loads((tmp_path / "05_fewshot_eval" / "dies" / "manifest.json").read_text())
    assert m["status"] == "failed" and m["stop_reason"] == "RuntimeError: worker died: exit code -9" and m["end_time"]


def test_plot_draws_one_bar_per_dataset_subtask_and_init():
    import matplotlib

    matplotlib.use("Agg")
    from metaie_utils.plots.eval import plot_results

    rows = [{"dataset": d, "subtask": "entity", "initialization": i, "seed": 0, "f1": 0.5, "precision": 0.5, "recall": 0.5,
             "n_test": 10, "test_cap": 10, "shots": 5} for d in ("a", "b") for i in ("metaie", "vanilla")]
    fig = plot_results(summarize(rows))
    ax = fig.axes[0]
    assert len(ax.patches) == 4 and [t.get_text() for t in ax.get_legend().get_texts()] == ["vanilla", "metaie"]
    assert {round(p.get_height(), 1) for p in ax.patches} == {50.0}


def _fake_run(root: Path, stage: str, params: dict, files: dict[str, str], name: str = "r") -> Path:
    d = root / stage / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "manifest.json").write_text(json.dumps({"stage": stage, "params": params}))
    for name, text in files.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(text)
    return d


def test_ner_distillation_follows_provenance_to_metaie_sentences_and_teacher(tmp_path, monkeypatch):
    """04 -> 03 -> 02 -> 01 manifests lead to MetaIE's sentences and teacher; the teacher (a real local
    OpenAI-compatible server) is asked with prompt ner-icl-v1; the NER instances are count-matched to MetaIE's."""
    import sys

    from metaie_utils import models
    from metaie_utils.stages.fewshot import baselines

    sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "distill"))
    fake_openai = pytest.importorskip("fake_openai")
    sents = [{"id": f"s{i}", "text": f"Word{i} met Ann in Rome .", "source": "t", "doc_id": "d"} for i in range(6)]
    calls = []

    def fake_finetune(instances, init, out, recipe, architecture="seqlabel", **kw):
        calls.append(instances)
        Path(out).mkdir(parents=True, exist_ok=True)
        return Path(out)

    monkeypatch.setattr(models, "finetune", fake_finetune)
    with fake_openai.FakeOpenAI() as srv:
        r1 = _fake_run(tmp_path, "01_sample_corpus", {}, {"sentences.jsonl": "".join(json.dumps(s) + "\n" for s in sents)})
        r2 = _fake_run(tmp_path, "02_distill_llm", {"input_dir": str(r1), "teacher": "fake-model", "base_url": srv.base_url,
                                                    "prompt_version": "metaie-v1"}, {"responses.jsonl": ""})
        metaie_instances = [{"words": ["First", ":", "Word0"], "ner": ["O", "O", "B"]}] * 4
        r3 = _fake_run(tmp_path, "03_convert_bio", {"input_dir": str(r2)}, {"instances.json": json.dumps(metaie_instances)})
        r4 = _fake_run(tmp_path, "04_train_meta_model", {"input_dir": str(r3), "meta_lr": 3e-5}, {"model/config.json": "{}"})
        cfg = EvalConfig(out_root=str(tmp_path / "out"), meta_model=str(r4))
        ckpt = baselines.ner_distilled_checkpoint(cfg)
        asked = sum(srv.served.values())
    assert asked == 6  # one ner-icl-v1 request per MetaIE sentence
    assert len(calls) == 1 and len(calls[0]) == 4  # 6 NER instances subsampled to MetaIE's 4
    assert all(i["words"][:2] == ["First", ":"] and "B" in i["ner"] for i in calls[0])
    rows = [json.loads(x) for x in (ckpt.parent.parent.glob("ner-responses-*/responses.jsonl")).__next__().read_text().splitlines()]
    assert {r["prompt_version"] for r in rows} == {"ner-icl-v1"} and len(rows) == 6
    info = json.loads((ckpt.parent / "baseline.json").read_text())
    assert info["settings"]["train"]["meta_lr"] == 3e-5  # 04's recipe, read from its manifest
    assert (info["settings"]["n_sentences"], info["settings"]["n_metaie_sentences"]) == (6, 6)

    # MetaIE has more instances than NER gives on its sentences: the teacher is asked more sentences of the
    # same sampler (2x first) until the counts match, and both counts are recorded
    pool = [{"id": f"x{i}", "text": f"Extra{i} met Bob in Oslo .", "source": "t", "doc_id": "e"} for i in range(40)]
    monkeypatch.setattr(baselines, "more_ner_sentences", lambda cfg, have, n_total: pool[:n_total - len(have)])
    calls.clear()
    with fake_openai.FakeOpenAI() as srv:
        r2b = _fake_run(tmp_path, "02_distill_llm", {"input_dir": str(r1), "teacher": "fake-model", "base_url": srv.base_url,
                                                     "prompt_version": "metaie-v1", "seed": 5}, {"responses.jsonl": ""}, name="b")
        r3b = _fake_run(tmp_path, "03_convert_bio", {"input_dir": str(r2b)},
                        {"instances.json": json.dumps(metaie_instances * 3)}, name="b")  # 12 MetaIE instances
        r4b = _fake_run(tmp_path, "04_train_meta_model", {"input_dir": str(r3b)}, {"model/config.json": "{}"}, name="b")
        ckpt = baselines.ner_distilled_checkpoint(EvalConfig(out_root=str(tmp_path / "out"), meta_model=str(r4b)))
        asked = sum(srv.served.values())
    info = json.loads((ckpt.parent / "baseline.json").read_text())["settings"]
    assert asked == 6 + 6 and len(calls[0]) == 12  # 6 sentences gave 6 instances; 6 more (2x) gave the 12 to match
    assert (info["n"], info["n_requested"], info["n_sentences"], info["n_metaie_sentences"]) == (12, 12, 12, 6)


def test_two_worker_processes_record_the_same_jobs_as_one(tmp_path):
    """fewshot_workers=2 runs fine-tunes in spawned processes (one thread each) through the picklable default
    Backend, on a user's CoNLL files: one row set per job, written by the parent only, and resumable."""
    pytest.importorskip("metaie_utils.models.trainer")
    init = _tiny_model(tmp_path / "tiny")
    for split, n in (("train", 12), ("test", 4)):
        lines = []
        for ex in make_examples(n, 7 if split == "train" else 8):
            tags = ["O"] * len(ex.tokens)
            for s, e, t in ex.entities:
                tags[s:e] = [f"B-{t}"] + [f"I-{t}"] * (e - s - 1)
            lines += [f"{w} {t}" for w, t in zip(ex.tokens, tags)] + [""]
        (tmp_path / f"{split}.txt").write_text("\n".join(lines) + "\n")
    spec = f"conll-bio:train={tmp_path / 'train.txt'},test={tmp_path / 'test.txt'},labels=PER:Person;LOC:Location"
    base = dict(datasets=[spec], initializations=["vanilla"], shots=1, fewshot_seeds=2, test_cap=0, backbone=init,
                fewshot_lr=5e-3, fewshot_max_steps=3, fewshot_batch_size=4, device="cpu", meta_model="")
    logs: list[str] = []
    par = run_fewshot(EvalConfig(**base, fewshot_workers=2), tmp_path / "par", log=logs.append)
    seq = run_fewshot(EvalConfig(**base, fewshot_workers=1), tmp_path / "seq", log=lambda m: None)
    key = lambda r: (r["initialization"], r["seed"], r["subtask"], r["n_instances"], r["n_gold"])  # noqa: E731
    assert sorted(map(key, par)) == sorted(map(key, seq)) and len(par) == 2
    assert any("2 worker processes, 1 thread(s) each" in m for m in logs)
    counts = [json.loads(x) for x in (tmp_path / "par" / "counts.jsonl").read_text().splitlines()]
    assert sorted({str(c["seed"]) for c in counts}) == ["0", "1"]
    again = run_fewshot(EvalConfig(**base, fewshot_workers=2), tmp_path / "par", log=lambda m: None)
    assert len(again) == 2  # resumed: nothing re-run, nothing appended twice
    with pytest.raises(fewshot.FewShotError, match="fewshot_workers = -1"):
        fewshot.fewshot_workers(EvalConfig(fewshot_workers=-1), 3)


class AnchoredNER(FakeNER):
    """FakeNER with a 'stage 2' that scores differently on gold anchors, and type-free support sentences."""

    gold_anchor_subtasks = ("entity",)
    support_negatives = True

    def predict(self, extractor, examples, batch_size: int = 64, anchors: str = "predicted"):
        if anchors == "gold":  # stage 2 on gold anchors: here, the gold itself
            return [self.gold(ex) for ex in examples]
        return [{"entity": set()} for _ in examples]  # end to end: the first stage found nothing


def test_gold_anchor_rows_and_type_free_support_sentences(tmp_path):
    """Two-stage tasks get a ``<subtask>@gold`` row next to the end-to-end one (issue 15), so a weak first
    stage shows as 0 end to end and high on gold anchors; type-free sentences join the support set."""
    ds = AnchoredNER(n_train=40)
    backend = Backend(get_dataset=lambda n: ds, score=fake_score, train=lambda i, init, out, cfg, seed: out,
                      load_extractor=lambda p, cfg: OracleExtractor(), icl_extractor=lambda *a: None,
                      build_init=lambda name, cfg: f"/init/{name}")
    cfg = EvalConfig(datasets=["fake"], initializations=["vanilla"], shots=2, fewshot_seeds=1, test_cap=8, meta_model="")
    rows = {r["subtask"]: r for r in run_fewshot(cfg, tmp_path, backend, log=lambda m: None)}
    assert set(rows) == {"entity", "entity@gold"}
    assert float(rows["entity"]["f1"]) == 0.0 and float(rows["entity@gold"]["f1"]) == 1.0
    counts = [json.loads(line) for line in (tmp_path / "counts.jsonl").read_text().splitlines()]
    assert {c["subtask"] for c in counts} == {"entity", "entity@gold"}
    sup = json.loads((tmp_path / "support" / "fake" / "seed0.json").read_text())
    pool = ds.load("train")
    free = [i for i in sup["indices"] if not pool[i].entities]
    assert sup["n_type_free"] == len(free) >= 1  # a quarter of the fake pool has no entity
    cfg_off = EvalConfig(datasets=["fake"], initializations=["vanilla"], shots=2, fewshot_seeds=1, test_cap=8,
                         meta_model="", gold_anchor_rows=False)
    rows_off = run_fewshot(cfg_off, tmp_path / "off", backend, log=lambda m: None)
    assert {r["subtask"] for r in rows_off} == {"entity"}


def test_multiie_never_pretrains_on_the_evaluated_dataset(tmp_path):
    """MultiIE is built per evaluated dataset without the sources that are that dataset (issue 15): CASIE's
    train split is a MultiIE source, so evaluating on CASIE gets a checkpoint without it, recorded per row."""
    built = []

    def build_init(name, cfg):
        built.append((name, tuple(cfg.multiie_datasets)))
        return f"/init/{name}-{len(cfg.multiie_datasets)}"

    trained = []
    backend = Backend(get_dataset=lambda n: FakeNER(n), score=fake_score,
                      train=lambda i, init, out, cfg, seed: trained.append((str(out), init)) or out,
                      load_extractor=lambda p, cfg: OracleExtractor(), icl_extractor=lambda *a: None, build_init=build_init)
    cfg = EvalConfig(datasets=["casie:events=typed", "conll2003"], initializations=["multiie"], shots=2, fewshot_seeds=1,
                     test_cap=8, meta_model="", multiie_datasets=["ncbi-disease", "semeval2010-task8", "casie"])
    rows = {r["dataset"]: r for r in run_fewshot(cfg, tmp_path, backend, log=lambda m: None)}
    assert built == [("multiie", ("ncbi-disease", "semeval2010-task8")), ("multiie", ("ncbi-disease", "semeval2010-task8", "casie"))]
    assert rows["casie:events=typed"]["pretrain_sources"] == "ncbi-disease+semeval2010-task8"
    assert "without casie" in rows["casie:events=typed"]["note"]
    assert rows["conll2003"]["pretrain_sources"] == "ncbi-disease+semeval2010-task8+casie" and rows["conll2003"]["note"] == ""
    assert {init for _, init in trained} == {"/init/multiie-2", "/init/multiie-3"}
    # a dataset that is every source: skipped with a note, not trained on itself
    cfg1 = cfg.model_copy(update={"datasets": ["casie"], "multiie_datasets": ["casie"]})
    assert run_fewshot(cfg1, tmp_path / "only", backend, log=lambda m: None) == []
    assert "evaluated dataset" in json.loads((tmp_path / "only" / "notes.json").read_text())["multiie/casie"]


@pytest.mark.parametrize("name,stage2", [("conll04", "relation"), ("aste-14res", "triplet")])
def test_llm_icl_runs_the_students_multi_stage_queries_on_re_and_aste(tmp_path, monkeypatch, name, stage2):
    """llm-icl on every task family (issue 15): the teacher, behind a fake OpenAI-compatible endpoint on
    127.0.0.1, is asked the student's own first-stage queries, then the second-stage queries built on its
    own first-stage answers (and on the gold anchors), with the support sentences as demonstrations."""
    from helpers_paper import PaperTeacher

    from metaie_utils.stages.fewshot import baselines
    from metaie_utils.tasks import get_dataset

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    ds = get_dataset(name)
    cfg = EvalConfig(out_root=str(tmp_path), teacher="gpt-3.5-turbo", shots=1)
    support = ds.load("train")[:3]
    test = [ex for ex in ds.load("test") if any(w[:1].isupper() for w in ex.tokens[1:])][:6]
    with PaperTeacher() as t:
        cfg = cfg.model_copy(update={"base_url": t.base_url})
        ext = baselines.icl_extractor(cfg, support, ds)
        try:
            pred = ds.predict(ext, test)
            gold_pred = ds.predict(ext, test, anchors="gold")
        finally:
            ext.close()
    systems = [r["messages"][0]["content"] for r in t.requests]
    assert all("a line of queries" in s for s in systems)  # not the NER instruction
    asked = [r["messages"][-1]["content"].rsplit("\nQueries: ", 1)[1] for r in t.requests]  # icl-v2: queries last
    first = set(baselines.fixed_labels([i for ex in support for i in ds.instances(ex)]))
    asked_first = [q for q in asked if any(lab in q for lab in first)]
    assert asked_first, "the first stage's queries were not asked"
    assert len(asked) > len(test), "no second-stage query was asked"
    assert sum(len(p[stage2]) for p in gold_pred) > 0  # gold anchors always give stage 2 something to answer
    # the demonstrations are the support sentences, as user / assistant turns
    chat = t.requests[0]["messages"]
    assert [m["role"] for m in chat[:3]] == ["system", "user", "assistant"]
    assert chat[1]["content"].split("\nQueries: ")[0] == " ".join(support[0].tokens)
    assert all(set(p) >= {stage2} for p in pred)


@pytest.mark.parametrize("name", ["qasrl", "up-ewt"])
def test_llm_icl_on_srl_shows_the_supports_own_answers_as_worked_examples(tmp_path, monkeypatch, name):
    """SRL has no first stage: every query names (or asks about) a gold predicate. The old guess (a label queried
    on more than one support sentence is a first-stage type) took QA-SRL's prompts for first-stage ones, so every
    demonstration was asked the TEST sentence's questions and answered "- none": the teacher answered "- none"
    to everything (0 spans, F1 0.0). Every demonstration now asks its own queries and shows its own answers."""
    from metaie_utils.stages.fewshot import baselines
    from metaie_utils.tasks import get_dataset

    ds = get_dataset(name)
    assert ds.first_stage_labels() == frozenset()
    support = [ex for ex in ds.load("dev") if ex.frames][:4]
    chats = []

    def record(client, cs, **kw):
        chats.extend(cs)
        return ["- none"] * len(cs)

    monkeypatch.setattr(baselines, "llm_complete", record)
    ext = baselines.icl_extractor(EvalConfig(out_root=str(tmp_path)), support, ds)
    try:
        ds.predict(ext, [ex for ex in ds.load("test") if ex.frames][:3])
    finally:
        ext.close()
    assert chats
    own = {" ".join(ex.tokens): {baselines._label_key(q) for q in ds.queries(ex)} for ex in support}
    for chat in chats:
        demos = list(zip(chat[1:-1:2], chat[2:-1:2]))
        assert demos, "no demonstration in the prompt"
        for user, assistant in demos:
            sentence, queries = user["content"].split("\nQueries: ")
            assert {baselines._label_key(q) for q in queries.split("; ")} <= own[sentence]  # its own queries
        answered = [a["content"] for _, a in demos if a["content"] != "- none"]
        assert answered, "every demonstration answers '- none'"


def test_ner_distillation_replays_a_shipped_set_and_asks_only_what_it_lacks(tmp_path, monkeypatch):
    """A shipped ner-icl-v1 set that holds every sentence stands in for the teacher (no server is started);
    a partial one is put into the teacher's cache, so only the missing sentences are asked."""
    import contextlib
    import sys

    from metaie_utils.core.params import stage_config
    from metaie_utils.llm import shipped
    from metaie_utils.llm.client import Completion, LLMClient, ResponseCache, build_messages, cache_key
    from metaie_utils.stages.fewshot import baselines

    sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "distill"))
    fake_openai = pytest.importorskip("fake_openai")
    sents = [{"id": f"s{i}", "text": f"Word{i} met Ann in Rome ."} for i in range(4)]
    (tmp_path / "sentences.jsonl").write_text("".join(json.dumps(s) + "\n" for s in sents))
    dcfg = stage_config("02_distill_llm", {"teacher": "local:qwen2.5-0.5b", "temperature": 1.0, "max_tokens": 96, "seed": 0})

    def ship(n: int) -> Path:  # the first n sentences answered, exported as a shipped set of prompt ner-icl-v1
        cache = ResponseCache(tmp_path / f"c{n}.sqlite")
        for s in sents[:n]:
            key = cache_key("qwen2.5-0.5b", "ner-icl-v1", build_messages("ner-icl-v1", s["text"]), 1.0, 96, 0, 0)
            cache.put(key, "qwen2.5-0.5b", "ner-icl-v1", 0, Completion(text="- Person: Ann", finish_reason="stop"))
        cache.close()
        return shipped.export(tmp_path / "sentences.jsonl", tmp_path / f"c{n}.sqlite", "local:qwen2.5-0.5b",
                              "ner-icl-v1", out=tmp_path / f"set{n}.jsonl.gz")

    monkeypatch.setattr(shipped, "path_for", lambda pv: ship(4) if pv == "ner-icl-v1" else None)

    def no_teacher(*a, **k):
        raise AssertionError("the teacher was started although the shipped set holds every sentence")

    monkeypatch.setattr(baselines, "teacher_client", no_teacher)
    cfg = EvalConfig(out_root=str(tmp_path / "out"))
    rows = [json.loads(x) for x in baselines._distill_ner(cfg, sents, dcfg, "a").read_text().splitlines()]
    assert [r["response"] for r in rows] == ["- Person: Ann"] * 4
    done = json.loads(next((tmp_path / "out").rglob("baseline.json")).read_text())
    assert done["source"] == "shipped" and "replayed 4" in done["note"]

    with fake_openai.FakeOpenAI() as srv:
        @contextlib.contextmanager
        def fake_teacher(teacher, base_url, api_key_env, cache_path, **kw):  # the local server's client, keyed alike
            yield LLMClient(srv.base_url, "qwen2.5-0.5b", cache_path=cache_path)

        monkeypatch.setattr(baselines, "teacher_client", fake_teacher)
        monkeypatch.setattr(shipped, "path_for", lambda pv: ship(3))
        rows = [json.loads(x) for x in baselines._distill_ner(EvalConfig(out_root=str(tmp_path / "out2")), sents, dcfg,
                                                              "b").read_text().splitlines()]
        asked = sum(srv.served.values())
    assert asked == 1 and len(rows) == 4 and rows[0]["response"] == "- Person: Ann"
    done = json.loads(next((tmp_path / "out2").rglob("baseline.json")).read_text())
    assert done["source"] == "teacher" and "3 answers of set3.jsonl.gz" in done["note"]


def test_jobs_run_seed_major_so_a_grid_cut_short_is_paired_on_every_dataset(tmp_path):
    """Every dataset's first seed (all initializations side by side) before any dataset's second seed."""
    ds = FakeNER()
    order = []

    def train(instances, init, out, cfg, seed):
        order.append((init, seed))
        return out

    backend = Backend(get_dataset=lambda n: ds, score=fake_score, train=train,
                      load_extractor=lambda p, cfg: OracleExtractor(), icl_extractor=lambda *a: None,
                      build_init=lambda name, cfg: f"/init/{name}")
    cfg = EvalConfig(datasets=["a", "b"], initializations=["vanilla", "metaie"], shots=2, fewshot_seeds=2, test_cap=4,
                     meta_model="m", fewshot_workers=1)
    rows = run_fewshot(cfg, tmp_path, backend, log=lambda m: None)
    jobs = list(dict.fromkeys((r["dataset"], r["seed"], r["initialization"]) for r in rows))
    assert jobs == [("a", "0", "vanilla"), ("a", "0", "metaie"), ("b", "0", "vanilla"), ("b", "0", "metaie"),
                    ("a", "1", "vanilla"), ("a", "1", "metaie"), ("b", "1", "vanilla"), ("b", "1", "metaie")]


def test_llm_icl_answers_ship_and_replay_without_starting_the_teacher(tmp_path, monkeypatch):
    """The llm-icl teacher's answers (the CPU grid's: hours of a local teacher) are exported from its cache into
    an answer set, and a new machine replays them with no server started; a partial set starts the teacher
    only for the answers it lacks; another teacher's set is refused by name."""
    import contextlib
    import gzip
    import sys

    from metaie_utils.llm import shipped
    from metaie_utils.llm.client import LLMClient
    from metaie_utils.stages.fewshot import baselines
    from metaie_utils.tasks import get_dataset

    sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "distill"))
    fake_openai = pytest.importorskip("fake_openai")
    ds = get_dataset("conll04")
    support_set, test = ds.load("train")[:2], ds.load("test")[:3]
    teacher = "local:qwen2.5-0.5b"  # keyed as the local server's client would (model = the alias)
    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path / "ship")
    baselines._SEEDED.clear()

    def run(out_root: str, served: list) -> list:
        ext = baselines.icl_extractor(EvalConfig(out_root=out_root, teacher=teacher, shots=1), support_set, ds)
        try:
            return ds.predict(ext, test)
        finally:
            served.append(ext.closer.__self__)
            ext.close()

    with fake_openai.FakeOpenAI() as srv:
        @contextlib.contextmanager
        def fake_teacher(t, base_url, api_key_env, cache_path, **kw):
            yield LLMClient(srv.base_url, "qwen2.5-0.5b", cache_path=cache_path)

        monkeypatch.setattr(baselines, "teacher_client", fake_teacher)
        clients: list = []
        first = run(str(tmp_path / "a"), clients)
        asked = sum(srv.served.values())
    assert asked >= len(test) and clients[0].replayed == 0

    out = shipped.answers_path(teacher)
    assert out.name == "icl-qwen2.5-0.5b-answers.jsonl.gz"
    shipped.export_answers(tmp_path / "a" / "baselines" / "icl-cache.sqlite", out, teacher, made_by="test")
    s = shipped.load(out)
    assert s.provenance["answers"] == asked == len(s.rows) and s.provenance["gguf_sha256"]
    assert set(s.provenance["prompt_versions"]) == {"icl-v2"}
    assert shipped.info(out)["answers"] == asked
    again = out.read_bytes()
    shipped.export_answers(tmp_path / "a" / "baselines" / "icl-cache.sqlite", out, teacher)
    assert out.read_bytes() == again  # deterministic: no churn in git when nothing changed

    def no_teacher(*a, **k):
        raise AssertionError("the teacher was started although every answer was shipped")

    monkeypatch.setattr(baselines, "teacher_client", no_teacher)
    clients = []
    assert run(str(tmp_path / "b"), clients) == first and clients[0].replayed == asked

    # a partial set: the teacher starts for the missing answers only
    with gzip.open(out, "rt") as f:
        lines = f.read().splitlines()
    with gzip.open(out, "wt") as f:
        f.write("\n".join(lines[:-1]) + "\n")
    baselines._SEEDED.clear()
    with fake_openai.FakeOpenAI() as srv:
        @contextlib.contextmanager
        def fake_teacher(t, base_url, api_key_env, cache_path, **kw):
            yield LLMClient(srv.base_url, "qwen2.5-0.5b", cache_path=cache_path)

        monkeypatch.setattr(baselines, "teacher_client", fake_teacher)
        assert run(str(tmp_path / "c"), []) == first
        assert sum(srv.served.values()) == 1

    n, note = shipped.import_answers(tmp_path / "d.sqlite", "local:smollm2-135m", out)
    assert n == 0 and "not used" in note and "qwen2.5-0.5b" in note
    distill_set = shipped.write(tmp_path / "distill.jsonl.gz", {"teacher": teacher, "prompt_version": "ner-icl-v1"}, [])
    with pytest.raises(shipped.UserError, match="not an answer set"):  # never mixed into a distillation set
        shipped.export_answers(tmp_path / "a" / "baselines" / "icl-cache.sqlite", distill_set, teacher)


def test_a_few_shot_worker_dies_with_its_parent(tmp_path):
    """A killed stage 05 (SIGTERM to the kernel) left its spawn workers fine-tuning for nobody; the worker
    initializer now asks Linux to SIGTERM it when its parent dies."""
    import subprocess
    import sys

    from helpers_process import assert_dies_with_parent

    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux-only")
    pid_file = tmp_path / "child.pid"
    script = tmp_path / "parent.py"  # a file, not -c: spawn re-imports the child's function from it
    script.write_text(
        "import multiprocessing as mp, os, time\n"
        "from metaie_utils.core.device import die_with_parent\n"
        "def child(p):\n"
        "    die_with_parent()\n"
        "    open(p, 'w').write(str(os.getpid()))\n"
        "    time.sleep(60)\n"
        "if __name__ == '__main__':\n"
        f"    mp.get_context('spawn').Process(target=child, args=({str(pid_file)!r},)).start()\n"
        "    time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, str(script)])
    assert_dies_with_parent(parent, pid_file)


def test_llm_icl_gives_the_local_teacher_a_long_context_and_warns_when_an_answer_is_cut(tmp_path, monkeypatch, caplog):
    """900 words of demonstrations are ~2,000 Qwen2.5 tokens on CoNLL2004: with n_ctx 2,048 the server stopped the
    answers after 3-8 tokens (finish_reason "length"), silently. The local teacher now gets ICL_N_CTX, and an
    answer stopped before max_tokens is reported."""
    import contextlib
    import logging

    from metaie_utils.llm.client import Completion
    from metaie_utils.stages.fewshot import baselines

    seen = {}

    @contextlib.contextmanager
    def fake_teacher(t, base_url, api_key_env, cache_path, **kw):
        seen.update(kw)

        class Client:
            def complete_many(self, reqs, progress=False):
                return [Completion(text="- Person:", finish_reason="length", prompt_tokens=2045, completion_tokens=3)
                        for _ in reqs]
        yield Client()

    monkeypatch.setattr(baselines, "teacher_client", fake_teacher)
    monkeypatch.setattr(baselines, "seed_icl_cache", lambda cfg, answers=None: "")
    ds = FakeNER()
    ext = baselines.icl_extractor(EvalConfig(out_root=str(tmp_path), teacher="local:qwen2.5-0.5b"), ds.load("train")[:2], ds)
    with caplog.at_level(logging.WARNING, logger=baselines.__name__):
        ext.extract([["Tom", "runs"]], ["Person"])
    ext.close()
    assert seen["n_ctx"] == baselines.ICL_N_CTX >= 4096
    assert "1 of 1 answers were cut off by the teacher's context window (first: 2045 prompt tokens" in caplog.text
