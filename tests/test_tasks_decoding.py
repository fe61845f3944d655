"""Query construction and multi-stage decoding on planted examples, with a fake extractor.

``PlantedExtractor`` answers planted spans for exactly the right (sentence, label) queries and records
every query, so the tests check both what is asked (stage 2 only on stage-1 anchors) and what comes back.
``OracleExtractor`` answers every query with the BIO spans of the dataset's own training instance: the
decoders must then recover the gold (instances and decoding are inverse), on real data.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from metaie_utils.core.bio import bio_spans
from metaie_utils.tasks import (
    ABSADataset,
    ASTEDataset,
    EEDataset,
    Event,
    Example,
    Frame,
    NERDataset,
    REDataset,
    SRLDataset,
    get_dataset,
    label_words,
    score,
)

pytestmark = pytest.mark.unit


class PlantedExtractor:
    """``answers[(sentence words joined, label)] = [(start, end, score), ...]``; records queries."""

    def __init__(self, answers: dict[tuple[str, str], list[tuple[int, int, float]]]):
        self.answers = answers
        self.queries: list[tuple[str, str]] = []

    def extract(self, texts, labels):
        per_text = labels if labels and not isinstance(labels[0], str) else [labels] * len(texts)
        out = []
        for words, labs in zip(texts, per_text):
            spans = []
            for lab in labs:
                self.queries.append((" ".join(words), lab))
                for s, e, sc in self.answers.get((" ".join(words), lab), []):
                    spans.append(SimpleNamespace(label=lab, word_start=s, word_end=e, score=sc, text=" ".join(words[s:e])))
            out.append(spans)
        return out


class OracleExtractor:
    """Answers each query with the gold BIO spans of the matching training instance."""

    def __init__(self, dataset, examples):
        self.table = {}
        for ex in examples:
            for inst in dataset.instances(ex):
                self.table[tuple(inst["words"])] = inst["ner"]

    def extract(self, texts, labels):
        per_text = labels if labels and not isinstance(labels[0], str) else [labels] * len(texts)
        out = []
        for words, labs in zip(texts, per_text):
            spans = []
            for lab in labs:
                lw = label_words(lab)
                tags = self.table.get(tuple(lw + [":"] + list(words)))
                assert tags is not None, f"query {lab!r} has no training instance: labels and instances disagree"
                for s, e in bio_spans(tags[len(lw) + 1:]):
                    spans.append({"label": lab, "word_start": s, "word_end": e, "score": 1.0})
            out.append(spans)
        return out


def toy(ds_cls, *args, **kw):
    return ds_cls("toy", {"test": lambda: []}, *args, **kw)


# --- NER ------------------------------------------------------------------------------------------
def test_ner_queries_every_label_and_resolves_conflicts():
    ds = toy(NERDataset, {"PER": "Person", "LOC": "Location", "ORG": "Organization"})
    ex = Example("t/0", "Tom visits Paris today".split(), entities=[(0, 1, "PER"), (2, 3, "LOC")])
    sent = " ".join(ex.tokens)
    fx = PlantedExtractor({(sent, "Person"): [(0, 1, 0.9)], (sent, "Location"): [(2, 3, 0.8)],
                           (sent, "Organization"): [(2, 3, 0.3), (3, 4, 0.6)]})
    pred = ds.predict(fx, [ex])
    assert pred == [{"entity": {(0, 1, "PER"), (2, 3, "LOC"), (3, 4, "ORG")}}]
    assert sorted(lab for _, lab in fx.queries) == ["Location", "Organization", "Person"]
    r = score(ds, [ds.gold(ex)], pred)["entity"]
    assert (r["tp"], r["n_gold"], r["n_pred"]) == (2, 2, 3)


def test_ner_instances_include_negatives():
    ds = toy(NERDataset, {"PER": "Person", "LOC": "Location"})
    ex = Example("t/0", ["Tom", "sleeps"], entities=[(0, 1, "PER")])
    inst = ds.instances(ex)
    assert inst == [{"words": ["Person", ":", "Tom", "sleeps"], "ner": ["O", "O", "B", "O"]},
                    {"words": ["Location", ":", "Tom", "sleeps"], "ner": ["O", "O", "O", "O"]}]


# --- RE -------------------------------------------------------------------------------------------
def re_toy():
    return toy(REDataset, {"Peop": "Person", "Loc": "Location", "Org": "Organization"},
               {"Live_In": "lives in", "Work_For": "works for"},
               signatures={"Live_In": ("Peop", "Loc"), "Work_For": ("Peop", "Org")})


def test_re_two_stage_decoding_on_planted_example():
    ds = re_toy()
    ex = Example("t/0", "Tom of IBM lives in Rome".split(),
                 entities=[(0, 1, "Peop"), (2, 3, "Org"), (5, 6, "Loc")],
                 relations=[(0, 1, "Peop", 5, 6, "Loc", "Live_In"), (0, 1, "Peop", 2, 3, "Org", "Work_For")])
    sent = " ".join(ex.tokens)
    fx = PlantedExtractor({
        (sent, "Person"): [(0, 1, 0.9)], (sent, "Organization"): [(2, 3, 0.9)],  # Rome missed in stage 1
        (sent, "Tom lives in"): [(5, 6, 0.7)], (sent, "Tom works for"): [(2, 3, 0.8)],
        (sent, "IBM lives in"): [(5, 6, 0.9)],  # must never be asked: Org heads no relation
    })
    pred = ds.predict(fx, [ex])[0]
    assert pred["entity"] == {(0, 1, "Peop"), (2, 3, "Org")}
    # the tail Rome takes the signature's type (Loc) since stage 1 missed it; IBM takes its stage-1 type
    assert pred["relation"] == set(ex.relations)
    asked = {lab for _, lab in fx.queries}
    assert asked == {"Person", "Location", "Organization", "Tom lives in", "Tom works for"}
    s = score(ds, [ds.gold(ex)], [pred])
    assert s["relation"]["f1"] == 1.0 and s["entity"]["recall"] == pytest.approx(2 / 3)


def test_re_stage2_only_on_predicted_anchors_unless_gold_anchors():
    ds = re_toy()
    ex = Example("t/0", "Tom lives in Rome".split(), entities=[(0, 1, "Peop"), (3, 4, "Loc")],
                 relations=[(0, 1, "Peop", 3, 4, "Loc", "Live_In")])
    sent = " ".join(ex.tokens)
    fx = PlantedExtractor({(sent, "Tom lives in"): [(3, 4, 0.9)]})  # stage 1 finds nothing
    assert ds.predict(fx, [ex])[0]["relation"] == set()
    assert not any(lab.startswith("Tom") for _, lab in fx.queries)
    fx2 = PlantedExtractor({(sent, "Tom lives in"): [(3, 4, 0.9)]})
    assert ds.predict(fx2, [ex], anchors="gold")[0]["relation"] == set(ex.relations)


def test_re_instances_and_strict_vs_boundary():
    ds = re_toy()
    ex = Example("t/0", "Tom lives in Rome".split(), entities=[(0, 1, "Peop"), (3, 4, "Loc")],
                 relations=[(0, 1, "Peop", 3, 4, "Loc", "Live_In")])
    labels = [" ".join(i["words"][:i["words"].index(":")]) for i in ds.instances(ex)]
    assert labels == ["Person", "Location", "Organization", "Tom lives in", "Tom works for"]
    wrong_type = [{"relation": {(0, 1, "Peop", 3, 4, "Org", "Live_In")}, "relation_boundary": {(0, 1, 3, 4, "Live_In")}, "entity": set()}]
    s = score(ds, [ds.gold(ex)], wrong_type)
    assert s["relation"]["tp"] == 0 and s["relation_boundary"]["tp"] == 1


def test_semeval_relation_classification_as_queries():
    ds = toy(REDataset, {"Nominal": "Nominal"}, {"Cause-Effect": "causes", "Member-Collection": "is a member of"},
             None, entity_stage=False)
    ex = Example("t/0", "the virus causes a fever".split(), entities=[(1, 2, "Nominal"), (4, 5, "Nominal")],
                 relations=[(1, 2, "Nominal", 4, 5, "Nominal", "Cause-Effect")])
    inst = ds.instances(ex)
    assert [" ".join(i["words"][:i["words"].index(":")]) for i in inst] == [
        "virus causes", "virus is a member of", "fever causes", "fever is a member of"]
    assert inst[0]["ner"][-5:] == ["O", "O", "O", "O", "B"] and all(set(i["ner"]) == {"O"} for i in inst[1:])
    sent = " ".join(ex.tokens)
    pred = ds.predict(PlantedExtractor({(sent, "virus causes"): [(4, 5, 0.9)]}), [ex])[0]
    assert "entity" not in pred and pred["relation"] == set(ex.relations)


# --- EE -------------------------------------------------------------------------------------------
def test_ee_typed_triggers_then_arguments():
    ds = toy(EEDataset, {"Databreach": "Data breach", "Phishing": "Phishing"},
             {"Attacker": "Attacker", "Victim": "Victim", "Trusted-Entity": "Trusted entity"},
             {"Databreach": ["Attacker", "Victim"], "Phishing": ["Attacker", "Trusted-Entity"]}, typed=True)
    ex = Example("t/0", "Hackers breached Target yesterday".split(),
                 events=[Event((1, 2), "Databreach", [(0, 1, "Attacker"), (2, 3, "Victim")])])
    sent = " ".join(ex.tokens)
    fx = PlantedExtractor({
        (sent, "Data breach trigger"): [(1, 2, 0.9)], (sent, "Phishing trigger"): [(1, 2, 0.2)],
        (sent, 'Attacker Argument for Trigger "breached"'): [(0, 1, 0.8)],
        (sent, 'Victim Argument for Trigger "breached"'): [(2, 3, 0.8)],
    })
    pred = ds.predict(fx, [ex])[0]
    assert pred == ds.gold(ex)
    assert pred["argument"] == {(1, 2, "Databreach", 0, 1, "Attacker"), (1, 2, "Databreach", 2, 3, "Victim")}
    # the Phishing reading lost the conflict, so its roles were never asked
    assert not any("Trusted entity" in lab for _, lab in fx.queries)
    assert pred["trigger_id"] == {(1, 2)} and pred["argument_id"] == {(1, 2, 0, 1), (1, 2, 2, 3)}


CASIE_LIKE = ({"Databreach": "Data breach", "Phishing": "Phishing", "Ransom": "Ransom"},
              {"Attacker": "Attacker", "Victim": "Victim", "Price": "Price"},
              {"Databreach": ["Attacker", "Victim"], "Phishing": ["Attacker"], "Ransom": ["Attacker", "Price"]})


def test_ee_untyped_is_the_papers_T_and_A():
    """The default: one ``Event trigger`` query, one ``Argument for Trigger "x"`` query per trigger, scored as
    unlabeled triggers (T) and trigger-argument pairs (A); multi-word triggers keep their exact offsets."""
    ds = toy(EEDataset, *CASIE_LIKE)
    assert ds.subtasks == ("trigger_id", "argument_id") and not ds.typed
    ex = Example("t/0", "Hackers breached Target and asked them to pay the ransom of 5 BTC".split(), events=[
        Event((1, 2), "Databreach", [(0, 1, "Attacker"), (2, 3, "Victim")]),
        Event((7, 10), "Ransom", [(0, 1, "Attacker"), (11, 13, "Price")])])
    sent = " ".join(ex.tokens)
    labels = [" ".join(i["words"][:i["words"].index(":")]) for i in ds.instances(ex)]
    assert labels == ["Event trigger", "Argument for Trigger `` breached ''", "Argument for Trigger `` pay the ransom ''"]
    assert ds.instances(ex)[0]["ner"][-13:] == ["O", "B", "O", "O", "O", "O", "O", "B", "I", "I", "O", "O", "O"]
    fx = PlantedExtractor({
        (sent, "Event trigger"): [(1, 2, 0.9), (7, 10, 0.8)],
        (sent, 'Argument for Trigger "breached"'): [(0, 1, 0.8), (2, 3, 0.7)],
        (sent, 'Argument for Trigger "pay the ransom"'): [(0, 1, 0.6), (11, 13, 0.9)],
    })
    pred = ds.predict(fx, [ex])[0]
    assert pred == ds.gold(ex)
    assert pred["trigger_id"] == {(1, 2), (7, 10)}
    assert pred["argument_id"] == {(1, 2, 0, 1), (1, 2, 2, 3), (7, 10, 0, 1), (7, 10, 11, 13)}
    assert {lab for _, lab in fx.queries} == {"Event trigger", 'Argument for Trigger "breached"',
                                               'Argument for Trigger "pay the ransom"'}
    r = score(ds, [ds.gold(ex)], [pred])
    assert r["trigger_id"]["f1"] == 1.0 and r["argument_id"]["f1"] == 1.0


def test_ee_gold_anchors_ask_arguments_of_the_gold_triggers():
    """``anchors="gold"``: stage 2 runs on the gold triggers even when stage 1 missed them."""
    ds = toy(EEDataset, *CASIE_LIKE)
    ex = Example("t/0", "Hackers breached Target".split(), events=[Event((1, 2), "Databreach", [(0, 1, "Attacker")])])
    sent = " ".join(ex.tokens)
    fx = PlantedExtractor({(sent, 'Argument for Trigger "breached"'): [(0, 1, 0.8)]})  # stage 1 finds nothing
    assert ds.predict(fx, [ex])[0] == {"trigger_id": set(), "argument_id": set()}
    assert ds.predict(fx, [ex], anchors="gold")[0]["argument_id"] == {(1, 2, 0, 1)}
    assert ds.gold_anchor_subtasks == ("argument_id",)


# --- SRL ------------------------------------------------------------------------------------------
def test_srl_predicate_queries():
    ds = toy(SRLDataset, {"ARG0": "A0", "ARG1": "A1"})
    ex = Example("t/0", "Tom loves Ann".split(), frames=[Frame((1, 2), "love.01", [(0, 1, "ARG0"), (2, 3, "ARG1")])])
    sent = " ".join(ex.tokens)
    fx = PlantedExtractor({(sent, 'A0 Argument for Predicate "loves"'): [(0, 1, 0.9)],
                           (sent, 'A1 Argument for Predicate "loves"'): [(2, 3, 0.9), (0, 1, 0.1)]})
    pred = ds.predict(fx, [ex])[0]
    assert pred["argument"] == {(1, 2, "ARG0", 0, 1), (1, 2, "ARG1", 2, 3), (1, 2, "ARG1", 0, 1)}
    r = score(ds, [ds.gold(ex)], [pred])["argument"]
    assert (r["tp"], r["n_pred"], r["n_gold"]) == (2, 3, 2)


def test_srl_repeated_predicate_shares_one_query():
    ds = toy(SRLDataset, {"ARG0": "A0"})
    ex = Example("t/0", "Tom said Ann said no".split(),
                 frames=[Frame((1, 2), "say.01", [(0, 1, "ARG0")]), Frame((3, 4), "say.01", [(2, 3, "ARG0")])])
    inst = ds.instances(ex)
    assert len(inst) == 1 and inst[0]["ner"][-5:] == ["B", "O", "B", "O", "O"]


def test_qasrl_question_is_the_label():
    ds = toy(SRLDataset, None)
    ex = Example("t/0", "Bob led the army".split(), frames=[Frame((1, 2), "led", [(0, 1, "Who led something?"), (2, 4, "What did someone lead?")])])
    sent = " ".join(ex.tokens)
    fx = PlantedExtractor({(sent, "Who led something?"): [(0, 1, 0.9)], (sent, "What did someone lead?"): [(2, 4, 0.9)]})
    assert ds.predict(fx, [ex])[0] == ds.gold(ex)
    assert ds.example_types(ex) == {"who", "what"}


# --- ABSA / ASTE ----------------------------------------------------------------------------------
def test_absa_and_aste():
    ex = Example("t/0", "Great screen but slow keyboard".split(),
                 triplets=[(1, 2, 0, 1, "positive"), (4, 5, 3, 4, "negative")])
    sent = " ".join(ex.tokens)
    absa = toy(ABSADataset)
    fx = PlantedExtractor({(sent, "Positive aspect term"): [(1, 2, 0.9)], (sent, "Negative aspect term"): [(4, 5, 0.9), (1, 2, 0.1)]})
    assert absa.predict(fx, [ex])[0] == {"aspect": {(1, 2, "positive"), (4, 5, "negative")}}
    aste = toy(ASTEDataset)
    fx = PlantedExtractor({
        (sent, "Positive opinion term"): [(0, 1, 0.9)], (sent, "Negative opinion term"): [(3, 4, 0.9)],
        (sent, 'Term for Positive Opinion "Great"'): [(1, 2, 0.9)],
        (sent, 'Term for Negative Opinion "slow"'): [(4, 5, 0.9)],
        (sent, 'Term for Negative Opinion "Great"'): [(4, 5, 0.9)],  # never asked: Great is positive
    })
    pred = aste.predict(fx, [ex])[0]
    assert pred == aste.gold(ex)
    assert (sent, 'Term for Negative Opinion "Great"') not in fx.queries


def test_labels_one_list_or_per_text_and_batches():
    ds = toy(NERDataset, {"PER": "Person"})
    exs = [Example(f"t/{i}", ["Tom", str(i)], entities=[(0, 1, "PER")]) for i in range(5)]
    fx = PlantedExtractor({(f"Tom {i}", "Person"): [(0, 1, 0.5)] for i in range(5)})
    pred = ds.predict(fx, exs, batch_size=2)
    assert all(p == {"entity": {(0, 1, "PER")}} for p in pred)
    assert len(fx.queries) == 5


# --- oracle round trip on real data ---------------------------------------------------------------
@pytest.mark.parametrize("name,split,min_f1", [
    ("conll2003", "test", 0.99), ("wnut2017", "test", 0.99), ("conll04", "test", 0.97), ("ade", "test", 0.95),
    ("up-ewt", "dev", 0.90), ("qasrl-gs", "dev", 0.90), ("absa-14lap", "test", 0.99), ("aste-14res", "test", 0.95),
])
def test_oracle_round_trip(name, split, min_f1):
    """Decoding the gold instances gives back the gold (up to shared anchors and overlapping answers)."""
    ds = get_dataset(name)
    exs = ds.load(split)[:60]
    oracle = OracleExtractor(ds, exs)
    pred = ds.predict(oracle, exs, batch_size=16)
    res = score(ds, [ds.gold(e) for e in exs], pred)
    assert res and all(r["n_gold"] > 0 for r in res.values())
    for sub, r in res.items():
        assert r["f1"] >= min_f1, (sub, r)


@pytest.mark.parametrize("events,keys", [("untyped", ("trigger_id", "argument_id")), ("typed", ("trigger", "argument"))])
def test_oracle_round_trip_casie_document(events, keys):
    from metaie_utils.core.paths import data_file
    from metaie_utils.tasks import readers as R

    ds = get_dataset("casie", events=events)
    exs, _ = R.read_casie_doc(data_file("casie", "annotation", "10003.json"), "c")
    pred = ds.predict(OracleExtractor(ds, exs), exs)
    res = score(ds, [ds.gold(e) for e in exs], pred)
    assert set(res) == set(ds.subtasks)
    assert res[keys[0]]["f1"] >= 0.95 and res[keys[1]]["f1"] >= 0.9, res


class ResolvingExtractor(PlantedExtractor):
    """Like MetaIE.extract: ``conflict="confidence"`` (default) keeps one label per span and text."""

    def extract(self, texts, labels, conflict="confidence"):
        out = super().extract(texts, labels)
        if conflict == "all":
            return out
        best = []
        for spans in out:
            keep = {}
            for sp in spans:
                k = (sp.word_start, sp.word_end)
                if k not in keep or sp.score > keep[k].score:
                    keep[k] = sp
            best.append(list(keep.values()))
        return best


def test_one_tail_of_two_heads_survives_extractor_conflict_resolution():
    ds = re_toy()
    ex = Example("t/0", "Tom and Ann live in Rome".split(), entities=[(0, 1, "Peop"), (2, 3, "Peop"), (5, 6, "Loc")],
                 relations=[(0, 1, "Peop", 5, 6, "Loc", "Live_In"), (2, 3, "Peop", 5, 6, "Loc", "Live_In")])
    sent = " ".join(ex.tokens)
    fx = ResolvingExtractor({(sent, "Person"): [(0, 1, 0.9), (2, 3, 0.9)], (sent, "Location"): [(5, 6, 0.9)],
                             (sent, "Tom lives in"): [(5, 6, 0.8)], (sent, "Ann lives in"): [(5, 6, 0.7)]})
    assert ds.predict(fx, [ex])[0]["relation"] == set(ex.relations)
