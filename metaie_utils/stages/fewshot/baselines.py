"""The paper's baselines for stage 05: NER distillation, a MultiIE substitute, and LLM in-context prompting.

- ``ner-distill`` (task-level transfer, UniversalNER style): the SAME teacher is asked for named entities
  only (prompt ``ner_prompt``: ``ner-icl-v1``, with in-context NER demonstrations as the paper gives its
  LLM task-specific examples; ``ner-v1`` without) on the SAME sentences as MetaIE (found through the
  meta-model's provenance: 04 -> 03 -> 02 -> 01 run manifests, or given by ``ner_responses``), the
  responses are converted to instances exactly as in stage 03 and trained with stage 04's recipe. NER
  answers fewer spans per sentence than MetaIE's open prompt, so when the count falls short of MetaIE's
  the teacher is asked more sentences of the same corpus and sampler (2x, 4x, 8x) until it matches; the
  sentence and instance counts of both are in the checkpoint's ``baseline.json`` and in results.csv.
- ``multiie`` (IE-level transfer on human annotations): the paper merges FewNERD + FewRel + FewEvent.
  Those are not available offline, so the default substitute merges human-annotated NER + RE + EE data:
  NCBI-disease (NER), SemEval-2010 Task 8 (RE) and the CASIE train split (EE), turned into instances by
  each task's ``instances(ex)``, subsampled to MetaIE's count. The checkpoint is built per evaluated
  dataset: a source that IS the evaluated dataset (CASIE when CASIE is scored) is left out, so MultiIE is
  never a supervised cell among few-shot ones (``pretrain_sources`` and ``note`` in results.csv say which).
  Users who have the paper's sets can list them in ``multiie_datasets`` once a reader is registered in
  ``tasks.DATASETS`` under ``fewnerd`` / ``fewrel`` / ``fewevent``.
- ``llm-icl``: the teacher prompted with the K-shot support sentences as in-context examples, answering
  ``- <type>: <span>`` lines that are matched back to word spans; on every task family, with the student's
  own multi-stage queries (stage 2 on the teacher's stage-1 answers), capped (``icl_test_cap``) and cached.

Pre-trained baseline checkpoints are cached under ``<out_root>/baselines/<kind>-<key>/`` where ``key``
hashes every setting that changes the checkpoint; a folder with ``baseline.json`` is finished and reused.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from metaie_utils.core.io import read_jsonl, write_jsonl
from metaie_utils.core.paths import resolve
from metaie_utils.core.runs import read_json, write_json
from metaie_utils.core.spans import Span

MANIFEST = "manifest.json"


BASELINE_DONE = "baseline.json"


PAPER_MULTIIE = ("fewnerd", "fewrel", "fewevent")  # the paper's MultiIE sources (not shipped)


ICL_MAX_PROMPT_WORDS = 900  # demonstrations are dropped beyond this budget (small teachers' context)
#: the local llm-icl teacher's context: 900 words of demonstrations and queries are ~2,000 Qwen2.5 tokens on
#: CoNLL2004 (numbers and names split into several), so 2,048 cut answers off after a few tokens
ICL_N_CTX = 4096


ICL_LINE = re.compile(r"^\s*[-*•]\s*([^:\n]+?)\s*:\s*(.+?)\s*$", re.MULTILINE)


def plain_quotes(label: str) -> str:
    """A query as a person writes it: the tokenizer's quotes (````x ''``, from support instances) back to ``"x"``.

    >>> plain_quotes("Term for Positive Opinion `` hard for me ''")
    'Term for Positive Opinion "hard for me"'
    >>> plain_quotes('Argument for Trigger "hacked"')
    'Argument for Trigger "hacked"'
    """
    if "``" not in label and "''" not in label:
        return label
    return re.sub(r'"\s*(.*?)\s*"', r'"\1"', label.replace("``", '"').replace("''", '"'))


def _label_key(label: str) -> str:
    """What a teacher's copy of a query must keep to count as that query: its characters, any quotes, case,
    spacing and closing punctuation aside (support instances hold QA-SRL's questions tokenized, ``Who found
    something ?``, the test sentence's queries as written, ``Where did someone go?``; the teacher copies the
    latter in the demonstrations' style, ``Where did someone go? ?``).

    >>> _label_key("Where did someone go ?") == _label_key("where did someone go?") == _label_key("Where did someone go? ?")
    True
    >>> _label_key("Term for Positive Opinion `` good ''") == _label_key('Term for Positive Opinion "good"')
    True
    """
    return "".join(label.replace("``", " ").replace("''", " ").replace('"', " ").lower().split()).rstrip("?.!")


class BaselineError(ValueError):
    """A baseline cannot be built from the given inputs; the message says which input and how to fix it."""


def _user_error(msg: str) -> Exception:
    from metaie_utils.core.errors import UserError

    class BaselineUserError(UserError, BaselineError):
        pass

    return BaselineUserError(msg)


def run_dir_of(path: str | Path) -> Path | None:
    """The run directory holding ``path`` (the folder itself or a parent with ``manifest.json``)."""
    p = resolve(path)
    for cand in [p, *p.parents][:3]:
        if (cand / MANIFEST).is_file():
            return cand
    return None


def upstream_runs(run_dir: Path) -> list[Path]:
    """Run directories named by the upstream parameters of ``run_dir``'s manifest (one level)."""
    from metaie_utils.core.params import stage_class

    man = read_json(run_dir / MANIFEST)
    try:
        ups = stage_class(man.get("stage", "")).upstream
    except Exception:  # unknown stage or module not importable: no upstream to follow
        return []
    out = []
    for key in ups:
        val = (man.get("params") or {}).get(key)
        if val:
            d = run_dir_of(val)
            if d is not None and d != run_dir:
                out.append(d)
    return out


def find_upstream(start: str | Path, filename: str, max_depth: int = 5) -> Path | None:
    """Walk the run manifests upstream of ``start`` and return the first ``filename`` found.

    >>> find_upstream("outputs/04_train_meta_model/cpu", "sentences.jsonl")  # doctest: +SKIP
    PosixPath('.../outputs/01_sample_corpus/cpu/sentences.jsonl')
    """
    d = run_dir_of(start)
    frontier = [d] if d is not None else []
    seen: set[Path] = set()
    for _ in range(max_depth + 1):
        nxt = []
        for r in frontier:
            if r in seen:
                continue
            seen.add(r)
            if (r / filename).is_file():
                return r / filename
            nxt.extend(upstream_runs(r))
        frontier = nxt
    return None


def metaie_instance_count(meta_model: str) -> int:
    """Instances MetaIE was trained on (``instances.json`` upstream of the checkpoint)."""
    if not meta_model:
        raise _user_error("baseline_instances=0 means 'match MetaIE's instance count', but meta_model is ''. Set "
                          "meta_model to a 04 run directory or set baseline_instances to a number.")
    p = find_upstream(meta_model, "instances.json")
    if p is None:
        raise _user_error(f"Could not find the instances.json MetaIE was trained on upstream of {meta_model!r} "
                          f"(no 03_convert_bio run in its manifests). Set baseline_instances to a number.")
    return len(json.loads(p.read_text()))


def meta_training_recipe(meta_model: str) -> tuple[Any, dict]:
    """Stage 04's (TrainRecipe, TrainConfig params) of the meta-model, so baselines use the same recipe.

    Falls back to TrainConfig's defaults (with the note ``"recipe": "04 defaults"``) when the checkpoint has
    no 04 run manifest (e.g. a Hub checkpoint).
    """
    from metaie_utils.core.params import stage_config

    d = run_dir_of(meta_model) if meta_model else None
    params = dict(read_json(d / MANIFEST).get("params", {})) if d is not None else {}
    params = {k: v for k, v in params.items() if k not in ("run_name", "out_root", "overwrite")}
    cfg = stage_config("04_train_meta_model", params)
    return cfg.recipe(), cfg.model_dump()


def subsample(items: Sequence[Any], n: int, seed: int) -> list[Any]:
    """A seeded subsample of ``n`` items (all of them, in order, when ``n <= 0`` or ``n >= len``).

    >>> subsample(list(range(5)), 0, 0)
    [0, 1, 2, 3, 4]
    >>> len(subsample(list(range(50)), 7, 1)), subsample(list(range(50)), 7, 1) == subsample(list(range(50)), 7, 1)
    (7, True)
    """
    if n <= 0 or n >= len(items):
        return list(items)
    idx = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in idx]


def _cache_dir(cfg: Any, kind: str, settings: Mapping[str, Any]) -> Path:
    from metaie_utils.stages.fewshot.support import config_key

    return resolve(cfg.out_root) / "baselines" / f"{kind}-{config_key(settings)}"


def _train_cached(kind: str, instances: list[dict], cfg: Any, settings: dict, recipe: Any) -> Path:
    """Train ``cfg.backbone`` on ``instances`` with ``recipe`` into the cache (or reuse a finished one)."""
    from metaie_utils.models import finetune

    out = _cache_dir(cfg, kind, settings)
    if (out / BASELINE_DONE).is_file():
        return Path(read_json(out / BASELINE_DONE)["checkpoint"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "instances.json").write_text(json.dumps(instances, ensure_ascii=False) + "\n")
    ckpt = finetune(instances, cfg.backbone, out / "model", recipe, architecture=cfg.architecture, resume=True)
    write_json(out / BASELINE_DONE, {"kind": kind, "checkpoint": str(ckpt), "n_instances": len(instances),
                                     "settings": settings})
    return Path(ckpt)


def ner_responses_path(cfg: Any) -> Path:
    """The NER responses.jsonl: ``cfg.ner_responses`` or, when empty, distilled now on MetaIE's sentences (cached)."""
    from metaie_utils.core.runs import upstream_file

    if cfg.ner_responses:
        return upstream_file(cfg.ner_responses, "responses.jsonl")
    return distill_ner_responses(cfg)


def _metaie_teacher(cfg: Any) -> tuple[Path, Any]:
    """MetaIE's sentences.jsonl and its 02 config (teacher, endpoint, sampling), from the meta-model's runs."""
    from metaie_utils.core.params import stage_config

    sentences_path = find_upstream(cfg.meta_model, "sentences.jsonl") if cfg.meta_model else None
    responses_path = find_upstream(cfg.meta_model, "responses.jsonl") if cfg.meta_model else None
    if sentences_path is None or responses_path is None:
        raise _user_error(
            f"ner-distill needs MetaIE's sentences and teacher: no 01/02 runs upstream of meta_model="
            f"{cfg.meta_model!r}. Distill them yourself (02_distill_llm with prompt_version={cfg.ner_prompt} on the "
            f"same sentences.jsonl) and set ner_responses to that run directory."
        )
    dp = dict(read_json(run_dir_of(responses_path) / MANIFEST).get("params", {}))
    dcfg = stage_config("02_distill_llm", {k: v for k, v in dp.items() if k not in ("run_name", "out_root", "overwrite")})
    return sentences_path, dcfg


def _distill_ner(cfg: Any, sentences: list[dict], dcfg: Any, source: str) -> Path:
    """``cfg.ner_prompt`` responses of MetaIE's teacher on ``sentences`` -> a cached responses.jsonl.

    A shipped set of that prompt (:func:`metaie_utils.llm.shipped.path_for`) stands in for the teacher when it
    holds every sentence with the same teacher file and sampling (no server, no download); a partial one is put
    into the teacher's cache first, so only the sentences it lacks are asked."""
    import logging

    from metaie_utils.llm import client as llm
    from metaie_utils.llm import shipped

    key = {"sentences": source, "n": len(sentences), "ids": [r.get("id") for r in sentences][:3] + [len(sentences)],
           "prompt": cfg.ner_prompt, "teacher": dcfg.teacher, "base_url": dcfg.base_url, "n_samples": dcfg.n_samples,
           "temperature": dcfg.temperature, "max_tokens": dcfg.max_tokens, "seed": dcfg.seed}
    out = _cache_dir(cfg, "ner-responses", key)
    out.mkdir(parents=True, exist_ok=True)
    target = out / "responses.jsonl"
    if (out / BASELINE_DONE).is_file():
        return target
    log = logging.getLogger(__name__)
    sampling = (dcfg.temperature, dcfg.max_tokens, dcfg.seed, dcfg.n_samples)
    set_path = shipped.path_for(cfg.ner_prompt)
    rows, note = shipped.replay(sentences, dcfg.teacher, cfg.ner_prompt, *sampling, set_path)
    source_kind = "shipped"
    if rows is None:
        _, seeded = shipped.seed_cache(out / "cache.sqlite", dcfg.teacher, cfg.ner_prompt, *sampling, set_path)
        note = f"{note}; {seeded}"
        log.info("ner-distill: asking the teacher %s for %d sentences (%s)", dcfg.teacher, len(sentences), note)
        with teacher_client(dcfg.teacher, dcfg.base_url, dcfg.api_key_env, out / "cache.sqlite",
                            concurrency=dcfg.concurrency, n_ctx=dcfg.n_ctx, log_dir=out) as client:
            rows = llm.distill(sentences, client, cfg.ner_prompt, dcfg.n_samples, dcfg.temperature, dcfg.max_tokens, seed=dcfg.seed)
        source_kind = "teacher"
    else:
        log.info("ner-distill: %s", note)
    write_jsonl(target, rows)
    write_json(out / BASELINE_DONE, {"kind": "ner-responses", "sentences": source, "n": len(rows), "prompt": cfg.ner_prompt,
                                     "source": source_kind, "note": note})
    return target


def distill_ner_responses(cfg: Any) -> Path:
    """Ask MetaIE's teacher for named entities only (``cfg.ner_prompt``, by default ``ner-icl-v1`` with
    in-context NER demonstrations) on MetaIE's sentences -> responses.jsonl.

    The sentences and the teacher (model, endpoint, sampling) come from the meta-model's 01/02 runs, so
    the only difference from MetaIE's data is the prompt. The teacher's response cache makes a rerun free.
    """
    from metaie_utils.llm import client as llm

    sentences_path, dcfg = _metaie_teacher(cfg)
    return _distill_ner(cfg, llm.load_sentences(sentences_path, dcfg.limit), dcfg, str(sentences_path))


#: ner-distill asks at most this many times MetaIE's sentence count to match MetaIE's instance count
NER_MAX_SENTENCE_FACTOR = 8


def more_ner_sentences(cfg: Any, have: Sequence[dict], n_total: int) -> list[dict]:
    """Sentences of MetaIE's own corpus and sampler beyond ``have``, up to ``n_total`` in all: stage 01 re-run
    with a larger ``n_sentences`` (its bottom-k sample is prefix-stable, so MetaIE's sentences come first)."""
    from metaie_utils.core.params import stage_config

    sentences_path = find_upstream(cfg.meta_model, "sentences.jsonl") if cfg.meta_model else None
    run = run_dir_of(sentences_path) if sentences_path else None
    if run is None:
        return []
    params = dict(read_json(run / MANIFEST).get("params", {}))
    params = {k: v for k, v in params.items() if k not in ("run_name", "out_root", "overwrite")}
    params["n_sentences"] = n_total
    rows = stage_config("01_sample_corpus", params).sample()
    seen = {r.get("text") for r in have}
    return [r for r in rows if r.get("text") not in seen]


def convert_like_metaie(responses: Path, meta_model: str) -> list[dict]:
    """Responses -> instances with the stage 03 settings of the meta-model's own conversion (parser, label
    normalization, negatives), but no held-out split and no subsampling (the caller matches the count)."""
    from metaie_utils.core.params import stage_class, stage_config
    from metaie_utils.llm import label_to_span

    inst_path = find_upstream(meta_model, "instances.json") if meta_model else None
    params = dict(read_json(run_dir_of(inst_path) / MANIFEST).get("params", {})) if inst_path else {}
    params = {k: v for k, v in params.items() if k in stage_class("03_convert_bio").model_fields}
    params.update(input_dir=str(responses), heldout_fraction=0.0, max_instances=0, max_sentences=0,
                  label_subset="all", min_label_freq=1, run_name="", out_root="outputs", overwrite=False)
    ccfg = stage_config("03_convert_bio", params)
    rows = list(label_to_span.read_responses(responses))
    return list(label_to_span.convert_responses(rows, ccfg, progress=False).train)


def ner_distilled_checkpoint(cfg: Any) -> Path:
    """Build (or reuse) the NER-distilled checkpoint for ``cfg`` (an :class:`EvalConfig`)."""
    import logging

    log = logging.getLogger(__name__)
    responses = ner_responses_path(cfg)
    instances = convert_like_metaie(responses, cfg.meta_model)
    n = cfg.baseline_instances or metaie_instance_count(cfg.meta_model)
    if not instances:
        raise _user_error(f"{responses} gave no NER instances (every response failed or matched no span).")
    sources, n_sentences = [str(responses)], len(read_jsonl(responses))
    n_meta_sentences = n_sentences
    if len(instances) < n and not cfg.ner_responses:  # NER answers fewer spans per sentence: ask more sentences
        from metaie_utils.llm import client as llm

        sentences_path, dcfg = _metaie_teacher(cfg)
        have = llm.load_sentences(sentences_path, dcfg.limit)
        factor = 2
        while len(instances) < n and factor <= NER_MAX_SENTENCE_FACTOR:
            extra = more_ner_sentences(cfg, have, factor * len(have))
            if not extra:
                break
            log.info("ner-distill: %d instances from %d sentences, %d to match: asking the teacher %d more sentences",
                     len(instances), n_sentences, n, len(extra))
            more = _distill_ner(cfg, extra, dcfg, f"{sentences_path}+{len(extra)}@x{factor}")
            instances += convert_like_metaie(more, cfg.meta_model)
            sources.append(str(more))
            n_sentences += len(extra)
            have = have + extra
            factor *= 2
    if len(instances) < n:
        log.warning("ner-distill: the teacher's NER responses gave %d instances (%d sentences), fewer than the %d to "
                    "match; training on all of them (n_requested in baseline.json)", len(instances), n_sentences, n)
    instances = subsample(instances, n, cfg.seed)
    recipe, train_params = meta_training_recipe(cfg.meta_model)
    settings = {"responses": sources, "n": len(instances), "n_requested": n, "n_sentences": n_sentences,
                "n_metaie_sentences": n_meta_sentences, "prompt": cfg.ner_prompt, "backbone": cfg.backbone,
                "num_layers": cfg.num_layers, "train": train_params, "seed": cfg.seed}
    return _train_cached("ner-distill", instances, cfg, settings, recipe)



def multiie_instances(names: Iterable[str], get_dataset=None) -> list[dict]:
    """Training instances of the MultiIE sources (train split, dev when there is none), pooled."""
    from metaie_utils import tasks
    from metaie_utils.stages.fewshot.support import support_split

    get_dataset = get_dataset or tasks.get_dataset
    out: list[dict] = []
    for name in names:
        if name in PAPER_MULTIIE and name not in tasks.DATASETS:
            raise _user_error(
                f"multiie source {name!r} is one of the paper's sets (FewNERD/FewRel/FewEvent), which are not "
                f"shipped. Register a reader for it in metaie_utils.tasks.DATASETS, or use the substitutes "
                f"ncbi_disease, semeval2010_task8, casie."
            )
        if name not in tasks.DATASETS and name not in getattr(tasks, "ALIASES", {}):
            raise _user_error(f"Unknown multiie source {name!r}. Known datasets: {', '.join(sorted(tasks.DATASETS))}.")
        ds = get_dataset(name)
        split = "train" if "train" in ds.splits else support_split(ds)
        for ex in ds.load(split):
            for inst in ds.instances(ex):
                out.append({**inst, "source": name})
    return out


def balanced_subsample(instances: Sequence[Mapping[str, Any]], n: int, seed: int, key: str = "source") -> list:
    """``n`` instances with an equal share per ``key`` value (a source with fewer gives all it has and the
    rest goes to the others); all of them when ``n <= 0`` or ``n >= len``.

    >>> xs = [{"source": "a"}] * 10 + [{"source": "b"}] * 2
    >>> sorted(x["source"] for x in balanced_subsample(xs, 6, 0))
    ['a', 'a', 'a', 'a', 'b', 'b']
    """
    if n <= 0 or n >= len(instances):
        return list(instances)
    groups: dict[Any, list] = defaultdict(list)
    for inst in instances:
        groups[inst.get(key)].append(inst)
    quota: dict[Any, int] = {}
    left, names = n, sorted(groups, key=lambda g: len(groups[g]))
    for i, g in enumerate(names):  # smallest sources first, each takes at most an equal share of what is left
        quota[g] = min(len(groups[g]), left // (len(names) - i))
        left -= quota[g]
    out = []
    for g in sorted(groups, key=str):
        out.extend(subsample(groups[g], quota[g], seed))
    return out


def multiie_checkpoint(cfg: Any) -> Path:
    """Build (or reuse) the MultiIE-substitute checkpoint: human NER + RE + EE instances, count-matched
    (``baseline_instances`` or MetaIE's count) with an equal share per source dataset."""
    n = cfg.baseline_instances or metaie_instance_count(cfg.meta_model)
    instances = balanced_subsample(multiie_instances(cfg.multiie_datasets), n, cfg.seed)
    recipe, train_params = meta_training_recipe(cfg.meta_model)
    settings = {"sources": list(cfg.multiie_datasets), "n": len(instances), "backbone": cfg.backbone,
                "num_layers": cfg.num_layers, "train": train_params, "seed": cfg.seed}
    return _train_cached("multiie", instances, cfg, settings, recipe)


def demonstrations(instances: Iterable[Mapping[str, Any]]) -> list[tuple[list[str], list[tuple[str, str]]]]:
    """Authors'-format support instances -> per sentence ``(words, [(label, span text), ...])``.

    >>> demonstrations([{"words": ["Person", ":", "Tom", "runs"], "ner": ["O", "O", "B", "O"]},
    ...                 {"words": ["Location", ":", "Tom", "runs"], "ner": ["O", "O", "O", "O"]}])
    [(['Tom', 'runs'], [('Person', 'Tom')])]
    """
    from metaie_utils.stages.fewshot.support import instance_sentence, instance_spans

    by_sent: dict[tuple[str, ...], list[tuple[str, str]]] = defaultdict(list)
    for inst in instances:
        label, words = instance_sentence(inst)
        key = tuple(words)
        by_sent.setdefault(key, [])
        for s, e in instance_spans(inst):
            by_sent[key].append((label, " ".join(words[s:e])))
    return [(list(k), v) for k, v in by_sent.items()]


ICL_PROMPT_VERSIONS = {"ner": "icl-ner-v1", "other": "icl-v2"}  # the cache keys of llm-icl answers (per prompt)


def icl_messages(words: Sequence[str], labels: Sequence[str], demos: Sequence[tuple[list[str], list[tuple[str, str]]]],
                 max_words: int = ICL_MAX_PROMPT_WORDS, task: str = "ner",
                 fixed_labels: frozenset[str] | None = None) -> list[dict[str, str]]:
    """The few-shot chat: an instruction, one (user sentence, assistant answer) turn per demonstration, then
    the query sentence as the last user message. Demonstrations beyond ``max_words`` are dropped.

    NER (``icl-ner-v1``) asks for "entities of these types". Every other task (``icl-v2``) asks the student's
    own queries (entity types, ``Tom births in``, ``Event trigger``, ``Argument for Trigger "hacked"``,
    ``Positive opinion term``, ...), one stage at a time, as the multi-stage decoders drive them; each user turn
    is the sentence, then a ``Queries:`` line. A demonstration shows its answers to the queries asked when they
    are among its labels (a first stage: types shared by every sentence); otherwise (a second stage, whose
    queries name the sentence's own anchors) it shows its own second-stage answers, the labels outside
    ``fixed_labels``, as worked examples of the query format. ``fixed_labels`` are the first-stage labels
    (:func:`first_stage_labels`): None counts every query as first-stage, an empty set none (SRL). The system prompt and the demonstrations do not
    depend on the queried sentence's second-stage queries, so every prompt of one stage shares its prefix: a
    llama.cpp server re-reads only the last message (icl-v1 named the queries in the system prompt, so each
    second-stage prompt, ~1,900 tokens, was read whole: ~11 s a prompt on one core).

    >>> for m in icl_messages(["Tom", "runs"], ["Person"], [(["Ann", "sings"], [("Person", "Ann")])]):
    ...     print(m["role"], "|", m["content"])
    system | Extract the entities of these types from the user's sentence: Person. Answer one entity per line as "- <type>: <span>", copying the span from the sentence; answer "- none" when there is none.
    user | Ann sings
    assistant | - Person: Ann
    user | Tom runs
    >>> demos = [(["Ann", "lives", "in", "Rome"], [("Person", "Ann"), ("Location", "Rome"), ("Ann lives in", "Rome")])]
    >>> m = icl_messages(["Tom", "lives", "in", "Oslo"], ["Tom lives in"], demos, task="re", fixed_labels=frozenset({"Person", "Location"}))
    >>> for x in m[1:]:
    ...     print(x["role"], "|", x["content"].replace(chr(10), " / "))
    user | Ann lives in Rome / Queries: Ann lives in
    assistant | - Ann lives in: Rome
    user | Tom lives in Oslo / Queries: Tom lives in
    """
    if task == "ner":
        system = (f"Extract the entities of these types from the user's sentence: {', '.join(labels)}. Answer one entity per "
                  f'line as "- <type>: <span>", copying the span from the sentence; answer "- none" when there is none.')
    else:
        system = ("The user gives a sentence, then a line of queries separated by semicolons. Extract the spans of the "
                  'sentence that answer each query. Answer one span per line as "- <query>: <span>", copying the query '
                  'and the span from the message; answer "- none" when no query has an answer.')
    msgs = [{"role": "system", "content": system}]
    asked, fixed = set(labels), fixed_labels
    first_stage = task == "ner" or fixed is None or any(lab in fixed for lab in asked)

    def turn(ws: Sequence[str], queries: Sequence[str]) -> str:
        return " ".join(ws) if task == "ner" else " ".join(ws) + "\nQueries: " + ("; ".join(map(plain_quotes, queries)) or "-")

    def n_words(ws: Sequence[str], queries: Sequence[str]) -> int:
        return len(ws) + (0 if task == "ner" else sum(len(q.split()) for q in queries))

    budget = max_words - n_words(words, labels)
    for dw, spans in demos:
        shown = [(lab, txt) for lab, txt in spans if (lab in asked if first_stage else lab not in fixed)]
        queries = list(labels) if first_stage else list(dict.fromkeys(lab for lab, _ in shown))
        cost = n_words(dw, queries)
        if budget - cost < 0:
            break
        budget -= cost
        msgs.append({"role": "user", "content": turn(dw, queries)})
        msgs.append({"role": "assistant", "content": "\n".join(f"- {plain_quotes(lab)}: {txt}" for lab, txt in shown) or "- none"})
    msgs.append({"role": "user", "content": turn(words, labels)})
    return msgs


def fixed_labels(instances: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """Labels queried on more than one support sentence: a task's first-stage types (entity types, polarities,
    ``Event trigger``), as opposed to second-stage queries that name one sentence's anchor.

    >>> fixed_labels([{"words": ["Person", ":", "Tom"], "ner": "OOB"}, {"words": ["Person", ":", "Ann"], "ner": "OOO"},
    ...               {"words": ["Tom", "runs", ":", "Tom"], "ner": "OOOO"}])
    frozenset({'Person'})
    """
    from metaie_utils.stages.fewshot.support import instance_sentence

    seen: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for inst in instances:
        label, words = instance_sentence(inst)
        seen[label].add(tuple(words))
    return frozenset(lab for lab, sents in seen.items() if len(sents) > 1)


def first_stage_labels(dataset: Any, instances: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """The labels ``dataset`` asks of every sentence (its ``first_stage_labels()``), or, for a dataset that does
    not say, the guess :func:`fixed_labels` makes from the support instances. The guess fails where an anchored
    query repeats across support sentences: QA-SRL's questions ("Where did someone go?") and UP-EWT's
    ``A0 Argument for Predicate "is"`` made second-stage prompts look like first-stage ones, whose
    demonstrations then answered "- none" to every query (QA-SRL: 0 spans predicted, F1 0.0)."""
    own = getattr(dataset, "first_stage_labels", None)
    labels = own() if callable(own) else None
    return frozenset(labels) if labels is not None else fixed_labels(instances)


def parse_icl_response(response: str | None, words: Sequence[str], labels: Sequence[str]) -> list[Span]:
    """``"- Person: Tom Cruise"`` lines -> spans over ``words`` (case-insensitive type and span match; a type
    matches its query with any quotes: the teacher copies ``Term for Positive Opinion "good"`` back as
    ``"good ''`` or ````good''``).

    Lines whose type is not one of ``labels`` or whose span is not a word sequence of the sentence are
    dropped; every occurrence of a matched span is returned (as the authors' converter does).

    >>> [(s.label, s.word_start, s.word_end) for s in parse_icl_response("- person: tom\\n- City: Paris", ["Tom", "in", "Paris"], ["Person"])]
    [('Person', 0, 1)]
    """
    if not response:
        return []
    by_lower = {_label_key(lab): lab for lab in labels}
    low = [w.lower() for w in words]
    starts, pos = [], 0
    for w in words:
        starts.append(pos)
        pos += len(w) + 1
    out: list[Span] = []
    seen = set()
    for typ, span in ICL_LINE.findall(response):
        lab = by_lower.get(_label_key(typ))
        if lab is None:
            continue
        from metaie_utils.core.text import word_tokenize

        toks = [t.lower() for t in word_tokenize(span.strip().rstrip("."))]
        n = len(toks)
        if not n:
            continue
        for i in range(len(low) - n + 1):
            if low[i:i + n] == toks and (lab, i, i + n) not in seen:
                seen.add((lab, i, i + n))
                out.append(Span(lab, " ".join(words[i:i + n]), starts[i], starts[i + n - 1] + len(words[i + n - 1]),
                                   1.0, i, i + n))
    return out


@dataclass
class IclExtractor:
    """``.extract(texts, labels)`` by prompting an LLM with K-shot demonstrations (the ``llm-icl`` baseline).

    ``complete(chats) -> list[str | None]`` answers chat message lists (the teacher's client, greedy).
    """

    complete: Any
    demos: list = field(default_factory=list)
    closer: Any = None
    task: str = "ner"
    fixed: frozenset | None = None  # the first-stage labels (None: every query is one)

    def extract(self, texts: Sequence[str | Sequence[str]], labels: Sequence[str] | Sequence[Sequence[str]]) -> list[list[Span]]:
        from metaie_utils.core.text import word_tokenize

        words = [list(t) if not isinstance(t, str) else word_tokenize(t) for t in texts]
        per_text = labels if labels and not isinstance(labels[0], str) else [list(labels)] * len(words)
        chats = [icl_messages(w, labs, self.demos, task=self.task, fixed_labels=self.fixed) for w, labs in zip(words, per_text)]
        responses = self.complete(chats)
        return [parse_icl_response(r, w, labs) for r, w, labs in zip(responses, words, per_text)]

    def close(self) -> None:
        if self.closer is not None:
            self.closer()
            self.closer = None


def icl_cache_path(cfg: Any) -> Path:
    """The llm-icl teacher's response cache (shared by every dataset and seed of ``cfg.out_root``)."""
    return resolve(cfg.out_root) / "baselines" / "icl-cache.sqlite"


_SEEDED: set[tuple[str, str, float]] = set()


def seed_icl_cache(cfg: Any, answers: str | Path | None = None) -> str:
    """Put the shipped llm-icl answers of ``cfg.teacher`` (:func:`metaie_utils.llm.shipped.answers_path`) into
    the llm-icl cache, once per process and file version -> a note for the log."""
    import logging

    from metaie_utils.llm import shipped

    cache = icl_cache_path(cfg)
    path = Path(answers) if answers else shipped.answers_path(cfg.teacher)
    tag = (str(cache), str(path), path.stat().st_mtime if path.is_file() else 0.0)
    if tag in _SEEDED:
        return ""
    _SEEDED.add(tag)
    _, note = shipped.import_answers(cache, cfg.teacher, path)
    logging.getLogger(__name__).info("llm-icl: %s", note)
    return note


class LazyTeacher:
    """A teacher client (``complete_many``, like :class:`metaie_utils.llm.LLMClient`) that answers from its
    response cache alone while it can, and starts the teacher (a local llama.cpp server, or the API client)
    at the first request the cache lacks. So shipped or earlier answers replay with no server, no GGUF file
    and no API key; ``close()`` stops whatever was started."""

    def __init__(self, teacher: str, base_url: str = "", api_key_env: str = "OPENAI_API_KEY",
                 cache_path: Path | None = None, **client_kw: Any):
        from metaie_utils.llm import client as llm
        from metaie_utils.llm.shipped import teacher_identity

        self.teacher, self.base_url, self.api_key_env, self.client_kw = teacher, base_url, api_key_env, client_kw
        self.cache_path = cache_path
        self.model = teacher_identity(teacher)["model"]  # the name the started client's keys use
        self.cache = llm.ResponseCache(cache_path) if cache_path else None
        self.client: Any = None
        self.replayed = 0
        self._stack = contextlib.ExitStack()

    def complete_many(self, requests: list[dict], progress: bool = False) -> list[Any]:
        from metaie_utils.llm import client as llm

        if self.client is None and self.cache is not None:
            hits = [self.cache.get(llm.request_key(self.model, r)) for r in requests]
            if all(h is not None for h in hits):
                self.replayed += len(hits)
                return [llm.Completion(cached=True, **h) for h in hits]
        if self.client is None:
            self.client = self._stack.enter_context(
                teacher_client(self.teacher, self.base_url, self.api_key_env, self.cache_path, **self.client_kw))
        return self.client.complete_many(requests, progress=progress)

    def close(self) -> None:
        self._stack.close()
        self.client = None
        if self.cache is not None:
            self.cache.close()
            self.cache = None


def icl_extractor(cfg: Any, support: list, dataset: Any) -> IclExtractor:
    """The ``llm-icl`` extractor for ``dataset``: the support set (examples or instances) as demonstrations,
    the teacher ``cfg.teacher`` (a local llama.cpp server for ``local:<alias>``, else a model at ``cfg.base_url``
    or the OpenAI API), started only when its cache (seeded from the shipped answers) lacks an answer."""
    instances = support if support and isinstance(support[0], Mapping) and "ner" in support[0] else \
        [inst for ex in support for inst in dataset.instances(ex)]
    cache = icl_cache_path(cfg)
    cache.parent.mkdir(parents=True, exist_ok=True)
    seed_icl_cache(cfg)
    client = LazyTeacher(cfg.teacher, cfg.base_url, cfg.api_key_env, cache, n_ctx=ICL_N_CTX)

    task = getattr(dataset, "task", "ner") or "ner"

    def complete(chats: list[list[dict]]) -> list[str | None]:
        return llm_complete(client, chats, prompt_version=ICL_PROMPT_VERSIONS["ner" if task == "ner" else "other"])

    return IclExtractor(complete=complete, demos=demonstrations(instances), closer=client.close, task=task,
                        fixed=first_stage_labels(dataset, instances))


@contextlib.contextmanager
def teacher_client(teacher: str, base_url: str = "", api_key_env: str = "OPENAI_API_KEY", cache_path: Path | None = None,
                   concurrency: int = 1, n_ctx: int = 2048, log_dir: Path | None = None) -> Iterator[Any]:
    """An :class:`metaie_utils.llm.LLMClient` for ``teacher`` (stage 02's meaning): ``"local:<alias>"`` starts
    a local llama.cpp server for the duration of the ``with`` block; any other name is a model at
    ``base_url`` ("" = the OpenAI API)."""
    from metaie_utils.llm.client import LLMClient

    if teacher.startswith("local:"):
        from metaie_utils.llm.teacher import local_teacher

        with local_teacher(teacher.split(":", 1)[1], parallel=concurrency, n_ctx=n_ctx, log_dir=log_dir) as t:
            yield LLMClient(t.base_url, t.model, concurrency=concurrency, cache_path=cache_path)
    else:
        yield LLMClient(base_url or None, teacher, api_key_env=api_key_env, concurrency=concurrency, cache_path=cache_path)


def llm_complete(client: Any, chats: list[list[dict]], max_tokens: int = 128, prompt_version: str = "icl-ner-v1") -> list[str | None]:
    """Greedy answers to chat message lists through an :class:`metaie_utils.llm.LLMClient` (None on failure)."""
    import logging

    reqs = [{"messages": m, "temperature": 0.0, "max_tokens": max_tokens, "sample_index": 0, "prompt_version": prompt_version}
            for m in chats]
    done = client.complete_many(reqs, progress=len(reqs) > 1)  # a stage's prompts can take an hour on one CPU core
    cut = [c for c in done if getattr(c, "finish_reason", None) == "length" and (getattr(c, "completion_tokens", 0) or 0) < max_tokens]
    if cut:  # the server stopped before max_tokens: the prompt filled its context window
        logging.getLogger(__name__).warning(
            "llm-icl: %d of %d answers were cut off by the teacher's context window (first: %d prompt tokens, %d answer "
            "tokens); give the teacher a longer context or lower ICL_MAX_PROMPT_WORDS", len(cut), len(done),
            getattr(cut[0], "prompt_tokens", 0) or 0, getattr(cut[0], "completion_tokens", 0) or 0)
    return [c.text for c in done]
