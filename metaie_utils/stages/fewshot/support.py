"""Stage 05's support and test sets: seeded K-shot sampling (greedy or per type), the fixed test subset,
and the instance helpers the loop and the baselines share (so neither imports the other)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from collections import Counter
from typing import Any, Callable, Iterable, Mapping, Sequence

TEST_SAMPLE_SEED = 20240401  # the capped test subset is the same for every seed and initialization


def _type_counts(ex: Any, types_of: Callable[[Any], Iterable[str]], counts_of: Callable[[Any], Mapping[str, int]] | None) -> Counter:
    if counts_of is not None:
        return Counter({t: int(n) for t, n in counts_of(ex).items() if n})
    return Counter({t: 1 for t in types_of(ex)})


def sample_support(
    examples: Sequence[Any],
    types_of: Callable[[Any], Iterable[str]],
    k: int,
    seed: int,
    *,
    counts_of: Callable[[Any], Mapping[str, int]] | None = None,
    types: Iterable[str] | None = None,
    method: str = "greedy",
    where: str = "the support pool",
) -> list[int]:
    """Indices (sorted) of a seeded K-shot support set in which every type has >= ``k`` mentions.

    ``method="greedy"`` is the usual greedy sampler (Yang and Katiyar, 2020): visit the examples in a
    seeded random order and keep an example when it carries a type that still has fewer than ``k``
    mentions; stop once every type has ``k``. One sentence often serves several types, so CoNLL2003
    5-shot gives about 12 sentences. ``method="per-type"`` reproduces the authors' support size
    (types x K sentences, CoNLL2003 5-shot = 20): for each type in turn, keep the next ``k`` unused
    sentences that contain it.

    Mentions are counted with ``counts_of(ex) -> {type: n}`` when given, else one per type in
    ``types_of(ex)``. A type with fewer than ``k`` mentions in the whole pool gets all of them (best effort,
    see :func:`short_types`); when EVERY type falls short, K is larger than the split allows and
    :class:`FewShotError` says so with the counts and the largest feasible K.

    >>> exs = [{"PER"}, {"LOC"}, {"PER", "LOC"}, set(), {"PER"}]
    >>> idx = sample_support(exs, lambda ex: ex, k=2, seed=0)
    >>> c = Counter(t for i in idx for t in exs[i]); c["PER"] >= 2 and c["LOC"] >= 2
    True
    >>> idx == sample_support(exs, lambda ex: ex, k=2, seed=0)
    True
    """
    if k < 1:
        raise FewShotError(f"k must be >= 1, got {k}.")
    if method not in SAMPLERS:
        raise FewShotError(f"unknown sampler {method!r}; use one of {list(SAMPLERS)}.")
    counts = [_type_counts(ex, types_of, counts_of) for ex in examples]
    total: Counter = Counter()
    for c in counts:
        total.update(c)
    wanted = sorted(set(types) if types is not None else set(total))
    if not wanted:
        raise FewShotError(f"{where} has no typed mentions ({len(examples)} examples): nothing to sample K shots of.")
    short = {t: total.get(t, 0) for t in wanted if total.get(t, 0) < k}
    if len(short) == len(wanted):
        feasible = max(total.get(t, 0) for t in wanted)
        raise _user_error(
            f"K={k} shots asked, but {where} ({len(examples)} sentences) has fewer than {k} mentions of every "
            f"type: " + ", ".join(f"{t!r}: {n}" for t, n in sorted(short.items()))
            + f". K is larger than the split allows: lower `shots` to <= {feasible}, or drop the dataset."
        )
    target = {t: min(k, total.get(t, 0)) for t in wanted}
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    have: Counter = Counter()
    chosen: list[int] = []
    if method == "greedy":
        for i in order:
            if any(have[t] < target[t] for t in counts[i] if t in target):
                chosen.append(i)
                have.update(counts[i])
                if all(have[t] >= target[t] for t in wanted):
                    break
    else:
        used: set[int] = set()
        for t in wanted:
            got = 0
            for i in order:
                if got >= k:
                    break
                if i not in used and counts[i].get(t):
                    used.add(i)
                    chosen.append(i)
                    got += 1
    return sorted(chosen)


def add_negatives(examples: Sequence[Any], chosen: Sequence[int], types_of: Callable[[Any], Iterable[str]],
                  seed: int) -> list[int]:
    """``chosen`` plus seeded type-free examples in their natural share of ``examples`` (about half of CASIE's
    sentences have no event; a support set without them never shows the model a sentence to leave empty).

    >>> exs = [{"A"}, set(), {"A"}, set(), {"A"}, set()]
    >>> add_negatives(exs, [0, 2], lambda ex: ex, seed=0)
    [0, 2, 3, 5]
    """
    free = [i for i, ex in enumerate(examples) if not set(types_of(ex))]
    if not free or len(free) == len(examples) or not chosen:
        return sorted(chosen)
    share = len(free) / len(examples)
    n = min(len(free), round(len(chosen) * share / (1 - share)))
    return sorted(set(chosen) | set(random.Random(seed).sample(free, n)))


def short_types(examples: Sequence[Any], types_of: Callable, k: int, counts_of: Callable | None = None,
                types: Iterable[str] | None = None) -> dict[str, int]:
    """``{type: mentions}`` of the types with fewer than ``k`` mentions in ``examples`` (sampled best effort).

    >>> short_types([{"PER"}, {"PER"}, {"LOC"}], lambda ex: ex, 2)
    {'LOC': 1}
    """
    tot = support_type_counts(examples, types_of, counts_of)
    return {t: tot.get(t, 0) for t in sorted(set(types) if types is not None else set(tot)) if tot.get(t, 0) < k}


def support_type_counts(
    examples: Sequence[Any], types_of: Callable[[Any], Iterable[str]], counts_of: Callable | None = None
) -> dict[str, int]:
    """``{type: mentions}`` over ``examples`` (the coverage report saved with each support set)."""
    tot: Counter = Counter()
    for ex in examples:
        tot.update(_type_counts(ex, types_of, counts_of))
    return dict(sorted(tot.items()))


def capped_test(examples: Sequence[Any], cap: int, seed: int = TEST_SAMPLE_SEED) -> list[Any]:
    """The first-class test subset: all ``examples`` when ``cap`` is 0 or >= len, else a fixed random
    ``cap``-subset in corpus order (the same for every seed and initialization).

    >>> capped_test(list(range(10)), 0) == list(range(10))
    True
    >>> len(capped_test(list(range(10)), 3)), capped_test(list(range(10)), 3) == capped_test(list(range(10)), 3)
    (3, True)
    """
    if cap <= 0 or cap >= len(examples):
        return list(examples)
    idx = sorted(random.Random(seed).sample(range(len(examples)), cap))
    return [examples[i] for i in idx]


def jsonable(ex: Any) -> Any:
    """An example as JSON data: dataclasses -> dict, sets -> sorted lists, else as is (or its repr)."""
    if dataclasses.is_dataclass(ex) and not isinstance(ex, type):
        ex = dataclasses.asdict(ex)
    if isinstance(ex, Mapping):
        return {str(k): jsonable(v) for k, v in ex.items()}
    if isinstance(ex, (set, frozenset)):
        return sorted((jsonable(v) for v in ex), key=repr)
    if isinstance(ex, (list, tuple)):
        return [jsonable(v) for v in ex]
    if isinstance(ex, (str, int, float, bool)) or ex is None:
        return ex
    return repr(ex)


def mention_counter(dataset: Any) -> Callable[[Any], Mapping[str, int]] | None:
    """``ex -> {type: mentions}`` for the sampler: the dataset's ``type_counts`` when it has one, entity
    mentions for NER examples (``ex.entities`` of ``(start, end, type)``), else None (sentences per type)."""
    if callable(getattr(dataset, "type_counts", None)):
        return dataset.type_counts
    if getattr(dataset, "task", "") == "ner":
        return lambda ex: Counter(t for *_, t in getattr(ex, "entities", []))
    return None


def support_split(dataset: Any) -> str:
    """``"train"`` when the dataset has one, else ``"dev"`` (qasrl, up-ewt), else the first non-test split."""
    splits = list(dataset.splits)
    for s in ("train", "dev", "validation"):
        if s in splits:
            return s
    rest = [s for s in splits if s != "test"]
    if not rest:
        raise FewShotError(f"dataset {dataset.name!r} has only the splits {splits}: no split to sample support sets from.")
    return rest[0]


def instance_sentence(inst: Mapping[str, Any]) -> tuple[str, list[str]]:
    """An authors'-format instance -> (label text, sentence words).

    >>> instance_sentence({"words": ["Other", "entity", ":", "EU", "rejects"], "ner": ["O"] * 5})
    ('Other entity', ['EU', 'rejects'])
    """
    from metaie_utils.core.bio import split_instance

    label_words, words, _ = split_instance(inst)
    return " ".join(label_words), words


def instance_spans(inst: Mapping[str, Any]) -> list[tuple[int, int]]:
    """Half-open word spans of an instance's sentence part: B(I*) runs, an I after O starts a span.

    >>> instance_spans({"words": ["Person", ":", "Tom", "Cruise", "runs"], "ner": ["O", "O", "B", "I", "O"]})
    [(0, 2)]
    """
    from metaie_utils.core.bio import bio_spans, split_instance

    return bio_spans(split_instance(inst)[2])


def config_key(obj: Any) -> str:
    """A short stable hash of JSON-able settings (names cached baseline checkpoints)."""
    return hashlib.sha1(json.dumps(jsonable(obj), sort_keys=True).encode()).hexdigest()[:10]


SAMPLERS: tuple[str, ...] = ("greedy", "per-type")


class FewShotError(ValueError):
    """A few-shot request that cannot be met (unknown dataset, K too large for the split...)."""


def _user_error(msg: str) -> Exception:
    """A :class:`metaie_utils.cli.UserError` (printed as one paragraph by the CLI)."""
    from metaie_utils.core.errors import UserError

    class FewShotUserError(UserError, FewShotError):
        pass

    return FewShotUserError(msg)
