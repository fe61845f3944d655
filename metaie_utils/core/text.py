"""Sentence splitting and word tokenization, shared by the corpus and label-to-span stages.

Word tokenization is nltk's Treebank-style ``NLTKWordTokenizer`` (what ``nltk.word_tokenize`` applies
after its punkt sentence step), which needs no downloaded data; on the authors' reference sentences it
gives the same words as ``nltk.word_tokenize``. Sentence splitting is Wikimedia's rule-based
``sentencex`` (abbreviation-aware, no model download; nltk's punkt would need downloaded data). Both are
deterministic.

>>> word_tokenize("Hillary Clinton meets the U.S. press, again.")
['Hillary', 'Clinton', 'meets', 'the', 'U.S.', 'press', ',', 'again', '.']
>>> word_spans("Tom's cat")
[('Tom', 0, 3), ("'s", 3, 5), ('cat', 6, 9)]
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _word_tok():
    from nltk.tokenize.destructive import NLTKWordTokenizer

    return NLTKWordTokenizer()


def word_tokenize(text: str) -> list[str]:
    """Words of one sentence, Treebank style (quotes become `` and '' as in nltk)."""
    return _word_tok().tokenize(text)


def word_spans(text: str) -> list[tuple[str, int, int]]:
    """Words with character offsets ``(word, start, end)`` such that ``text[start:end]`` is the raw word.

    Quotes keep their raw form here (``"`` rather than nltk's `` / '') so offsets always slice the text.
    """
    out = []
    for s, e in _word_tok().span_tokenize(text):
        out.append((text[s:e], s, e))
    return out


def split_sentences(text: str) -> list[str]:
    """Sentences of a paragraph, English rules of ``sentencex``.

    >>> split_sentences("Mr. Smith went to Washington D.C. on Jan. 5. He left!")
    ['Mr. Smith went to Washington D.C. on Jan. 5.', 'He left!']
    """
    from sentencex import segment

    return [s.strip() for s in segment("en", text) if s.strip()]
