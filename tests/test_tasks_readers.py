"""Reader tests: every benchmark file parses to the counts of shared/data/SOURCES.md.

Parsed splits are cached per process (``metaie_utils.tasks._cached``), so the whole module parses each
file once. SemEval-2010 Task 8 and CASIE tokenize raw text (tens of seconds on a loaded CPU): their full
counts are in the ``slow`` tier, and a unit test reads a few records of each.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from metaie_utils.core.paths import data_file
from metaie_utils.tasks import LABELS, get_dataset
from metaie_utils.tasks import readers as R

pytestmark = pytest.mark.unit


def counts(ds, split):
    exs = ds.load(split)
    return (len(exs), sum(len(e.entities) for e in exs), sum(len(e.relations) for e in exs))


@pytest.mark.parametrize("name,sizes", [
    ("conll2003", {"train": 14041, "dev": 3250, "test": 3453}),
    ("wnut2017", {"train": 3394, "dev": 1009, "test": 1287}),
    ("bc5cdr", {"train": 4560, "dev": 4581, "test": 4797}),
    ("ncbi-disease", {"train": 5424, "dev": 923, "test": 940}),
    ("jnlpba", {"train": 18546, "test": 3856}),
])
def test_ner_sentence_counts(name, sizes):
    ds = get_dataset(name)
    assert ds.splits == list(sizes)
    assert {s: len(ds.load(s)) for s in sizes} == sizes
    # every type of every split has a verbalization, and spans are inside their sentences
    for s in sizes:
        for ex in ds.load(s):
            assert all(0 <= a < b <= len(ex.tokens) for a, b, _ in ex.entities)
    assert set(ds.types(ds.load(ds.splits[-1]))) <= set(ds.labels)


def test_conll2003_iob1_and_types():
    ds = get_dataset("conll2003")
    ex = ds.load("train")[0]
    assert ex.tokens[:3] == ["EU", "rejects", "German"]
    assert ex.entities == [(0, 1, "ORG"), (2, 3, "MISC"), (6, 7, "MISC")]
    assert ds.types(ds.load("test")) == ["LOC", "MISC", "ORG", "PER"]
    # IOB1: touching same-type entities are separated by B-, all others start with I-
    assert sum(len(e.entities) for e in ds.load("test")) == 5648


def test_wnut_tab_only_separator_lines():
    exs = get_dataset("wnut2017").load("train")
    assert exs[0].tokens[0] == "@paulwalk"
    assert max(len(e.tokens) for e in exs) < 120  # no two sentences glued by a TAB-only line
    assert get_dataset("wnut2017").types(exs) == sorted(LABELS["wnut2017"])


def test_jnlpba_types():
    assert get_dataset("jnlpba").types(get_dataset("jnlpba").load("test")) == ["DNA", "RNA", "cell_line", "cell_type", "protein"]


def test_ner_mix_is_the_union_of_its_parts_and_refuses_overlapping_types():
    from metaie_utils.core.errors import UserError

    mix = get_dataset("ner-mix")
    assert mix.splits == ["train", "test"] and len(mix.labels) == 11
    assert len(mix.load("test")) == 3453 + 4797 + 3856
    assert mix.types(mix.load("test")) == sorted(set(LABELS["conll2003"]) | set(LABELS["bc5cdr"]) | set(LABELS["jnlpba"]))
    two = get_dataset("ner-mix", parts="conll2003+ncbi-disease")
    assert two.name == "ner-mix:conll2003+ncbi-disease" and two.splits == ["train", "dev", "test"]
    with pytest.raises(UserError, match="Disease"):
        get_dataset("ner-mix", parts="bc5cdr+ncbi-disease")
    with pytest.raises(UserError, match="conll04 is a|only NER datasets"):
        get_dataset("ner-mix", parts="conll2003+conll04")
    with pytest.raises(UserError, match="two or more"):
        get_dataset("ner-mix", parts="conll2003")


def test_conll04_counts():
    ds = get_dataset("conll04")
    assert [counts(ds, s) for s in ("train", "dev", "test")] == [(922, 3377, 1283), (231, 893, 343), (288, 1079, 422)]
    ex = ds.load("test")[0]
    assert ex.relations == [(5, 7, "Org", 10, 11, "Loc", "OrgBased_In")]
    assert "relation:OrgBased_In" in ds.example_types(ex) and "entity:Org" in ds.example_types(ex)


def test_ade_folds_cover_full():
    full = get_dataset("ade").load("full")
    assert (len(full), sum(len(e.entities) for e in full), sum(len(e.relations) for e in full)) == (4272, 10839, 6821)
    test_ids = Counter()
    for fold in range(10):
        ds = get_dataset("ade", fold=fold)
        n_train, n_test = len(ds.load("train")), len(ds.load("test"))
        assert (n_train, n_test) == ((3843, 429) if fold == 9 else (3845, 427))
        test_ids.update(e.meta["orig_id"] for e in ds.load("test"))
    assert sum(test_ids.values()) == 4272 and set(test_ids) == {e.meta["orig_id"] for e in full}


def test_aste_counts():
    want = {"14lap": [(906, 1460), (219, 346), (328, 543)], "14res": [(1266, 2338), (310, 577), (492, 994)]}
    for sub, sizes in want.items():
        ds = get_dataset(f"aste-{sub}")
        got = [(len(ds.load(s)), sum(len(e.triplets) for e in ds.load(s))) for s in ("train", "dev", "test")]
        assert got == sizes
    ex = get_dataset("aste-14lap").load("test")[0]
    assert ex.tokens[:2] == ["Boot", "time"] and ex.triplets == [(0, 2, 4, 5, "positive")]
    # ABSA reads the same files
    absa = get_dataset("absa-14lap")
    assert absa.gold(absa.load("test")[0]) == {"aspect": {(0, 2, "positive")}}


def test_qasrl_counts():
    want = {("wikinews", "dev"): (500, 1264, 3714), ("wikinews", "test"): (499, 1281, 3623),
            ("wikipedia", "dev"): (500, 1184, 3474), ("wikipedia", "test"): (500, 1169, 3479)}
    for (dom, split), (n_sent, n_pred, n_qa) in want.items():
        exs = get_dataset("qasrl-gs", domain=dom).load(split)
        rows = sum(e.meta["qa_rows"] for e in exs)
        assert (len(exs), sum(len(e.frames) for e in exs), rows) == (n_sent, n_pred, n_qa)
        qas = {(e.id, f.predicate, a[2]) for e in exs for f in e.frames for a in f.arguments}
        assert 0 <= n_qa - len(qas) <= 5  # a few questions are asked twice for one verb: merged
    assert len(get_dataset("qasrl-gs").load("dev")) == 1000


def test_qasrl_answer_ranges_exclusive_and_multi():
    exs = get_dataset("qasrl-gs", domain="wikinews").load("dev")
    ex = next(e for e in exs if e.meta["qasrl_id"] == "Wiki1k:wikinews:2101198:1:2")
    fr = next(f for f in ex.frames if f.predicate == (3, 4))
    ans = {(ex.tokens and " ".join(ex.tokens[s:e])) for s, e, q in fr.arguments if q == "Who led something?"}
    assert ans == {"Patrick Cammaert", "former Dutch General"}


def test_up_ewt_counts_and_subtree_spans():
    ds = get_dataset("up-ewt")
    for split, (n_sent, n_pred) in {"dev": (2002, 4977), "test": (2077, 4799)}.items():
        exs = ds.load(split)
        assert (len(exs), sum(len(e.frames) for e in exs)) == (n_sent, n_pred)
    ex = ds.load("dev")[1]  # President Bush on Tuesday nominated two individuals to replace retiring jurists ...
    nominate = next(f for f in ex.frames if f.sense == "nominate.01")
    words = {r: " ".join(ex.tokens[s:e]) for s, e, r in nominate.arguments}
    assert words["ARG0"] == "President Bush" and words["ARGM-TMP"] == "on Tuesday"
    replace = next(f for f in ex.frames if f.sense == "replace.01")
    words = {r: " ".join(ex.tokens[s:e]) for s, e, r in replace.arguments}
    # the ARG0 head "individuals" dominates "to replace ...": the span is cut before the predicate
    assert words["ARG0"] == "two individuals"
    assert words["ARG1"].startswith("retiring jurists")


def test_semeval_first_records(tmp_path):
    src = data_file("semeval2010_task8", "TRAIN_FILE.TXT").read_bytes()
    part = b"\r\n\r\n".join(src.split(b"\r\n\r\n")[:3]) + b"\r\n\r\n"
    p = tmp_path / "few.txt"
    p.write_bytes(part)
    exs = R.read_semeval2010_task8(p, "s")
    assert len(exs) == 3
    e1 = exs[0]
    assert " ".join(e1.tokens[e1.meta["e1"][0]:e1.meta["e1"][1]]) == "configuration"
    # Component-Whole(e2,e1): head = e2 "elements", tail = e1 "configuration"
    (hs, he, _, ts, te, _, rel), = e1.relations
    assert (" ".join(e1.tokens[hs:he]), " ".join(e1.tokens[ts:te]), rel) == ("elements", "configuration", "Component-Whole")
    assert exs[1].relations == []  # Other


def test_casie_one_document():
    path = data_file("casie", "annotation", "10003.json")
    exs, stats = R.read_casie_doc(path, "c")
    doc = json.loads(path.read_text())
    n_events = sum(len(h["events"]) for h in doc["cyberevent"]["hopper"])
    assert stats["events"] == n_events and stats["events_dropped"] == 0
    evs = [(ex, ev) for ex in exs for ev in ex.events]
    assert len(evs) == n_events
    texts = {" ".join(ex.tokens[ev.trigger[0]:ev.trigger[1]]) for ex, ev in evs}
    assert {"data breach", "was stolen"} <= texts
    assert all(ev.type in LABELS["casie-event"] for _, ev in evs)


def test_authors_label_to_span_file_matches_conll2003():
    """Golden: our CoNLL2003 test reader + instances reproduce the authors' processed file."""
    ours = get_dataset("conll2003")
    ref = get_dataset("conll2003-metaie")
    a, b = ours.load("test"), ref.load("test")
    assert len(b) == 3453 and len(get_dataset("conll2003-metaie").load("train")) == 20
    assert all(set(x.entities) == set(y.entities) for x, y in zip(a, b))
    recs = [json.loads(line) for line in open(data_file("metaie_reference", "dataset", "test.conll2003.json"))]
    inst = [i for ex in a for i in ours.instances(ex)]
    assert len(recs) == len(inst) == 13812
    norm = {"-LPR-": "(", "-RPR-": ")"}
    same = sum(r["ner"] == i["ner"] and [norm.get(w, w) for w in r["words"]] == i["words"] for r, i in zip(recs, inst))
    # the authors' copy writes parentheses as -LPR-/-RPR- and differs in 9 sentences' tokens (36 records)
    assert same == 13776


@pytest.mark.slow
def test_semeval_full_counts():
    ds = get_dataset("semeval2010-task8")
    tr, te = ds.load("train"), ds.load("test")
    assert (len(tr), len(te)) == (8000, 2717)
    labels = {e.meta["label"] for e in tr}
    assert len(labels) == 19
    assert sum(1 for e in tr if e.meta["label"] != "Other") == sum(len(e.relations) for e in tr)


@pytest.mark.slow
def test_casie_split_counts():
    ds = get_dataset("casie")
    docs = {s: {e.id.rsplit("/", 1)[0] for e in ds.load(s)} for s in ds.splits}
    assert {s: len(d) for s, d in docs.items()} == {"train": 697, "dev": 100, "test": 200}
    # 8,485 mentions - 14 in the excluded docs 10001/10002/999 - 1 whose text is not found near its offsets
    assert {s: sum(len(e.events) for e in ds.load(s)) for s in ds.splits} == {"train": 5234, "dev": 1115, "test": 2121}
    assert sum(len(e.events) for s in ds.splits for e in ds.load(s)) == 8485 - 14 - 1


@pytest.mark.parametrize("module", ["base", "readers", "ner", "re", "ee", "srl", "absa", "__init__"])
def test_doctests(module):
    import doctest
    import importlib

    mod = importlib.import_module("metaie_utils.tasks" + ("" if module == "__init__" else f".{module}"))
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert res.failed == 0 and res.attempted > 0
