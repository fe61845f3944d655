"""Semantic role labeling with given predicates (the CoNLL-2005 protocol the paper follows).

PropBank-style data (Universal PropBank EWT): for every predicate and every role of the schema, the
query ``<role> Argument for Predicate "<predicate word>"`` (roles written CoNLL-2005 style, ``A1``,
``AM-TMP``, as in the paper's Figure 1). QA-SRL: the question is the label (``Who led something?``),
asked for each gold question of each predicate. Keys of ``gold``/``predict``:

- ``argument``: ``(pred_start, pred_end, role_or_question, arg_start, arg_end)``.

The predicate is named by its word only; a word that is the predicate twice in a sentence (``said ...
said``) shares one query: training instances answer with the arguments of every occurrence, and a
predicted argument is attached to every occurrence (docs/TASKS.md).

>>> from .base import Frame
>>> ds = SRLDataset("toy", {"test": lambda: []}, {"ARG0": "A0"})
>>> ex = Example("t/0", ["Tom", "sleeps"], frames=[Frame((1, 2), "sleep.01", [(0, 1, "ARG0")])])
>>> [(" ".join(i["words"][:i["words"].index(":")]), i["ner"][-2:]) for i in ds.instances(ex)]
[("A0 Argument for Predicate `` sleeps ''", ['B', 'O'])]
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence

from metaie_utils.tasks.base import (
    Example,
    Extractor,
    TaskDataset,
    make_instance,
    run_queries,
    span_text,
)

__all__ = ["SRLDataset", "propbank_role_name", "predicate_label"]


def propbank_role_name(role: str) -> str:
    """CoNLL-2005 style name of a PropBank role.

    >>> propbank_role_name("ARG1"), propbank_role_name("ARGM-TMP"), propbank_role_name("R-ARG0")
    ('A1', 'AM-TMP', 'R-A0')
    """
    return re.sub(r"ARG", "A", role)


def predicate_label(role_name: str, predicate_words: str) -> str:
    """``("A1", "loves")`` -> ``'A1 Argument for Predicate "loves"'``."""
    return f'{role_name} Argument for Predicate "{predicate_words}"'


class SRLDataset(TaskDataset):
    """Predicates given; ``role_labels`` (role -> name) for PropBank data, ``None`` for QA-SRL.

    ``role_labels`` is the queried schema: gold arguments of other (rare) roles stay in the gold (and
    cost recall) but get no query and no training instance.
    """

    task = "srl"
    subtasks = ("argument",)

    def __init__(self, name: str, readers: dict[str, Callable[[], list[Example]]], role_labels: dict[str, str] | None):
        super().__init__(name, list(readers))
        self.readers = readers
        self.role_labels = dict(role_labels) if role_labels is not None else None

    @property
    def qa(self) -> bool:
        """True for QA-SRL (questions are the labels)."""
        return self.role_labels is None

    def _read(self, split: str) -> list[Example]:
        exs = self.readers[split]()
        return exs  # roles outside ``role_labels`` stay in the gold but are never queried

    def example_types(self, ex: Example) -> set[str]:
        """Roles of ``ex`` (QA-SRL: the lower-cased wh-word of each question)."""
        if self.qa:
            return {a[2].split()[0].lower() for fr in ex.frames for a in fr.arguments if a[2].split()}
        return {a[2] for fr in ex.frames for a in fr.arguments}

    def queries(self, ex: Example) -> dict[str, list[tuple[tuple[int, int], str]]]:
        """Label text -> [(predicate span, role or question), ...] for the gold predicates of ``ex``."""
        out: dict[str, list] = defaultdict(list)
        for fr in ex.frames:
            if self.qa:
                for q in sorted({a[2] for a in fr.arguments}):
                    out[q].append((fr.predicate, q))
            else:
                words = span_text(ex.tokens, fr.predicate)
                for role, name in self.role_labels.items():
                    out[predicate_label(name, words)].append((fr.predicate, role))
        return dict(out)

    def instances(self, ex: Example) -> list[dict]:
        """One instance per query of :meth:`queries` with the gold argument spans (all-O when none)."""
        args_of: dict[tuple, set] = defaultdict(set)
        for fr in ex.frames:
            for s, e, r in fr.arguments:
                args_of[(fr.predicate, r)].add((s, e))
        return [make_instance(label, ex.tokens, set().union(*(args_of.get(k, set()) for k in pairs)))
                for label, pairs in self.queries(ex).items()]

    def gold(self, ex: Example) -> dict[str, set[tuple]]:
        return {"argument": {(fr.predicate[0], fr.predicate[1], r, s, e) for fr in ex.frames for s, e, r in fr.arguments}}

    def first_stage_labels(self) -> frozenset[str]:
        """None: every query names a gold predicate (or is a QA-SRL question about one)."""
        return frozenset()

    def predict(self, extractor: Extractor, examples: Sequence[Example], batch_size: int = 64) -> list[dict[str, set[tuple]]]:
        """Argument queries on the gold predicates (one stage)."""
        queries = [self.queries(ex) for ex in examples]
        res = run_queries(extractor, [ex.tokens for ex in examples], [list(q) for q in queries], batch_size, desc=f"{self.name} arguments")
        return [{"argument": {(p[0], p[1], r, s, e) for s, e, lab, _ in spans for p, r in q[lab]}}
                for q, spans in zip(queries, res)]
