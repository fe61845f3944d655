"""Stage 03: parsing teacher responses, BIO instances, decoding, statistics, options, CLI.

Golden tests use the authors' files in metaie_reference (found through metaie_utils.paths.data_file).
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metaie_utils.cli import main as cli_main
from metaie_utils.core import bio
from metaie_utils.core.paths import data_file, resolve
from metaie_utils.core.text import word_spans, word_tokenize
from metaie_utils.llm import label_to_span as l2s
from metaie_utils.stages import convert as stage03

pytestmark = pytest.mark.unit


def _reference_instances():
    return bio.load_instances(data_file("metaie_reference", "distill", "metaie.json"))


def _reference_sentences():
    return [s for s in data_file("metaie_reference", "example.txt").read_text().split("\n") if s.strip()]


def _convert(rows, **kw):
    cfg = stage03.ConvertConfig(**{"heldout_fraction": 0.0, **kw})
    stats = Counter()
    return l2s.convert_responses(rows, cfg, stats, progress=False), stats


def _row(sid, text, response, **kw):
    return {"id": sid, "text": text, "response": response, **kw}


# ---------------------------------------------------------------------------------------- golden


def test_reference_parser_reproduces_the_authors_instances_tag_for_tag():
    insts = _reference_instances()
    assert len(insts) == 10
    responses = {tuple(sw): resp for sw, resp in l2s.responses_from_instances(insts)}
    produced = []
    for sentence in _reference_sentences():
        resp = responses.get(tuple(word_tokenize(sentence)))
        if resp is not None:
            produced.extend(l2s.parse_reference(sentence, resp))
    assert [p["words"] for p in produced] == [i["words"] for i in insts]
    assert [p["ner"] for p in produced] == [i["ner"] for i in insts]


def test_reference_responses_rebuilt_from_the_authors_instances():
    by_words = {tuple(sw): resp for sw, resp in l2s.responses_from_instances(_reference_instances())}
    assert len(by_words) == 4  # all four example.txt sentences have instances
    haiti = next(r for sw, r in by_words.items() if sw[0] == "Port-au-Prince")
    # two authors' instances (Port-au-Prince; Port-au-Prince + Haiti) are one line answered with a list
    assert haiti == "- Location: Port-au-Prince, Haiti"
    clinton = next(r for sw, r in by_words.items() if sw[0] == "Former")
    assert clinton.splitlines() == ["- Person: Hillary Clinton", "- Position: Former secretary of state",
                                    "- Activity: meets voters", "- Location: St. Louis", "- Date: Saturday"]


def test_robust_parser_finds_the_same_spans_on_the_reference_responses():
    insts = _reference_instances()
    for sw, resp in l2s.responses_from_instances(insts):
        parsed = {p.label: p.spans for p in l2s.parse_robust(sw, resp)}
        last = {}  # the authors' last instance of a label holds all its spans
        for inst in insts:
            lw, w, tags = bio.split_instance(inst)
            if w == sw:
                last[" ".join(lw)] = bio.bio_spans(tags)
        assert parsed == last


@pytest.mark.parametrize("name,count", [("train.5-shot.conll2003.json", 80), ("test.conll2003.json", 13812)])
def test_authors_conll_files_load_and_round_trip(name, count):
    insts = bio.load_instances(data_file("metaie_reference", "dataset", name))
    assert len(insts) == count
    labels = Counter(" ".join(bio.split_instance(i)[0]) for i in insts)
    assert set(labels) == {"Organization", "Other entity", "Person", "Location"}
    n_spans = 0
    for inst in insts:
        lw, sw, tags = bio.split_instance(inst)
        spans = l2s.decode(sw, tags)
        n_spans += len(spans)
        rebuilt = bio.to_instance(lw, sw, [(s["word_start"], s["word_end"]) for s in spans])
        assert rebuilt == {"words": inst["words"], "ner": inst["ner"]}
        text = " ".join(sw)
        assert all(text[s["start"]:s["end"]] == s["text"] == " ".join(sw[s["word_start"]:s["word_end"]]) for s in spans)
    assert n_spans > 0


def test_authors_files_become_a_hf_dataset_unchanged():
    insts = bio.load_instances(data_file("metaie_reference", "dataset", "train.5-shot.conll2003.json"))
    ds = l2s.to_hf_dataset(insts)
    assert len(ds) == 80 and set(ds.column_names) == {"words", "ner", "id", "label"}
    assert ds[7]["words"] == insts[7]["words"] and ds[7]["ner"] == insts[7]["ner"] and ds[7]["id"] == ""


# -------------------------------------------------------------------------------- reference quirks


def test_reference_mode_quirks_are_the_authors():
    s = "Tom and Anna visited Rome and Paris ."
    # " and" is deleted everywhere in the answer: "Rome and Paris" -> "Rome Paris" (not found)
    assert l2s.parse_reference(s, "- City: Rome and Paris") == []
    # the label is greedy (up to the last ": "); the whole response loses leading/trailing dots only
    out = l2s.parse_reference(s, "- Trip: visit: Rome.")
    assert len(out) == 1 and out[0]["words"][:4] == ["Trip", ":", "visit", ":"]
    # one instance after each matched answer, tags accumulating; every occurrence tagged, case-insensitive
    out = l2s.parse_reference("paris , Paris and Rome", "- City: Paris, Rome")
    assert [o["ner"][2:] for o in out] == [["B", "O", "B", "O", "O"], ["B", "O", "B", "O", "B"]]


# ---------------------------------------------------------------------------------- robust parser


def _spans(words, response, **kw):
    return {p.label: [" ".join(words[s:e]) for s, e in p.spans] for p in l2s.parse_robust(words, response, **kw)}


def test_robust_parser_reads_messy_responses():
    words = word_tokenize("Apple Inc. said on Monday that Tim Cook will visit Paris and Berlin in March 2024.")
    resp = ("Here is the important information:\n1. **Company**: Apple Inc.\n2) Person: Tim Cook (CEO)\n"
            "\u2022 Date: \"Monday\"\n* Time: March 2024.\n(3) Cities: Paris, Berlin\n- Person: Tim Cook\n"
            "- Product: iPhone\n- Day: N/A\nProse without a colon")
    assert _spans(words, resp) == {"Company": ["Apple Inc."], "Person": ["Tim Cook"], "Date": ["Monday"],
                                   "Time": ["March 2024"], "Cities": ["Paris", "Berlin"], "Product": []}
    how = {p.label: [m.how for m in p.matches] for p in l2s.parse_robust(words, resp)}
    assert how["Product"] == ["not_found"] and how["Person"] == ["verbatim", "verbatim"]  # duplicates merged


def test_robust_parser_colons_in_labels_and_spans():
    words = word_tokenize('The film "Star Wars: A New Hope" premiered at 10:30 a.m. in Los Angeles.')
    got = _spans(words, "- Event: type: premiered\n- Title: Star Wars: A New Hope\n- Time: 10:30 a.m.\n"
                        "- Location: los angeles")
    assert got == {"Event - type": ["premiered"], "Title": ["Star Wars : A New Hope"], "Time": ["10:30 a.m."],
                   "Location": ["Los Angeles"]}
    assert ":" not in bio.to_instance("Event - type", words, [(0, 1)])["words"][:3]


def test_robust_lists_and_conjunctions():
    words = word_tokenize("Johnson and Johnson sued Paris, Berlin and Rome on Friday.")
    assert _spans(words, "- Company: Johnson and Johnson") == {"Company": ["Johnson and Johnson"]}
    assert _spans(words, "- Cities: Paris, Berlin and Rome") == {"Cities": ["Paris", "Berlin", "Rome"]}
    assert _spans(words, "- Day: Friday, Saturday") == {"Day": ["Friday"]}  # partial list: parts matched alone


def test_overlapping_spans_longer_wins_then_earlier():
    words = word_tokenize("The New York Stock Exchange and New York City closed early.")
    got = l2s.parse_robust(words, "- Place: New York Stock Exchange, New York")
    # "New York" occurs inside the exchange (dropped: the longer span wins) and alone (kept)
    assert [" ".join(words[s:e]) for s, e in got[0].spans] == ["New York Stock Exchange", "New York"]
    assert l2s.resolve_overlaps([(0, 2), (1, 3), (5, 6)]) == [(0, 2), (5, 6)]  # same length: earlier wins


def test_label_normalization():
    assert l2s.clean_label(" **Date of birth** ") == "Date of birth"
    assert l2s.clean_label("'Person'", "lower") == "person"
    assert l2s.clean_label("**x**", "none") == "**x**"
    assert l2s.clean_label("[Location (city)]") == "Location (city)"
    words = word_tokenize("Tom ran.")
    assert _spans(words, "Important information (Format: - <label>: <span>):\n- Person: Tom") == {"Person": ["Tom"]}
    with pytest.raises(ValueError, match="label_normalization"):
        l2s.clean_label("x", "upper")


# --------------------------------------------------------------------------------- BIO and decode


def test_bio_spans_unchanged():
    assert bio.bio_spans(["O", "B", "I", "O", "I", "B"]) == [(1, 3), (4, 5), (5, 6)]
    assert bio.bio_spans(["I", "I", "O", "B-PER", "I-PER"]) == [(0, 2), (3, 5)]
    assert bio.bio_spans([]) == []


def test_to_bio_rejects_overlaps_and_out_of_range():
    assert bio.to_bio(4, [(2, 3), (0, 2)]) == ["B", "I", "B", "O"]
    with pytest.raises(ValueError, match="overlaps"):
        bio.to_bio(4, [(0, 2), (1, 3)])
    with pytest.raises(ValueError, match="outside"):
        bio.to_bio(2, [(1, 3)])


def test_decode_raw_text_gives_character_offsets():
    text = 'Tom\'s "Big Cat" sat in St. Louis.'
    words = [w for w, _, _ in word_spans(text)]
    tags = ["O"] * len(words)
    big = words.index("Big")
    tags[big:big + 2] = ["B", "I"]
    st_ = words.index("St.")
    tags[st_:st_ + 2] = ["B", "I"]
    scores = [0.5] * len(words)
    scores[big] = 1.0
    spans = l2s.decode(text, tags, scores=scores, label="Thing")
    assert [(s["text"], text[s["start"]:s["end"]]) for s in spans] == [("Big Cat", "Big Cat"), ("St. Louis", "St. Louis")]
    assert spans[0]["score"] == 0.75 and spans[0]["label"] == "Thing" and (spans[0]["word_start"], spans[0]["word_end"]) == (big, big + 2)
    with pytest.raises(ValueError, match="tags for"):
        l2s.decode(text, tags[:-1])


def test_split_instance_errors_name_the_problem():
    with pytest.raises(ValueError, match="no ':'"):
        bio.split_instance({"words": ["a"], "ner": ["O"]})
    with pytest.raises(ValueError, match="2 words but 1 tags"):
        bio.split_instance({"words": ["a", ":"], "ner": ["O"]})


# ------------------------------------------------------------------------------------ property tests

WORDS = st.sampled_from(["alpha", "beta", "gamma", "delta", "omega", "kappa", "sigma", "tau", "rho", "zeta"])


@settings(max_examples=150, deadline=None)
@given(n=st.integers(0, 30), data=st.data())
def test_to_bio_bio_spans_round_trip(n, data):
    cuts = sorted(data.draw(st.sets(st.integers(0, n), max_size=12)))
    spans = [(a, b) for a, b in zip(cuts[::2], cuts[1::2]) if a < b]
    assert bio.bio_spans(bio.to_bio(n, spans)) == spans


@settings(max_examples=100, deadline=None)
@given(words=st.lists(st.text(st.characters(codec="utf-8", exclude_categories=["Zs", "Cc", "Zl", "Zp"]), min_size=1, max_size=6), min_size=1, max_size=12),
       data=st.data())
def test_decode_offsets_slice_the_joined_words(words, data):
    tags = data.draw(st.lists(st.sampled_from(["B", "I", "O"]), min_size=len(words), max_size=len(words)))
    text = " ".join(words)
    for s in l2s.decode(words, tags):
        assert text[s["start"]:s["end"]] == s["text"] == " ".join(words[s["word_start"]:s["word_end"]])
    spans = [(s["word_start"], s["word_end"]) for s in l2s.decode(words, tags)]
    assert bio.bio_spans(bio.to_bio(len(words), spans)) == spans


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sentence=st.lists(WORDS, min_size=1, max_size=15), data=st.data())
def test_parse_recovers_the_spans_of_a_formatted_response(sentence, data):
    """Any labels with spans taken from the sentence -> response text -> robust parse gives every occurrence."""
    n = len(sentence)
    pairs = []
    for k in range(data.draw(st.integers(1, 3))):
        answers = []
        for _ in range(data.draw(st.integers(1, 2))):
            s = data.draw(st.integers(0, n - 1))
            e = data.draw(st.integers(s + 1, min(n, s + 3)))
            answers.append(" ".join(sentence[s:e]))
        pairs.append((f"Label{k}", list(dict.fromkeys(answers))))
    parsed = {p.label: p.spans for p in l2s.parse_robust(sentence, l2s.format_response(pairs))}
    for label, answers in pairs:
        occ = [sp for a in answers for sp in l2s.find_token_spans(sentence, a.split())]
        assert parsed[label] == l2s.resolve_overlaps(occ)
    ref = l2s.parse_reference(" ".join(sentence), l2s.format_response(pairs))
    assert all(len(i["words"]) == len(i["ner"]) == n + 2 for i in ref)


@settings(max_examples=150, deadline=None)
@given(sentence=st.text(max_size=80), response=st.text(max_size=200))
def test_parsers_never_crash_and_emit_well_formed_instances(sentence, response):
    for inst in l2s.parse_reference(sentence, response):
        assert len(inst["words"]) == len(inst["ner"]) and set(inst["ner"]) <= {"O", "B", "I"}
    words = word_tokenize(sentence)
    for p in l2s.parse_robust(words, response):
        assert all(0 <= s < e <= len(words) for s, e in p.spans)
        bio.to_bio(len(words), p.spans)  # non-overlapping


# ---------------------------------------------------------------------------- whole stage, options


def test_fixture_conversion_counts_every_bad_input():
    stats = Counter()
    rows = list(l2s.read_responses(l2s.DEFAULT_FIXTURE, stats))
    result = l2s.convert_responses(rows, stage03.ConvertConfig(), stats, progress=False)
    m = result.metrics
    assert (m["responses"], m["sentences"]) == (13, 12)
    assert m["skipped_empty_response"] == m["skipped_no_response"] == m["skipped_no_label_lines"] == 1
    assert m["skipped_label_longer_than_sentence"] == 1 and m["duplicate_instances"] == 2
    assert m["answers_not_found"] == 3 and m["labels_without_span"] == 2 and m["spans_dropped_overlap"] == 1
    assert m["instances"] == len(result.instances) + len(result.heldout) == 26
    held = {i["id"].rsplit("#", 1)[0] for i in result.heldout}
    assert held and not held & {i["id"].rsplit("#", 1)[0] for i in result.instances}
    assert sum(r["instances"] for r in result.label_stats) == 26


def test_unreadable_lines_are_skipped_and_counted(tmp_path):
    p = tmp_path / "responses.jsonl"
    good = json.dumps({"id": "a", "text": "Tom ran .", "response": "- Person: Tom"}).encode()
    p.write_bytes(b"\n".join([good, b'{"id": "b", "text": "caf\xe9"}', b"{not json", b'{"id": "c"}', b"[1, 2]", good]) + b"\n")
    stats = Counter()
    rows = list(l2s.read_responses(tmp_path, stats))
    assert len(rows) == 2
    assert (stats["skipped_non_utf8"], stats["skipped_bad_json"], stats["skipped_missing_text"]) == (1, 1, 2)
    with pytest.raises(FileNotFoundError, match="02_distill_llm"):
        list(l2s.read_responses(tmp_path / "missing"))


ROWS = [_row(f"s{i}", f"Anna met Tom in Rome on day {i} .",
             "- Person: Anna, Tom\n- City: Rome\n- Day: day\n- Food: pasta" + ("\n- Name: Anna" if i % 2 else ""))
        for i in range(10)]


def test_options_filter_and_subsample():
    base, _ = _convert(ROWS)
    assert len(base.instances) == 10 * 3 + 5  # Food never matches
    assert _convert(ROWS, negatives=True)[0].metrics["instances"] == 10 * 4 + 5
    assert _convert(ROWS, max_labels_per_sentence=2)[0].metrics["instances"] == 20
    assert {r["label"] for r in _convert(ROWS, min_label_freq=6)[0].label_stats} == {"Person", "City", "Day"}
    top = _convert(ROWS, label_subset="top_k", label_top_k=1)[0]
    assert {i["label"] for i in top.instances} == {"City"}  # ties broken alphabetically
    assert {i["label"] for i in _convert(ROWS, label_subset="ner_types")[0].instances} == {"Person", "City", "Day", "Name"}
    sub = _convert(ROWS, max_instances=7, seed=3)[0]
    assert len(sub.instances) == 7 and sub.instances == _convert(ROWS, max_instances=7, seed=3)[0].instances
    few = _convert(ROWS, max_sentences=4, seed=1)[0]
    assert few.metrics["sentences"] == 4 and len({i["id"].split("#")[0] for i in few.instances}) == 4
    assert _convert(ROWS, label_normalization="lower")[0].label_stats[0]["label"].islower()


def test_heldout_split_is_by_sentence_and_seeded():
    a, _ = _convert(ROWS, heldout_fraction=0.3, seed=5)
    b, _ = _convert(ROWS, heldout_fraction=0.3, seed=5)
    assert a.heldout == b.heldout and len({i["id"].split("#")[0] for i in a.heldout}) == 3
    assert not {i["id"].split("#")[0] for i in a.heldout} & {i["id"].split("#")[0] for i in a.instances}
    with pytest.raises(ValueError, match="heldout_fraction"):
        stage03.ConvertConfig(heldout_fraction=0.9)


def test_reference_mode_in_the_stage_keeps_the_authors_duplicates():
    res, _ = _convert([_row("x", "Port-au-Prince , Haiti .", "- Location: Port-au-Prince, Haiti")], parse_mode="reference")
    assert [i["ner"][2:] for i in res.instances] == [["B", "O", "O", "O"], ["B", "O", "B", "O"]]
    res, _ = _convert([_row("x", "Port-au-Prince , Haiti .", "- Location: Port-au-Prince, Haiti")])
    assert [i["ner"][2:] for i in res.instances] == [["B", "O", "B", "O"]]


def test_length_category_and_stats():
    assert [l2s.length_category(n) for n in (1, 2, 3, 4, 9)] == ["1", "2", "3", "4+", "4+"]
    res, _ = _convert(ROWS)
    m = res.metrics
    assert m["label_share_1_words"] == 1.0 and m["distinct_labels"] == 4
    assert m["match_rate_verbatim"] == round(m["answers_verbatim"] / m["answers"], 4)


def test_cli_convert_writes_the_stage_files(tmp_path, capsys):
    out = tmp_path / "conv"
    assert cli_main(["convert", "--input", str(resolve(l2s.DEFAULT_FIXTURE)), "--output", str(out), "--quiet"]) == 0
    insts = bio.load_instances(out / "instances.json")
    assert insts and all(set(i) == {"words", "ner", "id", "label"} for i in insts)
    assert (out / "heldout.json").is_file() and (out / "label_stats.csv").read_text().startswith("label,rank,")
    assert json.loads((out / "metrics.json").read_text())["instances"] == 26
    assert cli_main(["convert", "--input", str(resolve(l2s.DEFAULT_FIXTURE)), "--output", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_docstring_examples():
    import doctest

    assert doctest.testmod(l2s, raise_on_error=False).failed == 0
