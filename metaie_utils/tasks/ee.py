"""Event extraction as two-stage span extraction, untyped (the paper's protocol) by default.

``EEDataset(..., typed=False)`` (the default, the paper's T and A): stage 1 asks one untyped query,
``Event trigger``; stage 2 asks, for every predicted trigger, ``Argument for Trigger "<trigger words>"``.
Sub-tasks (keys of ``gold``/``predict``):

- ``trigger_id``: ``(start, end)``, unlabeled trigger detection (the paper's T);
- ``argument_id``: ``(trig_start, trig_end, arg_start, arg_end)``, trigger-argument pairs (the paper's A).

``typed=True`` (the spec ``casie:events=typed``) is the typed variant: stage 1 queries triggers by event
type (``Data breach trigger``), stage 2 ``<role> Argument for Trigger "<trigger words>"`` for every role
of the trigger's type, and adds the typed sub-tasks

- ``trigger``: ``(start, end, event_type)`` (Trig-C);
- ``argument``: ``(trig_start, trig_end, event_type, arg_start, arg_end, role)`` (Arg-C).

Triggers with the same words (and type) share one stage-2 query (the position stays implicit).
``predict(..., anchors="gold")`` asks stage 2 on the gold triggers, so arguments can be scored apart
from trigger detection (the loop's ``argument_id@gold`` rows).

Event-free sentences carry information too (about half of CASIE's test sentences have no event):
:attr:`EEDataset.support_negatives` asks the few-shot sampler to add them to the support set in their
natural share of the pool.

>>> from .base import Event
>>> ex = Example("t/0", ["Bob", "hacked", "it"], events=[Event((1, 2), "Attack", [(0, 1, "Attacker")])])
>>> ds = EEDataset("toy", {"test": lambda: []}, {"Attack": "Attack"}, {"Attacker": "Attacker"})
>>> [" ".join(i["words"][:i["words"].index(":")]) for i in ds.instances(ex)]
['Event trigger', "Argument for Trigger `` hacked ''"]
>>> typed = EEDataset("toy", {"test": lambda: []}, {"Attack": "Attack"}, {"Attacker": "Attacker"}, typed=True)
>>> [" ".join(i["words"][:i["words"].index(":")]) for i in typed.instances(ex)]
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

__all__ = ["EEDataset", "trigger_label", "argument_label", "UNTYPED_TRIGGER"]

#: The untyped stage-1 query (the paper's unlabeled triggers, T).
UNTYPED_TRIGGER = "Event trigger"


def trigger_label(event_name: str) -> str:
    """``"Data breach"`` -> ``"Data breach trigger"``; ``""`` -> the untyped ``"Event trigger"``."""
    return f"{event_name} trigger" if event_name else UNTYPED_TRIGGER


def argument_label(role_name: str, trigger_words: str) -> str:
    """``("Attacker", "hacked")`` -> ``'Attacker Argument for Trigger "hacked"'``; ``("", "hacked")`` -> the
    paper's untyped ``'Argument for Trigger "hacked"'``."""
    return f'{role_name} Argument for Trigger "{trigger_words}"' if role_name else f'Argument for Trigger "{trigger_words}"'


class EEDataset(TaskDataset):
    """An event dataset. ``event_labels``: event type -> name; ``role_labels``: role -> name;
    ``roles_of``: event type -> its roles (``None``: every role for every event type); ``typed``: False
    (default) asks untyped trigger and argument queries and scores T / A, True the typed variant."""

    task = "ee"
    subtasks = ("trigger_id", "argument_id")
    gold_anchor_subtasks = ("argument_id",)  # stage 2 scored again on the gold triggers
    support_negatives = True  # event-free sentences join the support set in their natural share

    def __init__(
        self,
        name: str,
        readers: dict[str, Callable[[], list[Example]]],
        event_labels: dict[str, str],
        role_labels: dict[str, str],
        roles_of: dict[str, list[str]] | None = None,
        typed: bool = False,
    ):
        super().__init__(name, list(readers))
        self.typed = bool(typed)
        if self.typed:
            self.subtasks = ("trigger", "trigger_id", "argument", "argument_id")
            self.gold_anchor_subtasks = ("argument", "argument_id")
        self.readers = readers
        self.event_labels = dict(event_labels)
        self.role_labels = dict(role_labels)
        self.roles_of = dict(roles_of) if roles_of else None
        self.type_of_label = ({trigger_label(v): k for k, v in self.event_labels.items()} if self.typed
                              else {UNTYPED_TRIGGER: ""})

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

    def _triggers(self, ex: Example) -> list[tuple[int, int, str]]:
        """Gold triggers as ``(start, end, event_type)``; the type is ``""`` when untyped."""
        return sorted({(ev.trigger[0], ev.trigger[1], ev.type if self.typed else "") for ev in ex.events})

    def argument_queries(self, tokens: Sequence[str], triggers: Sequence[tuple[int, int, str]]) -> dict[str, list[tuple[tuple[int, int, str], str]]]:
        """Stage-2 labels: label text -> [((trig_start, trig_end, event_type), role), ...] (untyped: one
        query per trigger, role ``""``)."""
        out: dict[str, list] = defaultdict(list)
        for t in triggers:
            words = span_text(tokens, t)
            if not self.typed:
                out[argument_label("", words)].append((tuple(t), ""))
                continue
            for role in self.roles_for(t[2]):
                out[argument_label(self.role_labels[role], words)].append((tuple(t), role))
        return dict(out)

    def instances(self, ex: Example) -> list[dict]:
        """Untyped: one ``Event trigger`` query, then one ``Argument for Trigger`` query per trigger's words.
        Typed: a trigger query per event type, then a query per (trigger words, role of its type)."""
        if self.typed:
            out = [make_instance(trigger_label(name), ex.tokens, [ev.trigger for ev in ex.events if ev.type == raw])
                   for raw, name in self.event_labels.items()]
        else:
            out = [make_instance(UNTYPED_TRIGGER, ex.tokens, [ev.trigger for ev in ex.events])]
        args_of: dict[tuple, set] = defaultdict(set)
        for ev in ex.events:
            for s, e, role in ev.arguments:
                key = (ev.trigger[0], ev.trigger[1], ev.type, role) if self.typed else (ev.trigger[0], ev.trigger[1], "", "")
                args_of[key].add((s, e))
        for label, pairs in self.argument_queries(ex.tokens, self._triggers(ex)).items():
            spans = set().union(*(args_of.get((t[0], t[1], t[2], role), set()) for t, role in pairs))
            out.append(make_instance(label, ex.tokens, spans))
        return out

    def gold(self, ex: Example) -> dict[str, set[tuple]]:
        trig = {(ev.trigger[0], ev.trigger[1], ev.type) for ev in ex.events}
        args = {(ev.trigger[0], ev.trigger[1], ev.type, s, e, r) for ev in ex.events for s, e, r in ev.arguments}
        out = {"trigger_id": {(s, e) for s, e, _ in trig}, "argument_id": {(a[0], a[1], a[3], a[4]) for a in args}}
        if self.typed:
            out.update(trigger=trig, argument=args)
        return out

    def first_stage_labels(self) -> frozenset[str]:
        """The trigger queries (``Event trigger``, or one per event type when typed)."""
        return frozenset(self.type_of_label)

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
        anchor = [self._triggers(ex) if anchors == "gold" else sorted(t) for ex, t in zip(examples, trigs)]
        queries = [self.argument_queries(ex.tokens, a) for ex, a in zip(examples, anchor)]
        res2 = run_queries(extractor, texts, [list(q) for q in queries], batch_size, desc=f"{self.name} arguments")
        out = []
        for tr, q, spans in zip(trigs, queries, res2):
            args = {(t[0], t[1], t[2], s, e, role) for s, e, lab, _ in spans for t, role in q[lab]}
            pred = {"trigger_id": {(s, e) for s, e, _ in tr}, "argument_id": {(a[0], a[1], a[3], a[4]) for a in args}}
            if self.typed:
                pred.update(trigger=set(tr), argument=args)
            out.append(pred)
        return out
