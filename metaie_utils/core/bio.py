"""The authors' instance format and untyped B/I/O tags: the one implementation of each helper.

An instance is ``{"words": label_words + [":"] + sentence_words, "ner": ["O"] * (len(label_words) + 1) + tags}``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from metaie_utils.core.errors import UserError
from metaie_utils.core.paths import resolve
from metaie_utils.core.text import word_tokenize


@lru_cache(maxsize=65536)
def _label_words_cached(label: str) -> tuple[str, ...]:
    return tuple(word_tokenize(label))


def label_words(label: str) -> list[str]:
    """The word prefix of a label query, tokenized as the training data (the authors' ``word_tokenize(query)``).

    The one implementation (extraction, the task decoders and the instance builders share it; cached).

    >>> label_words("Tom births in")
    ['Tom', 'births', 'in']
    >>> label_words('A1 Argument for Predicate "loves"')
    ['A1', 'Argument', 'for', 'Predicate', '``', 'loves', "''"]
    """
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"Label {label!r} is empty: every label must be a non-blank string such as 'Person'.")
    return list(_label_words_cached(label))



#: The untyped tag set, in this project's head order (O=0, B=1, I=2; checkpoints in other orders are
#: re-mapped by name on load: models.labels).
TAGS = ["O", "B", "I"]
LABELS = TAGS
LABEL2ID = {t: i for i, t in enumerate(LABELS)}


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


def to_bio(n_words: int, spans: Iterable[tuple[int, int]]) -> list[str]:
    """Untyped BIO tags of ``n_words`` words from half-open, non-overlapping word spans.

    Adjacent spans stay apart (``B B``). Raises ``ValueError`` on an out-of-range or overlapping span.

    >>> to_bio(5, [(1, 3), (3, 4)])
    ['O', 'B', 'I', 'B', 'O']
    """
    tags = ["O"] * n_words
    for s, e in sorted(spans):
        if not 0 <= s < e <= n_words:
            raise ValueError(f"span {(s, e)} is outside 0..{n_words} words (or empty)")
        if any(t != "O" for t in tags[s:e]):
            raise ValueError(f"span {(s, e)} overlaps another span; resolve overlaps first (resolve_overlaps)")
        tags[s] = "B"
        tags[s + 1 : e] = ["I"] * (e - s - 1)
    return tags


def to_instance(label: str | Sequence[str], sentence_words: Sequence[str], spans: Iterable[tuple[int, int]], /,
                **extra: Any) -> dict[str, Any]:
    """One instance ``{"words": label_words + [":"] + sentence_words, "ner": O-prefix + bio, **extra}``.

    ``label`` is a string (word-tokenized) or its words; ``spans`` are half-open word spans of the sentence.

    >>> to_instance("Date", ["on", "Saturday", "."], [(1, 2)])
    {'words': ['Date', ':', 'on', 'Saturday', '.'], 'ner': ['O', 'O', 'O', 'B', 'O']}
    """
    lw = word_tokenize(label) if isinstance(label, str) else list(label)
    return {"words": lw + [":"] + list(sentence_words),
            "ner": ["O"] * (len(lw) + 1) + to_bio(len(sentence_words), spans), **extra}


class InstanceError(UserError, ValueError):
    """A malformed instance (tags and words disagree, no ':' separator); the message names the instance."""


def split_instance(inst: Mapping[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """``(label_words, sentence_words, sentence_tags)`` of an instance, split at the ``":"`` after the label.

    The one implementation (stage 03's converter, stage 04's protocol, the generative student and the
    few-shot loop all call it). The cut is the first ``":"`` word, except when the instance carries its
    ``label`` and that label's words are followed by ``":"``: then the cut is there, so a label that
    itself holds a ``":"`` word still splits right. Instances without ``ner`` (queries) get no tags.

    >>> split_instance({"words": ["Person", ":", "Tom", "ran"], "ner": ["O", "O", "B", "O"]})
    (['Person'], ['Tom', 'ran'], ['B', 'O'])
    >>> split_instance({"words": ["a", ":", "b", ":", "c"], "ner": ["O"] * 5, "label": "a : b"})
    (['a', ':', 'b'], ['c'], ['O'])
    """
    words = list(inst["words"])
    ner = list(inst["ner"]) if inst.get("ner") is not None else None
    where = f"instance {inst.get('id')!r}" if inst.get("id") is not None else "instance"
    if ner is not None and len(words) != len(ner):
        raise InstanceError(f"{where} has {len(words)} words but {len(ner)} tags: {words[:8]}...")
    cut = None
    if isinstance(inst.get("label"), str):
        n = len(word_tokenize(inst["label"]))
        if 0 < n < len(words) and words[n] == ":":
            cut = n
    if cut is None:
        if ":" not in words:
            raise InstanceError(f"{where} has no ':' separating label and sentence: {words[:8]}...")
        cut = words.index(":")
    return words[:cut], words[cut + 1 :], (ner[cut + 1 :] if ner is not None else [])


def load_instances(path: str | Path, validate: bool = True) -> list[dict[str, Any]]:
    """Instances from a JSON list (``instances.json``, ``distill/metaie.json``) or JSON Lines (the authors'
    datasets): the one instance loader. A file that is neither (plain text, a stray line) is a
    :class:`UserError` naming the file and the line; ``validate`` checks every instance's tags.

    >>> len(load_instances(data_file("metaie_reference", "distill", "metaie.json")))  # doctest: +SKIP
    10
    """
    p = resolve(path)
    if not p.is_file():
        raise UserError(f"{p}: no such instances file.")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{p} is not UTF-8 text ({e.reason} at byte {e.start}); expected an instances JSON/JSONL file.") from None
    hint = ("expected a JSON list of {\"words\": [...], \"ner\": [...]} instances or one such object per line "
            "(stage 03's instances.json)")
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"{p}:{e.lineno} is not valid JSON ({e.msg}); {hint}.") from None
    else:
        data = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                data.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise UserError(f"{p}:{n} is not a JSON object ({e.msg}): {line[:80]!r}; {hint}.") from None
    if validate:
        validate_instances(data, source=str(p))
    return data






def validate_instances(instances: Sequence[dict], source: str = "instances") -> None:
    """Raise :class:`UserError` on the first malformed instance (names its index and the problem)."""
    for i, inst in enumerate(instances):
        if not isinstance(inst, dict) or "words" not in inst or "ner" not in inst:
            raise UserError(f"{source}: instance {i} must be a dict with 'words' and 'ner', got {str(inst)[:120]!r}.")
        if len(inst["words"]) != len(inst["ner"]):
            raise UserError(f"{source}: instance {i} has {len(inst['words'])} words but {len(inst['ner'])} tags; "
                            f"they must align one tag per word.")
        bad = {t for t in inst["ner"] if t not in LABEL2ID}
        if bad:
            raise UserError(f"{source}: instance {i} has tags {sorted(bad)}; tags must be untyped B/I/O.")
