"""The span type every layer returns, word offsets of a text, and the one conflict rule (with its tie-break)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Hashable, Iterable, Sequence, TypeVar

CONFLICT_MODES = ("confidence", "all")


@dataclass
class Span:
    """One extracted span. ``start``/``end``: character offsets (half-open) into the text (for word-list
    input, into ``" ".join(words)``); ``word_start``/``word_end``: word offsets (half-open)."""

    label: str
    text: str
    start: int
    end: int
    score: float
    word_start: int
    word_end: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Doc:
    words: list[str]
    offsets: list[tuple[int, int]]
    text: str


def to_doc(text: str | Sequence[str]) -> _Doc:
    """A string or a word list -> words with character offsets.

    >>> d = to_doc(["New", "York", "!"]); (d.text, d.offsets)
    ('New York !', [(0, 3), (4, 8), (9, 10)])
    >>> to_doc("Tom's cat").words
    ['Tom', "'s", 'cat']
    """
    from metaie_utils.core.text import word_spans

    if isinstance(text, str):
        ws = word_spans(text)
        return _Doc([w for w, _, _ in ws], [(s, e) for _, s, e in ws], text)
    if not all(isinstance(w, str) for w in text):
        raise TypeError(f"A pre-tokenized text must be a list of strings, got {list(text)[:5]!r}.")
    words = [w for w in text]
    offsets, pos = [], 0
    for w in words:
        offsets.append((pos, pos + len(w)))
        pos += len(w) + 1
    return _Doc(words, offsets, " ".join(words))


T = TypeVar("T")


def best_per_span(items: Iterable[T], key: Callable[[T], Hashable], score: Callable[[T], float],
                  label: Callable[[T], str]) -> list[T]:
    """The one conflict rule: for each span key keep the item with the highest score.

    Tie-break (equal scores): the alphabetically first label. Of the two rules the package had (first
    seen in extraction, alphabetical in the task decoders), this one is kept because the result then
    depends only on the set of predictions, not on the order in which a dataset lists its labels or
    in which queries were batched, so the same checkpoint scores the same under any label order.
    Items come back in first-seen order of their keys.
    """
    best: dict[Hashable, T] = {}
    for it in items:
        k = key(it)
        cur = best.get(k)
        if cur is None or score(it) > score(cur) or (score(it) == score(cur) and label(it) < label(cur)):
            best[k] = it
    return list(best.values())


def resolve_conflicts(spans: Sequence[Span], conflict: str = "confidence") -> list[Span]:
    """Keep, for each word span predicted under several labels, the most confident label (or all).

    The rule and its tie-break are :func:`best_per_span`'s.

    >>> a = Span("Person", "Paris", 0, 5, 0.6, 0, 1); b = Span("Location", "Paris", 0, 5, 0.9, 0, 1)
    >>> [s.label for s in resolve_conflicts([a, b])]
    ['Location']
    """
    if conflict not in CONFLICT_MODES:
        raise ValueError(f"conflict={conflict!r}: use one of {CONFLICT_MODES}.")
    if conflict == "all":
        return sorted(spans, key=lambda s: (s.word_start, s.word_end, -s.score, s.label))
    best = best_per_span(spans, key=lambda s: (s.word_start, s.word_end), score=lambda s: s.score, label=lambda s: s.label)
    return sorted(best, key=lambda s: (s.word_start, s.word_end))
