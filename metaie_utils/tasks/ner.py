"""Named entity recognition: one query per entity type, e.g. ``Person : <sentence>``.

Gold and predictions are ``{"entity": {(start, end, raw_type)}}``; the same span predicted under several
labels keeps the label with the higher score (the paper's conflict rule).

>>> ds = NERDataset("toy", {"test": lambda: []}, {"PER": "Person", "LOC": "Location"})
>>> ex = Example("t/0", ["Tom", "visits", "Paris"], entities=[(0, 1, "PER"), (2, 3, "LOC")])
>>> [i["words"][:2] for i in ds.instances(ex)], ds.instances(ex)[1]["ner"]
([['Person', ':'], ['Location', ':']], ['O', 'O', 'O', 'O', 'B'])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from metaie_utils.tasks.base import (
    Example,
    Extractor,
    TaskDataset,
    check_verbalizer,
    make_instance,
    resolve_conflicts,
    run_queries,
)

__all__ = ["NERDataset"]


class NERDataset(TaskDataset):
    """An NER dataset: ``readers[split]() -> list[Example]`` and the raw type -> label word table.

    ``labels`` is ordered: instances follow its order (CoNLL2003 uses the authors' order).
    """

    task = "ner"
    subtasks = ("entity",)

    def __init__(self, name: str, readers: dict[str, Callable[[], list[Example]]], labels: dict[str, str]):
        super().__init__(name, list(readers))
        self.readers = readers
        self.labels = dict(labels)
        self.type_of_label = {v: k for k, v in self.labels.items()}
        if len(self.type_of_label) != len(self.labels):
            raise ValueError(f"{name}: two types share one label word in {self.labels}")

    def _read(self, split: str) -> list[Example]:
        exs = self.readers[split]()
        check_verbalizer(self.name, self.labels, {t for ex in exs for _, _, t in ex.entities}, f"split {split!r}")
        return exs

    def example_types(self, ex: Example) -> set[str]:
        """Entity types present in ``ex`` (raw names)."""
        return {t for _, _, t in ex.entities}

    def instances(self, ex: Example) -> list[dict]:
        """One instance per type of the schema (all-O where the type is absent)."""
        return [
            make_instance(label, ex.tokens, [(s, e) for s, e, t in ex.entities if t == raw])
            for raw, label in self.labels.items()
        ]

    def gold(self, ex: Example) -> dict[str, set[tuple]]:
        return {"entity": {(s, e, t) for s, e, t in ex.entities}}

    def first_stage_labels(self) -> frozenset[str]:
        return frozenset(self.labels.values())

    def predict(self, extractor: Extractor, examples: Sequence[Example], batch_size: int = 64) -> list[dict[str, set[tuple]]]:
        """Query every label on every sentence; resolve same-span conflicts by score."""
        labs = list(self.labels.values())
        res = run_queries(extractor, [ex.tokens for ex in examples], [labs] * len(examples), batch_size, desc=f"{self.name} entities")
        return [{"entity": resolve_conflicts((s, e, self.type_of_label[lab], sc) for s, e, lab, sc in spans)} for spans in res]
