"""Relation extraction as two-stage span extraction.

Stage 1 queries entities by type (``Person : ...``, as NER). Stage 2 queries, for every head entity and
every relation it can head, ``<head words> <relation phrase>`` (``Tom lives in : ...``); the answer
spans are the tails. Scoring (``gold``/``predict`` keys):

- ``entity``: ``(start, end, type)``;
- ``relation`` (the standard *strict* setting): ``(hs, he, htype, ts, te, ttype, relation)``: both spans,
  both entity types and the relation type must match;
- ``relation_boundary``: ``(hs, he, ts, te, relation)`` (the *boundaries* setting, no entity types).

The head is named by its words only, so two mentions with the same words share one query: training
instances answer with the tails of every mention with those words and a predicted tail is attached to
every such mention (documented in docs/TASKS.md). A predicted tail takes the type of the stage-1 entity
with the same span, else the tail type of the relation's signature, else ``""``.

>>> ds = REDataset("toy", {"test": lambda: []}, {"Peop": "Person", "Loc": "Location"},
...                {"Live_In": "lives in"}, signatures={"Live_In": ("Peop", "Loc")})
>>> ex = Example("t/0", ["Tom", "lives", "in", "Rome"], entities=[(0, 1, "Peop"), (3, 4, "Loc")],
...              relations=[(0, 1, "Peop", 3, 4, "Loc", "Live_In")])
>>> [(" ".join(i["words"][:i["words"].index(":")]), i["ner"][-4:]) for i in ds.instances(ex)][-1]
('Tom lives in', ['O', 'O', 'O', 'B'])
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

from metaie_utils.tasks.base import (
    Example,
    Extractor,
    TaskDataset,
    check_verbalizer,
    make_instance,
    resolve_conflicts,
    run_queries,
    span_text,
)

__all__ = ["REDataset"]


class REDataset(TaskDataset):
    """A relation dataset (SpERT-style entities + relations).

    ``entity_labels``: raw entity type -> label words; ``relation_labels``: relation -> phrase that
    follows the head words; ``signatures``: relation -> (head type, tail type), restricting which heads
    are queried with which phrase (``None``: every entity with every phrase). ``entity_stage=False``
    (relation-classification data such as SemEval-2010 Task 8, where only two nominals are marked)
    skips stage 1: the marked entities are the anchors and no entity instances are produced.
    """

    task = "re"
    subtasks = ("entity", "relation", "relation_boundary")
    gold_anchor_subtasks = ("relation",)  # relations given the gold entities (Cuckoo's protocol gives the head)

    def __init__(
        self,
        name: str,
        readers: dict[str, Callable[[], list[Example]]],
        entity_labels: dict[str, str],
        relation_labels: dict[str, str],
        signatures: dict[str, tuple[str, str]] | None = None,
        entity_stage: bool = True,
    ):
        super().__init__(name, list(readers))
        self.readers = readers
        self.entity_labels = dict(entity_labels)
        self.relation_labels = dict(relation_labels)
        self.signatures = dict(signatures) if signatures else None
        self.entity_stage = entity_stage
        self.type_of_label = {v: k for k, v in self.entity_labels.items()}
        if not entity_stage:
            self.subtasks = ("relation", "relation_boundary")
            self.gold_anchor_subtasks = ()  # the marked entities already are gold: nothing to add

    def _read(self, split: str) -> list[Example]:
        exs = self.readers[split]()
        if self.entity_stage:
            check_verbalizer(self.name, self.entity_labels, {t for ex in exs for *_, t in ex.entities}, f"split {split!r}")
        check_verbalizer(self.name, self.relation_labels, {r[6] for ex in exs for r in ex.relations}, f"split {split!r}")
        return exs

    def example_types(self, ex: Example) -> set[str]:
        """``"relation:<type>"`` for each relation and ``"entity:<type>"`` for each entity of ``ex``."""
        out = {f"relation:{r[6]}" for r in ex.relations}
        if self.entity_stage:
            out |= {f"entity:{t}" for *_, t in ex.entities}
        return out

    # -- queries -----------------------------------------------------------------------------------
    def relations_for(self, head_type: str) -> list[str]:
        """Relations a head of ``head_type`` is queried with (all of them without signatures)."""
        if self.signatures is None:
            return list(self.relation_labels)
        return [r for r in self.relation_labels if self.signatures.get(r, (head_type,))[0] == head_type]

    def relation_queries(self, tokens: Sequence[str], heads: Sequence[tuple[int, int, str]]) -> dict[str, list[tuple[tuple[int, int, str], str]]]:
        """Stage-2 labels of one sentence: label text -> [(head entity, relation), ...].

        >>> ds = REDataset("toy", {}, {"Peop": "Person"}, {"Kill": "killed"})
        >>> ds.relation_queries(["Tom", "shot", "Tom"], [(0, 1, "Peop"), (2, 3, "Peop")])
        {'Tom killed': [((0, 1, 'Peop'), 'Kill'), ((2, 3, 'Peop'), 'Kill')]}
        """
        out: dict[str, list] = defaultdict(list)
        for h in heads:
            for r in self.relations_for(h[2]):
                out[f"{span_text(tokens, h)} {self.relation_labels[r]}"].append((tuple(h), r))
        return dict(out)

    def instances(self, ex: Example) -> list[dict]:
        """Entity queries (every type) then one query per (head words, relation) with its gold tails."""
        out = []
        if self.entity_stage:
            for raw, label in self.entity_labels.items():
                out.append(make_instance(label, ex.tokens, [(s, e) for s, e, t in ex.entities if t == raw]))
        for label, pairs in self.relation_queries(ex.tokens, sorted(set(ex.entities))).items():
            tails = {(r[3], r[4]) for r in ex.relations for h, rel in pairs if (r[0], r[1], r[2]) == h and r[6] == rel}
            out.append(make_instance(label, ex.tokens, tails))
        return out

    def gold(self, ex: Example) -> dict[str, set[tuple]]:
        g = {
            "relation": set(ex.relations),
            "relation_boundary": {(r[0], r[1], r[3], r[4], r[6]) for r in ex.relations},
        }
        if self.entity_stage:
            g["entity"] = set(ex.entities)
        return g

    def first_stage_labels(self) -> frozenset[str]:
        """The entity types (none with ``entity_stage=False``: the marked entities are given)."""
        return frozenset(self.entity_labels.values()) if self.entity_stage else frozenset()

    def predict(
        self,
        extractor: Extractor,
        examples: Sequence[Example],
        batch_size: int = 64,
        anchors: str = "predicted",
    ) -> list[dict[str, set[tuple]]]:
        """Stage 1 entities, then ``<head> <relation phrase>`` queries on the anchors.

        ``anchors="predicted"`` (end to end) uses stage-1 entities as heads; ``"gold"`` uses the gold
        entities (Cuckoo's protocol gives the gold head) as heads, and their types for the tails they
        cover, still scoring the predicted entities.
        """
        if anchors not in ("predicted", "gold"):
            raise ValueError(f"anchors={anchors!r}; use 'predicted' or 'gold'")
        texts = [ex.tokens for ex in examples]
        if self.entity_stage:
            labs = list(self.entity_labels.values())
            res = run_queries(extractor, texts, [labs] * len(examples), batch_size, desc=f"{self.name} entities")
            ents = [resolve_conflicts((s, e, self.type_of_label[lab], sc) for s, e, lab, sc in spans) for spans in res]
        else:
            ents = [set(ex.entities) for ex in examples]
        heads = [sorted(set(ex.entities)) if anchors == "gold" else sorted(en) for ex, en in zip(examples, ents)]
        queries = [self.relation_queries(ex.tokens, hs) for ex, hs in zip(examples, heads)]
        res2 = run_queries(extractor, texts, [list(q) for q in queries], batch_size, desc=f"{self.name} relations")
        out = []
        for ex, en, q, spans in zip(examples, ents, queries, res2):
            type_at = {(s, e): t for s, e, t in en}
            if anchors == "gold":
                type_at.update({(s, e): t for s, e, t in ex.entities})
            rels = set()
            for s, e, lab, _ in spans:
                for h, r in q[lab]:
                    if (s, e) == (h[0], h[1]):
                        continue
                    tt = type_at.get((s, e)) or (self.signatures or {}).get(r, ("", ""))[1]
                    rels.add((h[0], h[1], h[2], s, e, tt, r))
            pred = {"relation": rels, "relation_boundary": {(r[0], r[1], r[3], r[4], r[6]) for r in rels}}
            if self.entity_stage:
                pred["entity"] = set(en)
            out.append(pred)
        return out
