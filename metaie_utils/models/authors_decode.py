"""The authors' decode (``KomeijiForce/MetaIE`` ``inference.py``), as a pure function of the logits.

What their inference loop does with one ``label words : sentence words`` query:

1. the tag of every sub-token is the argmax of its logits (special tokens ``[CLS]``/``[SEP]`` are cut off);
2. a span starts at a ``B`` sub-token only and extends over the ``I`` sub-tokens right after it (their
   ``find_sequences``); an ``I`` after ``O`` (or at the start) is dropped, a ``B`` right after a span
   starts the next one;
3. its confidence is the mean, over the span's sub-tokens, of the maximum **raw logit** (not a
   probability);
4. its text is the decoded sub-tokens, and it is kept only when that text, split on blanks, is a run of
   the input words (their ``is_sublst``): a span that starts or ends inside a word decodes to a word
   fragment and is dropped.

:func:`authors_spans` does 1-4 on logits already computed (one row per sub-token of the encoded query,
in this project's ``O, B, I`` column order by default) with the encoding's ``word_ids``, and returns
:class:`~metaie_utils.extraction.Span` objects over the sentence words. Step 4 is done on word
boundaries: a run is kept iff it begins at the first sub-token of a word and ends at the last sub-token
of a word. That is their text test exactly for tokenizers whose ``decode`` gives a run of whole words
back as the words (RoBERTa, their model, and BERT on lower-case in-vocabulary words). The deliberate
differences, each visible only in rare cases:

- runs that begin in the ``label :`` prefix are dropped (their loop reports them when their text is a
  run of the input words, e.g. the label word itself; such a span cannot be a sentence span);
- a run that ends inside a word whose fragment happens to equal an input word (``play`` of
  ``play ##ing`` next to a word ``play``) is dropped here, kept by theirs;
- a whole-word run that does not decode back to its words (``[UNK]``, a lower-casing tokenizer on
  cased text) is kept here, dropped by theirs.

Their conflict step (``filter_tuples``: for one sentence, the same text under several labels keeps the
label(s) with the highest confidence) is :func:`metaie_utils.extraction.resolve_conflicts` applied to the
spans of all labels, with word offsets in place of text.

How this differs from the default decode of :class:`~metaie_utils.extraction.MetaIE`
(``_predict`` + ``spans_from_tags`` + ``label_to_span.bio_spans``):

==================  =======================================  ============================================
                    default (this project)                   ``authors`` (this module)
==================  =======================================  ============================================
tag of a word       argmax at its FIRST sub-token only;      every sub-token has its own tag; a word's
                    later pieces are ignored                 later pieces can end or split a span
span start          ``B``, or ``I`` after ``O``/at the start ``B`` only; an ``I`` after ``O`` is dropped
                    (a lenient repair)
span boundaries     always whole words                       sub-tokens; runs not on word boundaries are
                                                             dropped (the entity is lost)
confidence          mean over the span's words of the max    mean over the span's sub-tokens of the max
                    softmax probability (in [0, 1])          raw logit (unbounded, model-dependent scale)
==================  =======================================  ============================================

Why the default differs: both the authors' ``run_ner.py`` (``label_all_tokens`` off) and this project
supervise only the first sub-token of each word, so the tags of later pieces are never trained; reading
them lets untrained outputs cut multi-piece words (names such as ``Schwarzenegger``) out of spans.
Starting a span at an ``I`` after ``O`` keeps an entity whose first word was mis-tagged instead of
losing it. A probability is bounded and comparable across labels and checkpoints, which a confidence
threshold needs. ``decode="authors"`` exists to reproduce the authors' numbers on their checkpoints.
"""

from __future__ import annotations

from typing import Any, Sequence

from metaie_utils.models.labels import OBI


def _rows(logits: Any) -> list[list[float]]:
    if hasattr(logits, "detach"):
        logits = logits.detach().float().cpu().tolist()
    elif hasattr(logits, "tolist"):
        logits = logits.tolist()
    return [list(map(float, r)) for r in logits]


def authors_runs(logits: Any, word_ids: Sequence[int | None],
                 tag_order: Sequence[str] = OBI) -> list[tuple[int, int, float]]:
    """``(start, end, confidence)`` sub-token runs (half-open positions of the encoding), their way.

    ``logits``: ``(T, 3)`` rows of one encoded query (tensor, array or lists), columns named by
    ``tag_order``; positions whose ``word_ids`` entry is ``None`` (special tokens, padding) are never in
    a run and break one. Confidence = mean over the run of the max logit.

    >>> L = {"O": [5, 0, 0], "B": [0, 5, 0], "I": [0, 0, 4]}
    >>> authors_runs([L[t] for t in "OBIOIBBI"], [None, 0, 0, 1, 2, 3, 4, None])
    [(1, 3, 4.5), (5, 6, 5.0), (6, 7, 5.0)]
    """
    rows = _rows(logits)
    b, i_ = list(tag_order).index("B"), list(tag_order).index("I")
    tags = [max(range(len(r)), key=r.__getitem__) if w is not None else -1 for r, w in zip(rows, word_ids)]
    conf = [max(r) for r in rows]
    runs, p, n = [], 0, len(tags)
    while p < n:
        if tags[p] == b:
            s = p
            p += 1
            while p < n and tags[p] == i_:
                p += 1
            runs.append((s, p, sum(conf[s:p]) / (p - s)))
        else:
            p += 1
    return runs


def authors_spans(logits: Any, word_ids: Sequence[int | None], n_prefix: int, doc: Any, label: str,
                  word_offset: int = 0, tag_order: Sequence[str] = OBI) -> list:
    """Spans of one ``label : sentence`` query decoded the authors' way (see the module docstring).

    ``word_ids``: the encoding's ``word_ids()`` of ``label_words + [":"] + sentence_words`` tokenized with
    ``is_split_into_words=True``; ``n_prefix`` = ``len(label_words) + 1``; ``doc``: the text (a string, a
    word list, or ``extraction.to_doc``'s result) whose words the sentence words are, starting at word
    ``word_offset`` (a window of a long text). Scores are rounded to 6 digits, as the default decode.

    >>> L = {"O": [5, 0, 0], "B": [0, 5, 0], "I": [0, 0, 4]}
    >>> # "Location : tom playing in new york": playing = play ##ing
    >>> wids = [None, 0, 1, 2, 3, 3, 4, 5, 6, None]
    >>> tags = ["O", "O", "O", "O", "B", "O", "O", "B", "I", "O"]  # "play" of playing dropped; "new york" kept
    >>> [(s.text, s.word_start, s.word_end, s.score) for s in
    ...  authors_spans([L[t] for t in tags], wids, 2, ["tom", "playing", "in", "new", "york"], "Location")]
    [('new york', 3, 5, 4.5)]
    """
    from metaie_utils.core.spans import Span, _Doc, to_doc

    d = doc if isinstance(doc, _Doc) else to_doc(doc)
    wids = list(word_ids)
    out = []
    for s, e, c in authors_runs(logits, wids, tag_order):
        first, last = wids[s], wids[e - 1]
        if first < n_prefix:
            continue  # begins in the "label :" prefix
        if (s > 0 and wids[s - 1] == first) or (e < len(wids) and wids[e] == last):
            continue  # begins or ends inside a word: their decoded text is a fragment
        ws, we = first - n_prefix + word_offset, last - n_prefix + word_offset + 1
        a, z = d.offsets[ws][0], d.offsets[we - 1][1]
        out.append(Span(label, d.text[a:z], a, z, round(float(c), 6), ws, we))
    return out
