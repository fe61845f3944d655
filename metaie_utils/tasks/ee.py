"""Event extraction as two-stage span extraction.

Stage 1 queries triggers by event type (``Data breach trigger : ...``). Stage 2 queries, for every
trigger and every role of its event type, ``<role> Argument for Trigger "<trigger words>"``. Keys of
``gold``/``predict``:

- ``trigger``: ``(start, end, event_type)`` (Trig-C); ``trigger_id``: ``(start, end)`` (the paper's
  unlabeled triggers, T);
- ``argument``: ``(trig_start, trig_end, event_type, arg_start, arg_end, role)`` (Arg-C, attached to its
  trigger); ``argument_id``: ``(trig_start, trig_end, arg_start, arg_end)`` (the paper's
  trigger-argument pairs, A).

Triggers with the same words and type share one stage-2 query (the position stays implicit).

>>> from .base import Event
>>> ds = EEDataset("toy", {"test": lambda: []}, {"Attack": "Attack"}, {"Attacker": "Attacker"})
>>> ex = Example("t/0", ["Bob", "hacked", "it"], events=[Event((1, 2), "Attack", [(0, 1, "Attacker")])])
>>> [" ".join(i["words"][:i["words"].index(":")]) for i in ds.instances(ex)]
['Attack trigger', "Attacker Argument for Trigger `` hacked ''"]
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

__all__ = ["EEDataset", "trigger_label", "argument_label"]


def trigger_label(event_name: str) -> str:
    """``"Data breach"`` -> ``"Data breach trigger"``."""
    return f"{event_name} trigger"


def argument_label(role_name: str, trigger_words: str) -> str:
    """``("Attacker", "hacked")`` -> ``'Attacker Argument for Trigger "hacked"'``."""
    return f'{role_name} Argument for Trigger "{trigger_words}"'


class EEDataset(TaskDataset):
    """An event dataset. ``event_labels``: event type -> name; ``role_labels``: role -> name;
    ``roles_of``: event type -> its roles (``None``: every role for every event type)."""

    task = "ee"
    subtasks = ("trigger", "trigger_id", "argument", "argument_id")

    def __init__(
        self,
        name: str,
        readers: dict[str, Callable[[], list[Example]]],
        event_labels: dict[str, str],
        role_labels: dict[str, str],
        roles_of: dict[str, list[str]] | None = None,
    ):
        super().__init__(name, list(readers))
        self.readers = readers
        self.event_labels = dict(event_labels)
        self.role_labels = dict(role_labels)
        self.roles_of = dict(roles_of) if roles_of else None
        self.type_of_label = {trigger_label(v): k for k, v in self.event_labels.items()}

    def _read(self, split: str) -> list[Example]:
        exs = self.readers[split]()
        check_verbalizer(self.name, self.event_labels, {ev.type for ex in exs for ev in ex.events}, f"split {split!r}")
        check_verbalizer(self.name, self.role_labels, {a[2] for ex in exs for ev in ex.events for a in ev.arguments}, f"split {split!r}")
        return exs

    def example_types(self, ex: Example) -> set[str]:
        """Event types of ``ex``."""
        return {ev.type for ev in ex.events}

    def roles_for(self, event_type: str) -> list[str]:
        return list(self.role_labels) if self.roles_of is None else list(self.roles_of.get(event_type, []))

    def argument_queries(self, tokens: Sequence[str], triggers: Sequence[tuple[int, int, str]]) -> dict[str, list[tuple[tuple[int, int, str], str]]]:
        """Stage-2 labels: label text -> [((trig_start, trig_end, event_type), role), ...]."""
        out: dict[str, list] = defaultdict(list)
        for t in triggers:
            words = span_text(tokens, t)
            for role in self.roles_for(t[2]):
                out[argument_label(self.role_labels[role], words)].append((tuple(t), role))
        return dict(out)

    def instances(self, ex: Example) -> list[dict]:
        """A trigger query per event type, then a query per (trigger words, role of its type)."""
        out = [make_instance(trigger_label(name), ex.tokens, [ev.trigger for ev in ex.events if ev.type == raw])
               for raw, name in self.event_labels.items()]
        triggers = sorted({(ev.trigger[0], ev.trigger[1], ev.type) for ev in ex.events})
        args_of: dict[tuple, set] = defaultdict(set)
        for ev in ex.events:
            for s, e, role in ev.arguments:
                args_of[(ev.trigger[0], ev.trigger[1], ev.type, role)].add((s, e))
        for label, pairs in self.argument_queries(ex.tokens, triggers).items():
            spans = set().union(*(args_of.get((t[0], t[1], t[2], role), set()) for t, role in pairs))
            out.append(make_instance(label, ex.tokens, spans))
        return out

    def gold(self, ex: Example) -> dict[str, set[tuple]]:
        trig = {(ev.trigger[0], ev.trigger[1], ev.type) for ev in ex.events}
        args = {(ev.trigger[0], ev.trigger[1], ev.type, s, e, r) for ev in ex.events for s, e, r in ev.arguments}
        return {
            "trigger": trig,
            "trigger_id": {(s, e) for s, e, _ in trig},
            "argument": args,
            "argument_id": {(a[0], a[1], a[3], a[4]) for a in args},
        }

    def predict(
        self,
        extractor: Extractor,
        examples: Sequence[Example],
        batch_size: int = 64,
        anchors: str = "predicted",
    ) -> list[dict[str, set[tuple]]]:
        """Stage 1 triggers (same-span conflicts resolved by score), then argument queries on the
        predicted triggers (``anchors="gold"``: on the gold triggers)."""
        if anchors not in ("predicted", "gold"):
            raise ValueError(f"anchors={anchors!r}; use 'predicted' or 'gold'")
        texts = [ex.tokens for ex in examples]
        labs = list(self.type_of_label)
        res = run_queries(extractor, texts, [labs] * len(examples), batch_size, desc=f"{self.name} triggers")
        trigs = [resolve_conflicts((s, e, self.type_of_label[lab], sc) for s, e, lab, sc in spans) for spans in res]
        anchor = [sorted({(ev.trigger[0], ev.trigger[1], ev.type) for ev in ex.events}) if anchors == "gold" else sorted(t)
                  for ex, t in zip(examples, trigs)]
        queries = [self.argument_queries(ex.tokens, a) for ex, a in zip(examples, anchor)]
        res2 = run_queries(extractor, texts, [list(q) for q in queries], batch_size, desc=f"{self.name} arguments")
        out = []
        for tr, q, spans in zip(trigs, queries, res2):
            args = {(t[0], t[1], t[2], s, e, role) for s, e, lab, _ in spans for t, role in q[lab]}
            out.append({
                "trigger": set(tr),
                "trigger_id": {(s, e) for s, e, _ in tr},
                "argument": args,
                "argument_id": {(a[0], a[1], a[3], a[4]) for a in args},
            })
        return out
