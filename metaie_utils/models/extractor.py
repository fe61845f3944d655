"""The extraction API: ``MetaIE.from_pretrained(path).extract(texts, labels) -> spans``.

For every text and every label the model tags ``label words : sentence words`` with B/I/O; B(I*)
runs over the sentence words (``label_to_span.bio_spans``) are the spans that answer the label.

>>> ie = MetaIE.from_pretrained("outputs/04_train_meta_model/cpu/model")       # doctest: +SKIP
>>> ie.extract(["Hillary Clinton met reporters in Paris."], ["Person", "Location"])  # doctest: +SKIP
[[Span(label='Person', text='Hillary Clinton', start=0, end=15, score=0.97, word_start=0, word_end=2),
  Span(label='Location', text='Paris', start=33, end=38, score=0.95, word_start=5, word_end=6)]]

How it runs:

- **Batching.** Every (text, label, chunk) query of a call is encoded once, sorted by length and run in
  batches of ``batch_size`` (padding only to the longest query of a batch), under ``torch.inference_mode``.
- **Precision.** ``precision="auto"`` runs fp32 on every device (:func:`metaie_utils.core.device.
  pick_extraction_precision`): on an H200 GPU bf16 autocast was 2-3x slower than fp32 at batch 32-64, for
  MiniLM-L6 and for a RoBERTa-large-sized model alike, and it pays only at batch >= 256 on the large one.
  ``precision="bf16"`` on a CPU with bf16 matrix units (AMX, AVX512-BF16) is about 1.8x faster than fp32 and
  changes a small share of predictions (``benchmarks/bench_extract.py`` prints both and their agreement);
  ``"fp32"`` is exact.
- **Long texts.** A text whose ``label : words`` does not fit the model window (``max_length`` sub-tokens)
  is cut into word windows that overlap by about ``stride`` sub-tokens. Each word takes its tag from the
  window where it lies farthest from a cut (the overlap is split at its midpoint), then spans are decoded
  over the whole text, so a span crossing a window border comes out whole.
- **Confidence** of a span = the mean, over the span's words, of the maximum softmax probability of the
  word's first sub-token (the probability of the predicted B or I tag).
- **Conflicts** (``conflict="confidence"``, the paper): when the same word span is predicted under
  several labels of one text, only the label with the highest confidence is kept. ``conflict="all"``
  keeps every (label, span).

Inputs and the results of edge cases:

- ``texts``: a list of strings (split into words with :func:`metaie_utils.text.word_spans`; offsets index
  the string) or of word lists (offsets index ``" ".join(words)``). An empty or blank text gives ``[]``.
- ``labels``: one list for all texts or one list per text. An empty list gives ``[]`` for that text.
  A label is tokenized like the training data (``text.word_tokenize``); a label made only of
  punctuation (``"?"``) is a valid query; an empty or blank label is a ``ValueError``.
- A checkpoint folder that is not a 3-tag token classifier raises :class:`~metaie_utils.cli.UserError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from metaie_utils.core.bio import label_words
from metaie_utils.core.errors import UserError
from metaie_utils.core.spans import (
    CONFLICT_MODES,
    Span,
    _Doc,
    resolve_conflicts,
    to_doc,
)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DECODES = ("default", "authors")


def chunk_words(costs: Sequence[int], budget: int, stride: int) -> list[tuple[int, int]]:
    """Split words with sub-token ``costs`` into windows of at most ``budget`` sub-tokens that overlap by
    about ``stride`` sub-tokens. A word costlier than the budget gets a window of its own.

    >>> chunk_words([1, 1, 1, 1, 1], budget=10, stride=2)
    [(0, 5)]
    >>> chunk_words([1] * 6, budget=3, stride=1)
    [(0, 3), (2, 5), (4, 6)]
    """
    n = len(costs)
    if n == 0:
        return []
    chunks, start = [], 0
    while True:
        end, used = start, 0
        while end < n and (used + costs[end] <= budget or end == start):
            used += costs[end]
            end += 1
        chunks.append((start, end))
        if end >= n:
            return chunks
        back, ov = end, 0
        while back - 1 > start and ov + costs[back - 1] <= stride:
            back -= 1
            ov += costs[back]
        start = max(back, start + 1)


def merge_chunks(chunks: Sequence[tuple[int, int]], n_words: int) -> list[tuple[int, int]]:
    """For each window, the words it owns: overlaps are split at their midpoint.

    >>> merge_chunks([(0, 3), (2, 5), (4, 6)], 6)
    [(0, 2), (2, 4), (4, 6)]
    """
    owned = []
    for i, (s, e) in enumerate(chunks):
        lo = 0 if i == 0 else (s + chunks[i - 1][1]) // 2
        hi = n_words if i == len(chunks) - 1 else (chunks[i + 1][0] + e) // 2
        owned.append((lo, hi))
    return owned


def spans_from_tags(tags: Sequence[str], probs: Sequence[float], doc: _Doc, label: str) -> list[Span]:
    """Decode word tags of one (text, label) into :class:`Span` objects with confidences.

    >>> d = to_doc(["Tom", "met", "Ann", "Lee"])
    >>> [(s.text, s.score) for s in spans_from_tags(["B", "O", "B", "I"], [0.9, 1.0, 0.8, 0.6], d, "Person")]
    [('Tom', 0.9), ('Ann Lee', 0.7)]
    """
    from metaie_utils.core.bio import bio_spans

    out = []
    for ws, we in bio_spans(list(tags)):
        s, e = doc.offsets[ws][0], doc.offsets[we - 1][1]
        score = float(sum(probs[ws:we]) / (we - ws))
        out.append(Span(label, doc.text[s:e], s, e, round(score, 6), ws, we))
    return out


class MetaIE:
    """A MetaIE tagger ready to extract. Build it with :meth:`from_pretrained`."""

    def __init__(self, model, tokenizer, device: str = "cpu", batch_size: int = 32, max_length: int | None = None,
                 stride: int = 32, progress: bool = False, precision: str = "auto"):
        from metaie_utils.core.device import pick_extraction_precision

        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r}: use an int >= 1.")
        if precision not in PRECISIONS:
            raise ValueError(f"precision={precision!r}: use one of {PRECISIONS}.")
        self.precision = pick_extraction_precision(device) if precision == "auto" else precision
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.device = device
        self.batch_size = batch_size
        from metaie_utils.models.checkpoint import model_window

        limit = model_window(tokenizer, model.config)
        self.max_length = min(max_length or limit, limit)
        self.stride = stride
        self.progress = progress
        self.n_queries = 0  # (text, label) queries asked so far
        self.n_windowed = 0  # of them, longer than the window: read in overlapping windows, never truncated
        l2i = {str(k).upper()[:1]: int(v) for k, v in (model.config.label2id or {}).items()}
        self._ids = {t: l2i.get(t, i) for i, t in enumerate(["O", "B", "I"])}
        self._tags = {v: k for k, v in self._ids.items()}
        self._n_special = tokenizer.num_special_tokens_to_add(pair=False)

    @classmethod
    def from_pretrained(cls, path_or_name: str | Path, device: str = "auto", batch_size: int = 32,
                        max_length: int | None = None, stride: int = 32, progress: bool = False,
                        precision: str = "auto") -> "MetaIE":
        """Load a checkpoint folder (or an assets alias / Hub name) that is a 3-tag token classifier."""
        from transformers import AutoConfig

        from metaie_utils.core.device import pick_device
        from metaie_utils.models.checkpoint import load_tokenizer, resolve_backbone

        path = resolve_backbone(str(path_or_name))
        try:
            cfg = AutoConfig.from_pretrained(path)
        except (OSError, ValueError) as e:
            raise UserError(f"Cannot load a model config from {path_or_name!r} ({e}). Pass a folder written by "
                            f"`python -m metaie_utils train` (it holds config.json) or a Hub name.") from None
        from metaie_utils.models.labels import (
            checkpoint_label_order,
            is_token_classifier,
            load_token_classifier,
        )

        archs = cfg.architectures or []
        if not is_token_classifier(cfg) or checkpoint_label_order(cfg, path) is None:
            tags = sorted(str(v) for v in (cfg.id2label or {}).values())
            raise UserError(
                f"{path_or_name!r} is not a MetaIE tagger (architectures {archs}, labels {tags}); it needs "
                f"a token-classification head with the tags O/B/I. Train one first: python -m metaie_utils train "
                f"--input INSTANCES --output DIR --backbone {path_or_name}.")
        model = load_token_classifier(path)  # head rows mapped to O/B/I by label name
        return cls(model, load_tokenizer(path), pick_device(device), batch_size, max_length, stride, progress, precision)

    # ------------------------------------------------------------------ internals
    def _autocast(self):
        """``torch.autocast`` in the chosen half precision, a no-op context for fp32."""
        import contextlib

        import torch

        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=str(self.device).split(":")[0], dtype=dtype)

    def _costs(self, word_lists: Sequence[Sequence[str]]) -> list[list[int]]:
        """Sub-token count of every word of every list."""
        nonempty = [list(w) for w in word_lists if w]
        enc = self.tokenizer(nonempty, is_split_into_words=True, add_special_tokens=False) if nonempty else None
        out, j = [], 0
        for w in word_lists:
            if not w:
                out.append([])
                continue
            c = [0] * len(w)
            for wid in enc.word_ids(j):
                if wid is not None:
                    c[wid] += 1
            out.append(c)
            j += 1
        return out

    def _predict(self, inputs: list[list[str]], n_prefix: list[int], raw: bool = False) -> list[tuple]:
        """Tags and max-probabilities of the sentence words of each ``label : words`` input, batched; with
        ``raw``, also every sub-token's logits and the encoding's word ids (for the authors' decode)."""
        import torch
        from tqdm.auto import tqdm

        enc = self.tokenizer(inputs, is_split_into_words=True, truncation=True, max_length=self.max_length)
        feats = [{k: enc[k][i] for k in enc.keys()} for i in range(len(inputs))]
        order = sorted(range(len(inputs)), key=lambda i: -len(feats[i]["input_ids"]))
        results: list[Any] = [None] * len(inputs)
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        for b in tqdm(batches, desc="extract", disable=not self.progress, unit="batch"):
            batch = self.tokenizer.pad([feats[i] for i in b], return_tensors="pt")
            batch = {k: v.to(self.device) for k, v in batch.items()}
            with torch.inference_mode(), self._autocast():
                logits = self.model(**batch).logits.float()
            probs = logits.softmax(-1)
            pmax, arg = probs.max(-1)
            lrows = logits.cpu().tolist() if raw else None
            pmax, arg = pmax.cpu().tolist(), arg.cpu().tolist()
            for row, i in enumerate(b):
                n_words = len(inputs[i]) - n_prefix[i]
                tags, ps = ["O"] * n_words, [1.0] * n_words
                prev = None
                for pos, wid in enumerate(enc.word_ids(i)):
                    if wid is not None and wid != prev and wid >= n_prefix[i]:
                        tags[wid - n_prefix[i]] = self._tags.get(arg[row][pos], "O")
                        ps[wid - n_prefix[i]] = pmax[row][pos]
                    prev = wid
                if raw:
                    wids = enc.word_ids(i)
                    results[i] = (tags, ps, lrows[row][:len(wids)], wids)
                else:
                    results[i] = (tags, ps)
        return results

    # ------------------------------------------------------------------ API
    def extract(self, texts: Sequence[str | Sequence[str]], labels: Sequence[str] | Sequence[Sequence[str]],
                conflict: str = "confidence", decode: str = "default") -> list[list[Span]]:
        """Spans of every label in every text: ``texts[i]`` -> ``list[Span]`` sorted by position.

        ``decode``: ``"default"`` (each word's first sub-token decides its tag, a span starts at B or at an
        I after O, confidence = mean max probability) or ``"authors"`` (exactly the authors' inference.py:
        every sub-token decoded, a span starts at B only, confidence = mean max logit; see
        :mod:`metaie_utils.models.authors_decode` for why the default differs).

        ``labels``: one list for all texts (``["Person", "Location"]``) or one list per text
        (``[["Person"], ["Argument for Trigger \\"loves\\""]]``). See the module docstring for edge cases.
        """
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings or of word lists; wrap a single text as [text].")
        if conflict not in CONFLICT_MODES:
            raise ValueError(f"conflict={conflict!r}: use one of {CONFLICT_MODES}.")
        if decode not in DECODES:
            raise ValueError(f"decode={decode!r}: use one of {DECODES}.")
        if isinstance(labels, str):
            raise TypeError(f"labels must be a list, got the string {labels!r}; write [{labels!r}].")
        per_text = len(labels) > 0 and all(not isinstance(x, str) for x in labels)
        if per_text:
            if len(labels) != len(texts):
                raise ValueError(f"labels holds {len(labels)} lists but there are {len(texts)} texts: give one label "
                                 f"list per text, or a single flat list for all texts.")
            label_lists = [list(x) for x in labels]
        else:
            label_lists = [list(labels)] * len(texts)
        docs = [to_doc(t) for t in texts]
        uniq = sorted({lab for ls in label_lists for lab in ls})
        lwords = {lab: label_words(lab) + [":"] for lab in uniq}
        lcost = dict(zip(uniq, self._costs([lwords[lab] for lab in uniq]))) if uniq else {}
        wcosts = self._costs([d.words for d in docs])

        inputs, n_prefix, keys = [], [], []  # keys: (text index, label, chunk index)
        plan: dict[tuple[int, str], list[tuple[int, int]]] = {}
        for ti, (doc, labs) in enumerate(zip(docs, label_lists)):
            if not doc.words:
                continue
            for lab in dict.fromkeys(labs):
                budget = self.max_length - self._n_special - sum(lcost[lab])
                if budget < 1:
                    raise ValueError(f"Label {lab!r} alone takes {sum(lcost[lab])} sub-tokens, more than the model window "
                                     f"({self.max_length}); shorten the label.")
                chunks = chunk_words(wcosts[ti], budget, min(self.stride, budget // 2))
                plan[(ti, lab)] = chunks
                self.n_queries += 1
                self.n_windowed += len(chunks) > 1
                for ci, (s, e) in enumerate(chunks):
                    inputs.append(lwords[lab] + doc.words[s:e])
                    n_prefix.append(len(lwords[lab]))
                    keys.append((ti, lab, ci))
        authors = decode == "authors"
        preds = self._predict(inputs, n_prefix, raw=authors) if inputs else []
        by_key = dict(zip(keys, preds))

        out: list[list[Span]] = []
        for ti, (doc, labs) in enumerate(zip(docs, label_lists)):
            spans: list[Span] = []
            for lab in dict.fromkeys(labs):
                if (ti, lab) not in plan:
                    continue
                chunks = plan[(ti, lab)]
                if authors:
                    from metaie_utils.models.authors_decode import authors_spans

                    order = [self._tags.get(k, "O") for k in range(len(self._tags))]
                    for ci, ((s, _e), (lo, hi)) in enumerate(zip(chunks, merge_chunks(chunks, len(doc.words)))):
                        _t, _p, lg, wids = by_key[(ti, lab, ci)]
                        spans.extend(sp for sp in authors_spans(lg, wids, len(lwords[lab]), doc, lab, word_offset=s,
                                                                tag_order=order) if lo <= sp.word_start < hi)
                    continue
                tags, probs = ["O"] * len(doc.words), [1.0] * len(doc.words)
                for ci, ((s, _e), (lo, hi)) in enumerate(zip(chunks, merge_chunks(chunks, len(doc.words)))):
                    t, p = by_key[(ti, lab, ci)]
                    tags[lo:hi] = t[lo - s:hi - s]
                    probs[lo:hi] = p[lo - s:hi - s]
                spans.extend(spans_from_tags(tags, probs, doc, lab))
            out.append(resolve_conflicts(spans, conflict))
        return out
