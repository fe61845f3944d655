"""Aspect-based sentiment: ABSA (aspect terms with polarity) and ASTE (aspect, opinion, polarity).

Both read the ASTE-V2 triplets. Polarities are ``positive``/``negative``/``neutral``.

- ABSA, one stage: ``Positive aspect term : ...``; key ``aspect``: ``(start, end, polarity)``.
- ASTE, two stages: opinion terms with polarity (``Negative opinion term``), then for each opinion
  ``Term for Negative Opinion "<opinion words>"`` whose answers are its aspects. Keys ``opinion``:
  ``(start, end, polarity)``; ``triplet``: ``(aspect_start, aspect_end, opinion_start, opinion_end,
  polarity)`` (exact triplet match, the standard ASTE metric).

>>> ds = ASTEDataset("toy", {"test": lambda: []})
>>> ex = Example("t/0", ["Great", "screen", "."], triplets=[(1, 2, 0, 1, "positive")])
>>> [(" ".join(i["words"][:i["words"].index(":")]), i["ner"][-3:]) for i in ds.instances(ex)][-1]
("Term for Positive Opinion `` Great ''", ['O', 'B', 'O'])
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

from metaie_utils.tasks.base import (
    Example,
    Extractor,
    TaskDataset,
    make_instance,
    resolve_conflicts,
    run_queries,
    span_text,
)

__all__ = ["ABSADataset", "ASTEDataset", "POLARITIES", "aspect_label", "opinion_label", "aspect_for_opinion_label"]

POLARITIES = ("positive", "negative", "neutral")


def aspect_label(polarity: str) -> str:
    """``"positive"`` -> ``"Positive aspect term"``."""
    return f"{polarity.capitalize()} aspect term"


def opinion_label(polarity: str) -> str:
    """``"negative"`` -> ``"Negative opinion term"``."""
    return f"{polarity.capitalize()} opinion term"


def aspect_for_opinion_label(polarity: str, opinion_words: str) -> str:
    """``("positive", "loves")`` -> ``'Term for Positive Opinion "loves"'``."""
    return f'Term for {polarity.capitalize()} Opinion "{opinion_words}"'


class _SentimentDataset(TaskDataset):
    def __init__(self, name: str, readers: dict[str, Callable[[], list[Example]]]):
        super().__init__(name, list(readers))
        self.readers = readers

    def _read(self, split: str) -> list[Example]:
        return self.readers[split]()

    def example_types(self, ex: Example) -> set[str]:
        """Polarities present in ``ex``."""
        return {t[4] for t in ex.triplets}


class ABSADataset(_SentimentDataset):
    """Aspect terms with their polarity (from the ASTE-V2 triplets)."""

    task = "absa"
    subtasks = ("aspect",)

    def instances(self, ex: Example) -> list[dict]:
        return [make_instance(aspect_label(p), ex.tokens, {(t[0], t[1]) for t in ex.triplets if t[4] == p}) for p in POLARITIES]

    def gold(self, ex: Example) -> dict[str, set[tuple]]:
        return {"aspect": {(t[0], t[1], t[4]) for t in ex.triplets}}

    def first_stage_labels(self) -> frozenset[str]:
        return frozenset(aspect_label(p) for p in POLARITIES)

    def predict(self, extractor: Extractor, examples: Sequence[Example], batch_size: int = 64) -> list[dict[str, set[tuple]]]:
        labs = {aspect_label(p): p for p in POLARITIES}
        res = run_queries(extractor, [ex.tokens for ex in examples], [list(labs)] * len(examples), batch_size, desc=f"{self.name} aspects")
        return [{"aspect": resolve_conflicts((s, e, labs[lab], sc) for s, e, lab, sc in spans)} for spans in res]


class ASTEDataset(_SentimentDataset):
    """Opinion terms with polarity, then the aspect of each opinion."""

    task = "aste"
    subtasks = ("opinion", "triplet")
    gold_anchor_subtasks = ("triplet",)  # aspects given the gold opinion terms

    @staticmethod
    def aspect_queries(tokens: Sequence[str], opinions: Sequence[tuple[int, int, str]]) -> dict[str, list[tuple[int, int, str]]]:
        """Stage-2 labels: label text -> the opinions ``(start, end, polarity)`` it stands for."""
        out: dict[str, list] = defaultdict(list)
        for o in opinions:
            out[aspect_for_opinion_label(o[2], span_text(tokens, o))].append(tuple(o))
        return dict(out)

    def instances(self, ex: Example) -> list[dict]:
        out = [make_instance(opinion_label(p), ex.tokens, {(t[2], t[3]) for t in ex.triplets if t[4] == p}) for p in POLARITIES]
        opinions = sorted({(t[2], t[3], t[4]) for t in ex.triplets})
        for label, ops in self.aspect_queries(ex.tokens, opinions).items():
            out.append(make_instance(label, ex.tokens, {(t[0], t[1]) for t in ex.triplets if (t[2], t[3], t[4]) in ops}))
        return out

    def gold(self, ex: Example) -> dict[str, set[tuple]]:
        return {"opinion": {(t[2], t[3], t[4]) for t in ex.triplets}, "triplet": set(ex.triplets)}

    def first_stage_labels(self) -> frozenset[str]:
        """The opinion-polarity queries; each aspect query names one opinion term."""
        return frozenset(opinion_label(p) for p in POLARITIES)

    def predict(
        self,
        extractor: Extractor,
        examples: Sequence[Example],
        batch_size: int = 64,
        anchors: str = "predicted",
    ) -> list[dict[str, set[tuple]]]:
        """Stage 1 opinions (same-span conflicts by score), then aspect queries per opinion
        (``anchors="gold"``: per gold opinion)."""
        if anchors not in ("predicted", "gold"):
            raise ValueError(f"anchors={anchors!r}; use 'predicted' or 'gold'")
        texts = [ex.tokens for ex in examples]
        labs = {opinion_label(p): p for p in POLARITIES}
        res = run_queries(extractor, texts, [list(labs)] * len(examples), batch_size, desc=f"{self.name} opinions")
        ops = [resolve_conflicts((s, e, labs[lab], sc) for s, e, lab, sc in spans) for spans in res]
        anchor = [sorted({(t[2], t[3], t[4]) for t in ex.triplets}) if anchors == "gold" else sorted(o) for ex, o in zip(examples, ops)]
        queries = [self.aspect_queries(ex.tokens, a) for ex, a in zip(examples, anchor)]
        res2 = run_queries(extractor, texts, [list(q) for q in queries], batch_size, desc=f"{self.name} aspects")
        return [{"opinion": set(o), "triplet": {(s, e, op[0], op[1], op[2]) for s, e, lab, _ in spans for op in q[lab]}}
                for o, q, spans in zip(ops, queries, res2)]
