"""Label-to-span conversion (stage 03). Seed version: only the BIO decoder other modules import."""

from __future__ import annotations


def bio_spans(tags: list[str]) -> list[tuple[int, int]]:
    """Half-open word spans of B(I*) runs; an ``I`` after ``O`` (or at the start) starts a span.

    >>> bio_spans(["O", "B", "I", "O", "I", "B"])
    [(1, 3), (4, 5), (5, 6)]
    """
    spans: list[tuple[int, int]] = []
    start = None
    for i, t in enumerate(tags):
        t = t[:1] if t else "O"
        if t == "B" or (t == "I" and start is None):
            if start is not None:
                spans.append((start, i))
            start = i
        elif t == "O":
            if start is not None:
                spans.append((start, i))
            start = None
    if start is not None:
        spans.append((start, len(tags)))
    return spans
