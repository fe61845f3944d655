"""Label-to-span conversion (stage 03): teacher responses -> BIO instances, and BIO -> spans.

The teacher answers "Extract some short important information ..." with lines ``- <label>: <span>``.
This module turns each (sentence, response) into instances in the authors' format, one per label::

    {"words": label_words + [":"] + sentence_words, "ner": ["O"] * (len(label_words) + 1) + bio}

and back (:func:`decode`): BIO tags -> spans with character offsets, used by the extraction module.

Two parsers:

- ``reference`` (:func:`parse_reference`): the authors' ``distillation_dataset_sampling.py`` behaviour,
  kept for reproducing their files tag for tag. Regex ``- (.*)?: (.*)?`` over the response with leading
  and trailing "." stripped from the whole response; the label is greedy (everything up to the LAST
  ": " of the line); answers are split on ", " after deleting every " and" substring; each answer is
  word-tokenized and matched case-insensitively as an exact token sequence; EVERY occurrence is tagged.
  Quirk reproduced on purpose: the authors' code appends an instance after EACH answer of a line once
  some span matched, so ``- Location: Port-au-Prince, Haiti`` yields two instances (Port-au-Prince;
  then Port-au-Prince + Haiti). The released ``distill/metaie.json`` shows exactly this.
- ``robust`` (:func:`parse_robust`, the default): bullets ``-``/``*``/``•``/``1.``/``(1)`` or none,
  markdown ``**bold**`` labels, labels containing a colon (the split at the first ``: `` whose answer is
  found in the sentence wins), quoted spans, parenthetical notes, answers split on ``,``/``;``/`` and ``/
  `` or `` only when the whole answer is not in the sentence, trailing punctuation, duplicate labels
  merged, ``N/A``-style answers ignored. Spans are matched verbatim first, then case-insensitively;
  spans not found are dropped and counted. Overlapping spans of one label: the longer span wins, then
  the earlier one (BIO cannot hold overlaps). One instance per (sentence, label).

Bad input never crashes the stage: a line that is not UTF-8 or not JSON, a row without a sentence, a
failed request (``response`` null), an empty or garbage response (no ``label: span`` line), a label with
more words than its sentence are skipped and counted in ``metrics.json`` (``skipped_<reason>``).

Tokenization is :func:`metaie_utils.text.word_tokenize` (the corpus stage's tokenizer); quotes are
compared in a normalized form (`` and '' match ").

>>> inst = to_instance("Person", word_tokenize("Hillary Clinton meets voters."), [(0, 2)])
>>> inst["words"][:4], inst["ner"][:4]
(['Person', ':', 'Hillary', 'Clinton'], ['O', 'O', 'B', 'I'])
>>> [s["text"] for s in decode("Hillary Clinton meets voters.", ["B", "I", "O", "B", "O"])]
['Hillary Clinton', 'voters']
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from metaie_utils.core.bio import bio_spans, split_instance, to_instance

RESPONSES_FILE = "responses.jsonl"
DEFAULT_FIXTURE = "tests/fixtures/convert/responses.jsonl"
from metaie_utils.core.paths import resolve
from metaie_utils.core.text import word_tokenize as _word_tokenize


@lru_cache(maxsize=1 << 17)
def _tokenize_cached(text: str) -> tuple[str, ...]:
    return tuple(_word_tokenize(text))


def word_tokenize(text: str) -> list[str]:
    """:func:`metaie_utils.text.word_tokenize` with a cache (labels, answers and resampled sentences repeat)."""
    return list(_tokenize_cached(text))


# Label names kept by ``label_subset="ner_types"`` (compared after lower-casing): the coarse entity
# types of CoNLL2003 / OntoNotes / WNUT written as an LLM names them. The NER-type arm of the
# label-distribution ablation keeps only instances whose label is one of these.
NER_TYPE_LABELS: tuple[str, ...] = (
    "person", "people", "name", "organization", "organisation", "company", "corporation", "group",
    "location", "place", "city", "country", "state", "region", "nationality", "facility",
    "date", "time", "year", "day", "month", "event", "product", "work of art", "creative work",
    "law", "language", "money", "percent", "percentage", "quantity", "number", "cardinal", "ordinal",
    "miscellaneous", "other entity", "entity",
)


# Answers that mean "nothing" (robust mode ignores them instead of counting them as not found).
_EMPTY_ANSWERS = {"", "n/a", "na", "none", "null", "nil", "unknown", "not mentioned", "not specified", "-", "<span>"}


def resolve_overlaps(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Non-overlapping subset of word spans: the longer span wins, then the earlier one; sorted by start.

    >>> resolve_overlaps([(0, 2), (1, 4), (4, 5), (4, 5)])
    [(1, 4), (4, 5)]
    """
    kept: list[tuple[int, int]] = []
    for s, e in sorted(set(spans), key=lambda x: (-(x[1] - x[0]), x[0])):
        if all(e <= ks or s >= ke for ks, ke in kept):
            kept.append((s, e))
    return sorted(kept)


def decode(
    words_or_text: str | Sequence[str],
    tags: Sequence[str],
    scores: Sequence[float] | None = None,
    label: str | None = None,
) -> list[dict[str, Any]]:
    """BIO tags -> spans with character offsets (the inverse of :func:`to_instance` on the sentence part).

    ``words_or_text`` is a raw sentence (tokenized with :func:`metaie_utils.text.word_spans`, offsets into
    the text) or a list of words (offsets into ``" ".join(words)``). ``tags`` has one tag per word
    (``B``/``I``/``O``, typed tags like ``B-PER`` are read by their first letter). ``scores`` (one float
    per word, e.g. the max softmax probability) gives each span the mean score of its words; otherwise
    ``score`` is None. ``label`` is copied into every span when given.

    >>> decode(["St.", "Louis", "on", "Saturday"], ["B", "I", "O", "B"], scores=[0.9, 0.7, 0.1, 1.0])
    ... # doctest: +NORMALIZE_WHITESPACE
    [{'text': 'St. Louis', 'start': 0, 'end': 9, 'word_start': 0, 'word_end': 2, 'score': 0.8},
     {'text': 'Saturday', 'start': 13, 'end': 21, 'word_start': 3, 'word_end': 4, 'score': 1.0}]
    >>> decode("Tom's cat", ["B", "O", "B"])[1]["text"]
    'cat'
    """
    from metaie_utils.core.spans import to_doc  # the one word-offset routine (strings and word lists)

    doc = to_doc(words_or_text if isinstance(words_or_text, str) else list(words_or_text))
    text, offsets = doc.text, doc.offsets
    if len(tags) != len(offsets):
        raise ValueError(
            f"decode got {len(tags)} tags for {len(offsets)} words; pass one tag per word of the sentence "
            f"(strip the 'label :' prefix first, see split_instance)"
        )
    if scores is not None and len(scores) != len(tags):
        raise ValueError(f"decode got {len(scores)} scores for {len(tags)} tags; pass one score per word")
    out = []
    for ws, we in bio_spans(list(tags)):
        start, end = offsets[ws][0], offsets[we - 1][1]
        span: dict[str, Any] = {} if label is None else {"label": label}
        span.update(
            text=text[start:end], start=start, end=end, word_start=ws, word_end=we,
            score=None if scores is None else round(float(sum(scores[ws:we]) / (we - ws)), 6),
        )
        out.append(span)
    return out


def to_hf_dataset(instances: Sequence[Mapping[str, Any]]):
    """Instances -> ``datasets.Dataset`` with columns ``words``, ``ner`` (string lists), ``id``, ``label``.

    Missing ``id``/``label`` become ``""`` (the authors' files have neither).
    """
    import datasets

    features = datasets.Features({
        "words": datasets.Sequence(datasets.Value("string")),
        "ner": datasets.Sequence(datasets.Value("string")),
        "id": datasets.Value("string"),
        "label": datasets.Value("string"),
    })
    cols: dict[str, list] = {"words": [], "ner": [], "id": [], "label": []}
    for inst in instances:
        cols["words"].append(list(inst["words"]))
        cols["ner"].append(list(inst["ner"]))
        cols["id"].append(str(inst.get("id", "")))
        cols["label"].append(str(inst.get("label", "")))
    return datasets.Dataset.from_dict(cols, features=features)


def _norm_token(t: str) -> str:
    return '"' if t in ("``", "''", "\u201c", "\u201d") else t


def find_token_spans(sentence_words: Sequence[str], answer_words: Sequence[str],
                     case_sensitive: bool = False) -> list[tuple[int, int]]:
    """Every occurrence of ``answer_words`` as a contiguous token sequence of ``sentence_words``.

    >>> find_token_spans(["the", "Cat", "and", "the", "cat"], ["cat"])
    [(1, 2), (4, 5)]
    """
    n = len(answer_words)
    if n == 0 or n > len(sentence_words):
        return []
    f = (lambda t: _norm_token(t)) if case_sensitive else (lambda t: _norm_token(t).lower())
    sw = [f(t) for t in sentence_words]
    aw = [f(t) for t in answer_words]
    return [(i, i + n) for i in range(len(sw) - n + 1) if sw[i : i + n] == aw]


_REF_LINE = re.compile("- (.*)?: (.*)?")


def parse_reference(sentence: str, response: str) -> list[dict[str, Any]]:
    """The authors' parser: sentence + teacher response -> instances, tag for tag as in their files.

    See the module docstring for the rules and the one-instance-per-matched-answer quirk.

    >>> [i["ner"][2:] for i in parse_reference("Paris and Rome.", "- City: Paris, Rome")]
    [['B', 'O', 'O', 'O'], ['B', 'O', 'B', 'O']]
    """
    words = word_tokenize(sentence)
    out: list[dict[str, Any]] = []
    for query, answers in _REF_LINE.findall(response.strip(".")):
        tags = ["O"] * len(words)
        for answer in answers.replace(" and", "").split(", "):
            aw = word_tokenize(answer)
            if not aw:
                continue
            for s, e in find_token_spans(words, aw):
                tags[s] = "B"
                tags[s + 1 : e] = ["I"] * (e - s - 1)
            if any(t != "O" for t in tags):
                qw = word_tokenize(query)
                out.append({"words": qw + [":"] + words, "ner": ["O"] * (len(qw) + 1) + list(tags)})
    return out


def format_response(pairs: Iterable[tuple[str, Sequence[str]]]) -> str:
    """Teacher-style response text from ``(label, span strings)`` pairs (the prompt's ``- <label>: <span>``).

    >>> print(format_response([("Person", ["Hillary Clinton"]), ("Location", ["Paris", "Rome"])]))
    - Person: Hillary Clinton
    - Location: Paris, Rome
    """
    return "\n".join(f"- {label}: {', '.join(spans)}" for label, spans in pairs)


def responses_from_instances(instances: Sequence[Mapping[str, Any]]) -> list[tuple[list[str], str]]:
    """Rebuild one teacher response per sentence from reference instances: ``[(sentence_words, response)]``.

    Each instance gives its label and the distinct span strings its tags mark; consecutive instances of
    the same sentence and label whose spans extend the previous ones are one response line (the
    authors' parser emitted them one per answer). Sentences keep their first-seen order.
    """
    by_sentence: dict[tuple[str, ...], list[tuple[str, list[str]]]] = {}
    for inst in instances:
        lw, sw, tags = split_instance(inst)
        label = " ".join(lw)
        spans = list(dict.fromkeys(" ".join(sw[s:e]) for s, e in bio_spans(tags)))
        lines = by_sentence.setdefault(tuple(sw), [])
        if lines and lines[-1][0] == label and spans[: len(lines[-1][1])] == lines[-1][1]:
            lines[-1] = (label, spans)
        else:
            lines.append((label, spans))
    return [(list(sw), format_response(lines)) for sw, lines in by_sentence.items()]


_BULLET = re.compile(r"^\s*(?:[-*\u2022\u00b7\u2023\u25aa\u25cf\u2013\u2014>]+|\(?\d{1,3}[.)]|\(\d{1,3}\))\s*")


_COLON = re.compile(r"\s*[:\uff1a](?:\s+|$)")


_QUOTES = "\"'`\u201c\u201d\u2018\u2019\u00ab\u00bb"


_CLOSING = {"(": ")", "[": "]", "{": "}", "<": ">"}


_PAREN = re.compile(r"\s*[\(\[][^()\[\]]*[\)\]]\s*$")


_LIST_SPLIT = re.compile(r"\s*[,;]\s+")  # an answer with one of these is read as a list first


_LIST_ITEMS = re.compile(r"\s*[,;]\s+(?:and\s+|or\s+)?|\s+(?:and|or)\s+")  # "A, B and C" -> A | B | C


_SPLIT = re.compile(r"\s*;\s*|\s*,\s*(?:and\s+|or\s+)?|\s+(?:and|or|&)\s+|\s+/\s+")


_TRAIL_PUNCT = ".,;:!?"


def clean_label(label: str, mode: str = "clean") -> str:
    """Normalize a label: ``none`` keeps it; ``clean`` strips markdown, quotes, brackets, whitespace and
    turns an inner ``": "`` into ``" - "`` (so the label's words never hold the ``":"`` separator);
    ``lower`` is ``clean`` then lower case.

    >>> clean_label(' **"Event: type"** ')
    'Event - type'
    >>> clean_label("[Location (city)]")
    'Location (city)'
    >>> clean_label("Date of Birth", "lower")
    'date of birth'
    """
    if mode == "none":
        return label
    if mode not in ("clean", "lower"):
        raise ValueError(f"label_normalization must be none, clean or lower, got {mode!r}")
    s = re.sub(r"[*_#]+", " ", label).strip().strip(_QUOTES).strip()
    while len(s) >= 2 and _CLOSING.get(s[0]) == s[-1] and s[0] not in s[1:-1]:
        s = s[1:-1].strip().strip(_QUOTES).strip()  # "[Person]" -> "Person", but "Location (city)" stays
    s = re.sub(r"\s*:\s*", " - ", s).strip(" -")
    s = re.sub(r"\s+", " ", s)
    return s.lower() if mode == "lower" else s


def _strip_answer(a: str) -> str:
    a = a.strip()
    while a and a[-1] in _TRAIL_PUNCT and not re.search(r"\b\w\.\w\.$", a):  # keep U.S. / U.K.
        a = a[:-1].rstrip()
    if len(a) >= 2 and a[0] in _QUOTES and a[-1] in _QUOTES:
        a = a[1:-1].strip()
    return a


def _answer_variants(answer: str) -> list[str]:
    """Forms of one answer to try in order: cleaned (quotes, trailing punctuation), as given (``Inc.``),
    without a trailing parenthetical note."""
    out = [_strip_answer(answer), answer.strip()]
    no_paren = _PAREN.sub("", answer).strip()
    if no_paren and no_paren != answer.strip():
        out.append(_strip_answer(no_paren))
    return [a for a in dict.fromkeys(out) if a]


@dataclass
class Match:
    """Where one answer string was found: ``how`` in verbatim | case_insensitive | not_found."""

    answer: str
    how: str
    spans: list[tuple[int, int]] = field(default_factory=list)


def _match_whole(sentence_words: Sequence[str], answer: str) -> Match | None:
    for variant in _answer_variants(answer):
        for aw in _tokenizations(variant):
            hits = find_token_spans(sentence_words, aw, case_sensitive=True)
            if hits:
                return Match(variant, "verbatim", hits)
        for aw in _tokenizations(variant):
            hits = find_token_spans(sentence_words, aw)
            if hits:
                return Match(variant, "case_insensitive", hits)
    return None


def _tokenizations(answer: str) -> list[list[str]]:
    """The answer's words alone, and as inside a sentence (Treebank splits a final "." only at the end:
    "10:30 a.m." alone gives ``a.m`` + ``.`` but ``a.m.`` mid-sentence)."""
    alone = word_tokenize(answer)
    inner = word_tokenize(answer + " \u2063")[:-1] if answer.endswith(".") else alone
    return [alone] if inner == alone else [alone, inner]


def _parts(pattern: re.Pattern, answer: str) -> list[str]:
    return [p for p in pattern.split(answer) if p and p.strip() and _strip_answer(p).lower() not in _EMPTY_ANSWERS]


def match_answer(sentence_words: Sequence[str], answer: str, split: bool = True) -> list[Match]:
    """Match one answer of the robust parser -> one :class:`Match` per answer part.

    Rules, in order: (1) an answer with ", " or "; " whose items (split there and at a final
    "and"/"or": "A, B and C") are ALL found is a list (the authors split on ", "); (2) else the whole answer (as given, then stripped of quotes and trailing
    punctuation, then of a trailing parenthetical note); (3) else its parts split on ``,`` ``;`` ``and``
    ``or`` ``&`` ``/``, each matched whole; (4) else not found. Each form is looked up verbatim first,
    then case-insensitively, and every occurrence counts.

    >>> [(m.answer, m.how, m.spans) for m in match_answer(["Paris", "or", "rome", "."], "Paris and Rome")]
    [('Paris', 'verbatim', [(0, 1)]), ('Rome', 'case_insensitive', [(2, 3)])]
    >>> [m.spans for m in match_answer(["Johnson", "and", "Johnson", "sued"], "Johnson and Johnson")]
    [[(0, 3)]]
    """
    if split and _LIST_SPLIT.search(answer):
        parts = _parts(_LIST_ITEMS, answer)
        if len(parts) > 1:
            found = [_match_whole(sentence_words, p) for p in parts]
            if all(found):
                return found  # type: ignore[return-value]
    whole = _match_whole(sentence_words, answer)
    if whole:
        return [whole]
    if split:
        parts = _parts(_SPLIT, answer)
        if len(parts) > 1:
            return [m for p in parts for m in match_answer(sentence_words, p, split=False)]
    return [Match(_strip_answer(answer) or answer.strip(), "not_found")]


@dataclass
class ParsedLabel:
    """One label of a response with its answers' matches (robust mode)."""

    label: str
    matches: list[Match] = field(default_factory=list)

    @property
    def spans(self) -> list[tuple[int, int]]:
        return resolve_overlaps(s for m in self.matches for s in m.spans)


def _split_line(line: str) -> list[tuple[str, str]]:
    """Candidate (label, answer) splits of one line, first colon first."""
    body = _BULLET.sub("", line, count=1).strip()
    if not body:
        return []
    cands = []
    for m in _COLON.finditer(body):
        label, answer = body[: m.start()].strip(), body[m.end() :].strip()
        if label and answer:
            cands.append((label, answer))
    return cands


def parse_robust(sentence_words: Sequence[str], response: str, label_normalization: str = "clean") -> list[ParsedLabel]:
    """Robust parser: response -> labels with matched spans, in response order, duplicate labels merged.

    A line ``label: answer`` may start with any bullet or none. When a line has several ``": "``, the
    first split whose answer is found in the sentence wins (labels with a colon, spans with a colon).
    Lines without a usable ``label: answer`` (headers, prose) are ignored.

    >>> ws = word_tokenize("Hillary Clinton met voters in St. Louis.")
    >>> [(p.label, p.spans) for p in parse_robust(ws, "1. **Person**: Hillary Clinton (politician)\\n* City: St. Louis")]
    [('Person', [(0, 2)]), ('City', [(5, 7)])]
    """
    merged: dict[str, ParsedLabel] = {}
    for line in response.splitlines():
        if "<label>" in line.lower() or "<span>" in line.lower():
            continue  # the prompt's format line echoed back
        cands = _split_line(line)
        if not cands:
            continue
        chosen = None
        for label, answer in cands:
            if _strip_answer(answer).lower() in _EMPTY_ANSWERS:
                continue
            matches = match_answer(sentence_words, answer)
            if chosen is None:
                chosen = (label, matches)
            if any(m.spans for m in matches):
                chosen = (label, matches)
                break
        if chosen is None:
            continue
        label = clean_label(chosen[0], label_normalization)
        if not label or label.lower() in ("label", "<label>"):
            continue
        key = label.lower() if label_normalization != "none" else label
        merged.setdefault(key, ParsedLabel(label)).matches.extend(chosen[1])
    return list(merged.values())


def read_responses(path: str | Path, stats: Counter | None = None) -> Iterator[dict[str, Any]]:
    """Rows of a ``responses.jsonl`` (a run directory or the file). Lines that are not UTF-8 or not a JSON
    object with a string ``text`` are skipped and counted in ``stats["skipped_<reason>"]``."""
    p = resolve(path)
    if p.is_dir():
        p = p / RESPONSES_FILE
    if not p.is_file():
        raise FileNotFoundError(
            f"No responses at {p}. Point input_dir at stage 02's run directory (outputs/02_distill_llm/<run>) "
            f"or at a responses.jsonl file (e.g. {DEFAULT_FIXTURE})."
        )
    stats = stats if stats is not None else Counter()
    with p.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                stats["skipped_non_utf8"] += 1
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                stats["skipped_bad_json"] += 1
                continue
            if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row["text"].strip():
                stats["skipped_missing_text"] += 1
                continue
            row.setdefault("id", f"line{lineno}")
            row["id"] = str(row["id"])
            yield row


def _subsample(items: list, k: int, seed: int) -> list:
    """A seeded subsample of ``k`` items in their original order (all when ``k`` is 0 or too big)."""
    if k <= 0 or k >= len(items):
        return list(items)
    idx = sorted(random.Random(seed).sample(range(len(items)), k))
    return [items[i] for i in idx]


def length_category(n_words: int) -> str:
    """Label length bucket of the paper's Table 1: ``"1"``, ``"2"``, ``"3"`` or ``"4+"`` words."""
    return "4+" if n_words >= 4 else str(max(n_words, 1))


@dataclass
class ConvertResult:
    """What :func:`convert_responses` produced: train and held-out instances, per-label stats, metrics."""

    instances: list[dict[str, Any]]
    heldout: list[dict[str, Any]]
    label_stats: list[dict[str, Any]]
    metrics: dict[str, Any]
    span_lengths: list[int] = field(default_factory=list)

    @property
    def train(self) -> list[dict[str, Any]]:
        """The training instances (``instances.json``); an alias of ``instances``."""
        return self.instances


def instances_from_response(row: Mapping[str, Any], cfg: Any, stats: Counter) -> list[dict[str, Any]]:
    """One response row -> its instances (with ``id``, ``label`` and ``sentence_id`` keys), counting reasons."""
    text, response = row["text"], row.get("response")
    if response is None:
        stats["skipped_no_response"] += 1
        return []
    if not isinstance(response, str) or not response.strip():
        stats["skipped_empty_response"] += 1
        return []
    words = word_tokenize(text)
    out: list[dict[str, Any]] = []
    if cfg.parse_mode == "reference":
        for inst in parse_reference(text, response):
            out.append({**inst, "label": " ".join(split_instance(inst)[0])})
        # match statistics of the reference parser: per answer, as the authors split them
        for _query, answers in _REF_LINE.findall(response.strip(".")):
            for a in answers.replace(" and", "").split(", "):
                aw = word_tokenize(a)
                if not aw:
                    continue
                stats["answers"] += 1
                if find_token_spans(words, aw, case_sensitive=True):
                    stats["answers_verbatim"] += 1
                elif find_token_spans(words, aw):
                    stats["answers_case_insensitive"] += 1
                else:
                    stats["answers_not_found"] += 1
        if not _REF_LINE.search(response):
            stats["skipped_no_label_lines"] += 1
    else:
        parsed = parse_robust(words, response, cfg.label_normalization)
        if not parsed:
            stats["skipped_no_label_lines"] += 1
        for pl in parsed:
            for m in pl.matches:
                stats["answers"] += 1
                stats[f"answers_{m.how}"] += 1
            all_spans = [s for m in pl.matches for s in m.spans]
            spans = pl.spans
            stats["spans_dropped_overlap"] += len(set(all_spans)) - len(spans)
            if spans or cfg.negatives:
                out.append(to_instance(pl.label, words, spans, label=pl.label))
                if not spans:
                    stats["negative_instances"] += 1
            else:
                stats["labels_without_span"] += 1
    kept = []
    for inst in out:
        n_label = inst["words"].index(":")
        if n_label > len(words):
            stats["skipped_label_longer_than_sentence"] += 1
            continue
        if n_label == 0:
            stats["skipped_empty_label"] += 1
            continue
        kept.append(inst)
    return kept


def convert_responses(rows: Iterable[Mapping[str, Any]], cfg: Any, stats: Counter | None = None,
                      progress: bool = True) -> ConvertResult:
    """Responses -> :class:`ConvertResult` following every option of ``cfg`` (see ConvertConfig).

    Order: seeded sentence subsample (``max_sentences``) -> parse and match -> instances whose label has
    more words than the sentence dropped -> (robust mode) exact duplicate instances of a sentence dropped
    (several teacher samples of one sentence; reference mode keeps them, as the authors did) -> ``max_labels_per_sentence`` -> label filters
    (``min_label_freq``, ``label_subset``) -> seeded ``max_instances`` subsample -> held-out split by
    sentence (no sentence in both files). Each instance carries ``id`` (``<sentence id>#<k>``) and ``label``.
    """
    from tqdm.auto import tqdm

    stats = stats if stats is not None else Counter()
    rows = list(rows)
    stats["responses"] = len(rows)
    sentence_ids = list(dict.fromkeys(str(r["id"]) for r in rows))
    keep_ids = set(_subsample(sentence_ids, cfg.max_sentences, cfg.seed))
    rows = [r for r in rows if str(r["id"]) in keep_ids]
    stats["sentences"] = len(keep_ids)

    per_sentence: dict[str, list[dict[str, Any]]] = defaultdict(list)
    seen: dict[str, set] = defaultdict(set)
    for row in tqdm(rows, desc="parse responses", disable=not progress, mininterval=1.0):
        sid = str(row["id"])
        for inst in instances_from_response(row, cfg, stats):
            key = (tuple(inst["words"]), tuple(inst["ner"]))
            if key in seen[sid] and cfg.parse_mode == "robust":
                stats["duplicate_instances"] += 1
                continue
            seen[sid].add(key)
            per_sentence[sid].append(inst)

    instances: list[dict[str, Any]] = []
    for sid, insts in per_sentence.items():
        if cfg.max_labels_per_sentence:
            labels = list(dict.fromkeys(i["label"] for i in insts))[: cfg.max_labels_per_sentence]
            stats["dropped_max_labels_per_sentence"] += sum(i["label"] not in labels for i in insts)
            insts = [i for i in insts if i["label"] in labels]
        for k, inst in enumerate(insts):
            instances.append({"words": inst["words"], "ner": inst["ner"], "id": f"{sid}#{k}", "label": inst["label"]})

    freq = Counter(i["label"] for i in instances)
    allowed = {l for l, c in freq.items() if c >= cfg.min_label_freq}
    if cfg.label_subset == "top_k":
        ranked = sorted(allowed, key=lambda l: (-freq[l], l))
        allowed = set(ranked[: cfg.label_top_k])
    elif cfg.label_subset == "ner_types":
        allowed = {l for l in allowed if l.lower() in NER_TYPE_LABELS}
    before = len(instances)
    instances = [i for i in instances if i["label"] in allowed]
    stats["dropped_label_filter"] += before - len(instances)
    before = len(instances)
    instances = _subsample(instances, cfg.max_instances, cfg.seed)
    stats["dropped_max_instances"] += before - len(instances)

    sids = list(dict.fromkeys(i["id"].rsplit("#", 1)[0] for i in instances))
    n_held = 0
    if cfg.heldout_fraction > 0 and len(sids) >= 2:
        n_held = min(len(sids) - 1, max(1, round(cfg.heldout_fraction * len(sids))))
    held_ids = set(random.Random(cfg.seed + 1).sample(sids, n_held)) if n_held else set()
    train = [i for i in instances if i["id"].rsplit("#", 1)[0] not in held_ids]
    held = [i for i in instances if i["id"].rsplit("#", 1)[0] in held_ids]

    label_stats, span_lengths = label_statistics(instances)
    metrics = summarize(stats, instances, train, held, label_stats, span_lengths)
    return ConvertResult(train, held, label_stats, metrics, span_lengths)


def label_statistics(instances: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[int]]:
    """Per-label rows ``{label, rank, instances, sentences, spans, label_words, length_category}`` sorted by
    frequency (rank 1 = most frequent), and the word length of every span."""
    n_inst: Counter = Counter()
    n_spans: Counter = Counter()
    sents: dict[str, set] = defaultdict(set)
    lengths: dict[str, int] = {}
    span_lengths: list[int] = []
    for inst in instances:
        lw, _, tags = split_instance(inst)
        label = inst.get("label") or " ".join(lw)
        n_inst[label] += 1
        sents[label].add(str(inst.get("id", "")).rsplit("#", 1)[0] or " ".join(inst["words"]))
        lengths[label] = len(lw)
        spans = bio_spans(tags)
        n_spans[label] += len(spans)
        span_lengths.extend(e - s for s, e in spans)
    rows = []
    for rank, (label, c) in enumerate(sorted(n_inst.items(), key=lambda x: (-x[1], x[0])), 1):
        rows.append({"label": label, "rank": rank, "instances": c, "sentences": len(sents[label]),
                     "spans": n_spans[label], "label_words": lengths[label],
                     "length_category": length_category(lengths[label])})
    return rows, span_lengths


def summarize(stats: Mapping[str, int], instances: Sequence, train: Sequence, held: Sequence,
              label_stats: Sequence[Mapping[str, Any]], span_lengths: Sequence[int]) -> dict[str, Any]:
    """Flat metrics for metrics.json: counts, skip reasons, match rates, label length shares, span lengths."""
    answers = stats.get("answers", 0)
    cats = Counter(r["length_category"] for r in label_stats)
    n_labels = len(label_stats)
    m: dict[str, Any] = {
        "responses": stats.get("responses", 0),
        "sentences": stats.get("sentences", 0),
        "sentences_with_instances": len({str(i.get("id", "")).rsplit("#", 1)[0] for i in instances}),
        "instances": len(instances),
        "train_instances": len(train),
        "heldout_instances": len(held),
        "distinct_labels": n_labels,
        "answers": answers,
    }
    for how in ("verbatim", "case_insensitive", "not_found"):
        m[f"answers_{how}"] = stats.get(f"answers_{how}", 0)
        m[f"match_rate_{how}"] = round(stats.get(f"answers_{how}", 0) / answers, 4) if answers else 0.0
    for c in ("1", "2", "3", "4+"):
        m[f"label_share_{c}_words"] = round(cats.get(c, 0) / n_labels, 4) if n_labels else 0.0
    m["spans"] = len(span_lengths)
    m["span_len_mean"] = round(sum(span_lengths) / len(span_lengths), 4) if span_lengths else 0.0
    m["span_len_max"] = max(span_lengths) if span_lengths else 0
    m["instances_per_sentence"] = round(len(instances) / m["sentences_with_instances"], 4) if m["sentences_with_instances"] else 0.0
    m["top_label"] = label_stats[0]["label"] if label_stats else ""
    for k, v in sorted(stats.items()):
        if k.startswith(("skipped_", "dropped_", "duplicate_", "labels_without", "negative_", "spans_dropped")):
            m[k] = v
    return m
