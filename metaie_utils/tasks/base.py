"""Shared pieces of every task family: the ``Example`` record, query instances, the dataset base class.

Every IE task is cast as label-conditioned span extraction: an *instance* is the query's label words, a
``":"`` and the sentence words, tagged with untyped BIO (the authors' format)::

    >>> make_instance("Person", ["Tom", "meets", "Ann", "."], [(0, 1), (2, 3)])
    {'words': ['Person', ':', 'Tom', 'meets', 'Ann', '.'], 'ner': ['O', 'O', 'B', 'O', 'B', 'O']}

Label words come from :func:`label_words` (the project's one word tokenizer, as the authors apply
``nltk.word_tokenize`` to the label); the extractor must turn label strings into words the same way.

Offsets are half-open word indices ``(start, end)`` into ``Example.tokens`` everywhere.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from metaie_utils.core.bio import label_words  # noqa: F401  (re-exported: tasks.label_words)
from metaie_utils.core.errors import UserError

__all__ = [
    "Example", "Event", "Frame", "FormatError", "TaskDataset", "Extractor",
    "label_words", "make_instance", "span_text", "verbalize", "resolve_conflicts", "run_queries",
]

Span = tuple[int, int]


class FormatError(UserError, ValueError):
    """A data file is not in the expected format; the message names the file and the line."""

    def __init__(self, path: str | Path, line: int | None, problem: str, expected: str):
        where = f"{path}, line {line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {problem}. Expected {expected}.")
        self.path, self.line = str(path), line


@dataclass
class Event:
    """One event mention: trigger span, event type and its arguments ``(start, end, role)``."""

    trigger: Span
    type: str
    arguments: list[tuple[int, int, str]] = field(default_factory=list)


@dataclass
class Frame:
    """One predicate (SRL) with its arguments ``(start, end, role)``; for QA-SRL the role is the question."""

    predicate: Span
    sense: str = ""
    arguments: list[tuple[int, int, str]] = field(default_factory=list)


@dataclass
class Example:
    """One sentence with the gold structures of its task (the unused lists stay empty).

    - ``entities``: ``(start, end, type)`` with the dataset's raw type names (``"PER"``, ``"Peop"``).
    - ``relations``: ``(head_start, head_end, head_type, tail_start, tail_end, tail_type, relation)``.
    - ``events``: :class:`Event`; ``frames``: :class:`Frame` (SRL predicates);
    - ``triplets``: ``(aspect_start, aspect_end, opinion_start, opinion_end, polarity)`` (ABSA/ASTE).
    """

    id: str
    tokens: list[str]
    entities: list[tuple[int, int, str]] = field(default_factory=list)
    relations: list[tuple[int, int, str, int, int, str, str]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)
    triplets: list[tuple[int, int, int, int, str]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


class Extractor(Protocol):
    """What ``predict`` needs: ``MetaIE.extract(texts, labels)`` (see extraction.py).

    ``labels`` is one list for all texts or one list per text; the result is, per text, a list of spans
    with attributes ``label``, ``word_start``, ``word_end`` (half-open) and ``score``.
    """

    def extract(self, texts: Sequence[Sequence[str]], labels: Sequence[str] | Sequence[Sequence[str]]) -> list[list[Any]]: ...


def make_instance(label: str, tokens: Sequence[str], spans: Iterable[Span]) -> dict:
    """One training instance in the authors' format: ``label words + [":"] + tokens`` with BIO tags.

    Overlapping answer spans cannot be encoded in one BIO sequence: a span that overlaps an earlier
    (longer-first) one is dropped.

    >>> make_instance("Other entity", ["a", "b", "c"], [(1, 3)])["ner"]
    ['O', 'O', 'O', 'O', 'B', 'I']
    """
    lw = label_words(label)
    tags = ["O"] * len(tokens)
    for s, e in sorted(set(spans), key=lambda x: (-(x[1] - x[0]), x[0])):
        if not (0 <= s < e <= len(tokens)):
            raise ValueError(f"span {(s, e)} is outside the sentence of {len(tokens)} words: {list(tokens)[:20]}")
        if any(t != "O" for t in tags[s:e]):
            continue
        tags[s] = "B"
        for i in range(s + 1, e):
            tags[i] = "I"
    return {"words": lw + [":"] + list(tokens), "ner": ["O"] * (len(lw) + 1) + tags}


def span_text(tokens: Sequence[str], span: Span) -> str:
    """The words of a span joined by spaces.

    >>> span_text(["New", "York", "is"], (0, 2))
    'New York'
    """
    return " ".join(tokens[span[0]:span[1]])


def verbalize(raw: str) -> str:
    """Default natural-language name of a raw type: separators to spaces, lower case except short
    all-caps acronyms (2-3 letters), first letter upper. Pass your own table for anything better.

    >>> verbalize("creative-work"), verbalize("cell_line"), verbalize("Number-of-Victim"), verbalize("DRUG_NAME")
    ('Creative work', 'Cell line', 'Number of victim', 'Drug name')
    >>> verbalize("CVE"), verbalize("Vulnerable_System_Version")
    ('CVE', 'Vulnerable system version')
    """
    words = re.sub(r"[-_]+", " ", raw).split()
    if not words:
        raise ValueError(f"cannot verbalize the empty type name {raw!r}")
    text = " ".join(w if (w.isupper() and 1 < len(w) <= 3) else w.lower() for w in words)
    return text[0].upper() + text[1:]


def resolve_conflicts(spans: Iterable[tuple[int, int, str, float]]) -> set[tuple[int, int, str]]:
    """Keep one label per identical span: the one with the highest score (the paper's rule; ties and the
    rule itself are :func:`metaie_utils.core.spans.best_per_span`'s).

    >>> sorted(resolve_conflicts([(0, 2, "PER", 0.9), (0, 2, "ORG", 0.4), (3, 4, "LOC", 0.5)]))
    [(0, 2, 'PER'), (3, 4, 'LOC')]
    """
    from metaie_utils.core.spans import best_per_span

    best = best_per_span(spans, key=lambda t: (t[0], t[1]), score=lambda t: t[3], label=lambda t: t[2])
    return {(s, e, lab) for s, e, lab, _ in best}


def _get(span: Any, name: str) -> Any:
    return span[name] if isinstance(span, dict) else getattr(span, name)


def _extract_all(extractor: Extractor, texts: list[list[str]], labels: list[list[str]]) -> list[list[Any]]:
    """``extractor.extract`` WITHOUT its cross-label conflict resolution when it has one
    (``MetaIE.extract(..., conflict="all")``): a stage-2 answer may rightly appear under two labels (one
    tail of two heads), and stage 1 resolves same-span conflicts itself (:func:`resolve_conflicts`)."""
    try:
        params = inspect.signature(extractor.extract).parameters
    except (TypeError, ValueError):
        params = {}
    if "conflict" in params:
        return extractor.extract(texts, labels, conflict="all")
    return extractor.extract(texts, labels)


def run_queries(
    extractor: Extractor,
    texts: Sequence[Sequence[str]],
    labels: Sequence[Sequence[str]],
    batch_size: int = 64,
    desc: str = "queries",
) -> list[list[tuple[int, int, str, float]]]:
    """Ask ``extractor`` every label of ``labels[i]`` on ``texts[i]``; spans as ``(start, end, label, score)``.

    Texts without labels are skipped (empty result). Calls ``extract`` on chunks of ``batch_size`` texts
    (one label list per text) under a tqdm bar, with the extractor's own conflict resolution off.
    """
    from tqdm.auto import tqdm

    if len(texts) != len(labels):
        raise ValueError(f"run_queries got {len(texts)} texts but {len(labels)} label lists")
    out: list[list[tuple[int, int, str, float]]] = [[] for _ in texts]
    todo = [i for i, labs in enumerate(labels) if labs]
    n_pairs = sum(len(labels[i]) for i in todo)
    with tqdm(total=n_pairs, desc=desc, unit="query", disable=n_pairs == 0, leave=False) as bar:
        for b in range(0, len(todo), max(1, batch_size)):
            idx = todo[b:b + max(1, batch_size)]
            res = _extract_all(extractor, [list(texts[i]) for i in idx], [list(labels[i]) for i in idx])
            if len(res) != len(idx):
                raise ValueError(f"extractor.extract returned {len(res)} results for {len(idx)} texts")
            for i, spans in zip(idx, res):
                allowed = set(labels[i])
                for sp in spans:
                    lab = _get(sp, "label")
                    if lab not in allowed:
                        continue
                    out[i].append((int(_get(sp, "word_start")), int(_get(sp, "word_end")), lab, float(_get(sp, "score"))))
                bar.update(len(labels[i]))
    return out


class TaskDataset:
    """Base class of every dataset: loading, caching, K-shot types, instances, gold, prediction.

    Subclasses set ``task`` and implement ``_read(split)``, ``example_types``, ``instances``, ``gold``,
    ``predict``. ``load(split)`` caches the parsed split on the object.
    """

    task: ClassVar[str] = ""
    subtasks: ClassVar[tuple[str, ...]] = ()
    #: stage-2 sub-tasks that ``predict(..., anchors="gold")`` can score on the gold first-stage anchors
    gold_anchor_subtasks: ClassVar[tuple[str, ...]] = ()
    #: True: sentences with no type join the few-shot support set in their natural share of the pool
    support_negatives: ClassVar[bool] = False

    def __init__(self, name: str, splits: Sequence[str]):
        self.name = name
        self.splits = list(splits)
        self._cache: dict[str, list[Example]] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, task={self.task!r}, splits={self.splits})"

    def load(self, split: str) -> list[Example]:
        """The examples of one split (parsed once, then cached on this object)."""
        if split not in self.splits:
            raise UserError(f"Dataset {self.name!r} has no split {split!r}; available splits: {', '.join(self.splits)}.")
        if split not in self._cache:
            self._cache[split] = self._read(split)
        return self._cache[split]

    def _read(self, split: str) -> list[Example]:  # pragma: no cover - abstract
        raise NotImplementedError

    def types(self, examples: Iterable[Example]) -> list[str]:
        """Sorted union of ``example_types`` over ``examples`` (the K-shot sampling strata)."""
        out: set[str] = set()
        for ex in examples:
            out |= self.example_types(ex)
        return sorted(out)

    def example_types(self, ex: Example) -> set[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def first_stage_labels(self) -> frozenset[str] | None:
        """The labels :meth:`predict` asks of EVERY sentence (entity types, ``Event trigger``, opinion
        polarities); every other query names one sentence's anchor (a head entity, a trigger, a predicate).
        Empty when every query is anchored (SRL on gold predicates); None when a dataset does not say, and the
        llm-icl prompt then guesses from the support set (:func:`~metaie_utils.stages.fewshot.baselines.fixed_labels`)."""
        return None

    def instances(self, ex: Example) -> list[dict]:  # pragma: no cover - abstract
        raise NotImplementedError

    def gold(self, ex: Example) -> dict[str, set[tuple]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict(self, extractor: Extractor, examples: Sequence[Example], batch_size: int = 64) -> list[dict[str, set[tuple]]]:  # pragma: no cover
        raise NotImplementedError


def check_verbalizer(name: str, labels: dict[str, str], raw_types: Iterable[str], where: str) -> None:
    """Raise a clear error when a raw type has no verbalization."""
    missing = sorted(set(raw_types) - set(labels))
    if missing:
        raise UserError(
            f"Dataset {name!r}: type(s) {missing} found in {where} have no label verbalization (known: "
            f"{sorted(labels)}). Pass labels={{raw: 'Natural name', ...}} to get_dataset."
        )


Reader = Callable[[str], list[Example]]
