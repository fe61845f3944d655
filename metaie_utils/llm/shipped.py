"""The distillation set shipped with the package: a teacher's answers, replayed instead of re-asked.

The authors released their distillation data so that nobody pays for the teacher twice; this module
does the same for the local teacher of the CPU reproduction. A shipped set is one gzip'd JSON-lines
file under ``metaie_utils/data/distillation/``: a first line ``{"provenance": {...}}`` (teacher alias,
model name, GGUF file and its sha256, prompt version and its messages, sampling parameters, corpus and
sampler, dates, parsable share), then one row per (sentence, sample)::

    {"id", "text", "sample_index", "response", "finish_reason", "prompt_tokens", "completion_tokens"}

Rows are in the sampler's order (stage 01's sample is prefix-stable), so the first 200 rows are make
run's 200 sentences and the first 1,000 cpu.yaml's. Stage 02 replays the set at zero cost (no server,
no model download) when the requested teacher file, prompt and sampling match the provenance and every
requested sentence is in it (:func:`replay`); otherwise it says why and asks the teacher.

Build or extend it with ``scripts/distill_shipped.sh`` (resumable, exports as it goes); ``python -m
metaie_utils shipped info`` prints what is shipped.

An *answer set* (``kind: answers-v1``, :func:`export_answers`) ships a teacher's cached answers to any prompts,
keyed by the client's request hash: the llm-icl baseline's, whose prompts hold each seed's demonstrations.
``icl-<model>-answers.jsonl.gz`` is put into the llm-icl cache before stage 05 asks (:func:`import_answers`),
and the teacher starts only for what it lacks; ``scripts/cpu_grid.py`` exports it as the grid runs.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from metaie_utils.core.errors import UserError

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "data" / "distillation"  # metaie_utils/data/distillation


#: The default shipped set (the local Qwen2.5-0.5B teacher on the offline news corpus).
DEFAULT_NAME = "news-qwen2.5-0.5b-metaie-1shot-v1.jsonl.gz"


FORMAT_VERSION = 1


#: Sampling keys that must equal the request's for a replay.
SAMPLING_KEYS = ("temperature", "max_tokens", "seed")


@dataclass
class ShippedSet:
    path: Path
    provenance: dict[str, Any]
    rows: list[dict]

    @property
    def n_sentences(self) -> int:
        return len({r["id"] for r in self.rows})


def default_path() -> Path:
    return SHIPPED_DIR / DEFAULT_NAME


def path_for(prompt_version: str) -> Path:
    """The shipped set of ``prompt_version`` (the local Qwen2.5-0.5B teacher on the news corpus): the default set
    for ``metaie-1shot-v1``, the NER-distillation baseline's for ``ner-icl-v1`` (``scripts/distill_shipped.sh``
    with ``PROMPT=...`` builds either). It may not exist."""
    return SHIPPED_DIR / f"news-qwen2.5-0.5b-{prompt_version}.jsonl.gz"


def load(path: str | Path | None = None) -> ShippedSet:
    """Read a shipped set; a file that is not one is a :class:`UserError` naming it."""
    p = Path(path) if path else default_path()
    if not p.is_file():
        raise UserError(f"Shipped distillation set {p} does not exist (see scripts/distill_shipped.sh to build one).")
    try:
        with gzip.open(p, "rt", encoding="utf-8") as f:
            first = json.loads(f.readline())
            rows = [json.loads(line) for line in f if line.strip()]
    except (OSError, json.JSONDecodeError, EOFError) as e:
        raise UserError(f"{p} is not a shipped distillation set (gzip'd JSON lines): {e}") from None
    if not isinstance(first, dict) or "provenance" not in first:
        raise UserError(f"{p}: the first line must be {{\"provenance\": ...}}; got {str(first)[:120]}")
    return ShippedSet(p, first["provenance"], rows)


def write(path: str | Path, provenance: dict, rows: Iterable[dict]) -> Path:
    """Write deterministically (gzip mtime 0, sorted keys): re-exporting unchanged answers gives the same bytes."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write((json.dumps({"provenance": provenance}, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"))
        for r in rows:
            gz.write((json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"))
    from metaie_utils.core.io import atomic_write_bytes

    return atomic_write_bytes(p, buf.getvalue())


def teacher_identity(teacher: str) -> dict[str, Any]:
    """What identifies a teacher without starting it: for ``local:<alias>`` the pinned GGUF file and sha256
    (from :mod:`metaie_utils.assets`, so it needs no download); for a path its sha256; else the model name."""
    from metaie_utils.core.assets import ASSETS
    from metaie_utils.llm.teacher import parse_teacher

    kind, name = parse_teacher(teacher)
    if kind != "local":
        return {"teacher": teacher, "model": teacher, "gguf": None, "gguf_sha256": None}
    if name in ASSETS:
        spec = ASSETS[name]
        return {"teacher": teacher, "model": name, "gguf": spec.target, "gguf_sha256": spec.sha256.get("")}
    from metaie_utils.core.io import sha256_file

    p = Path(name).expanduser()
    return {"teacher": teacher, "model": p.stem, "gguf": p.name, "gguf_sha256": sha256_file(p) if p.is_file() else None}


def mismatch(prov: dict, teacher: str, prompt_version: str, temperature: float, max_tokens: int, seed: int | None,
             n_samples: int) -> str | None:
    """Why a shipped set cannot stand in for this request (None: it can)."""
    from metaie_utils.llm.client import PROMPTS

    ident = teacher_identity(teacher)
    if ident["gguf_sha256"] is None or ident["gguf_sha256"] != prov.get("gguf_sha256"):
        return (f"teacher {teacher!r} (sha256 {str(ident['gguf_sha256'])[:12]}) is not the shipped set's "
                f"{prov.get('teacher')!r} (sha256 {str(prov.get('gguf_sha256'))[:12]})")
    if prompt_version != prov.get("prompt_version"):
        return f"prompt_version {prompt_version!r} != shipped {prov.get('prompt_version')!r}"
    if [list(m) for m in PROMPTS.get(prompt_version, [])] != prov.get("prompt_messages"):
        return f"the messages of prompt {prompt_version!r} changed since the set was shipped"
    req = {"temperature": float(temperature), "max_tokens": int(max_tokens), "seed": seed}
    shipped = {k: prov.get("sampling", {}).get(k) for k in SAMPLING_KEYS}
    if req != {**shipped, "temperature": float(shipped["temperature"] or 0.0)}:
        diff = ", ".join(f"{k} {req[k]!r} != {shipped[k]!r}" for k in SAMPLING_KEYS if req[k] != shipped[k])
        return f"sampling differs ({diff})"
    if n_samples > int(prov.get("sampling", {}).get("n_samples", 1)):
        return f"n_samples {n_samples} > the shipped {prov['sampling'].get('n_samples', 1)}"
    return None


def replay(sentences: Sequence[dict], teacher: str, prompt_version: str, temperature: float, max_tokens: int,
           seed: int | None, n_samples: int = 1, path: str | Path | None = None) -> tuple[list[dict] | None, str]:
    """Stage 02's responses rows from the shipped set, or ``(None, reason)`` when it cannot stand in.

    Every requested sentence must be in the set with the same id and text; rows come back in the
    request's order, in stage 02's format (``model`` is the shipped teacher's, ``error`` None).
    """
    p = Path(path) if path else default_path()
    if not p.is_file():
        return None, f"no shipped set at {p}"
    s = load(p)
    why = mismatch(s.provenance, teacher, prompt_version, temperature, max_tokens, seed, n_samples)
    if why:
        return None, why
    by_key = {(r["id"], int(r.get("sample_index", 0))): r for r in s.rows}
    out, missing = [], 0
    for sent in sentences:
        for k in range(n_samples):
            r = by_key.get((sent["id"], k))
            if r is None or r["text"] != sent["text"]:
                missing += 1
                continue
            out.append({"id": sent["id"], "text": sent["text"], "response": r["response"],
                        "model": s.provenance["model"], "prompt_version": prompt_version, "sample_index": k,
                        "finish_reason": r.get("finish_reason"), "error": None,
                        "prompt_tokens": r.get("prompt_tokens", 0), "completion_tokens": r.get("completion_tokens", 0)})
    if missing:
        return None, (f"{missing} of {len(sentences) * n_samples} requested (sentence, sample) pairs are not in the "
                      f"shipped set ({s.n_sentences} sentences)")
    return out, f"replayed {len(out)} responses from {p.name} ({s.provenance.get('teacher')}, shipped {s.provenance.get('updated')})"


def export(sentences_path: str | Path, cache_path: str | Path, teacher: str, prompt_version: str = "metaie-1shot-v1",
           temperature: float = 1.0, max_tokens: int = 96, seed: int | None = 0, n_samples: int = 1,
           out: str | Path | None = None, sampler: dict | None = None, server_log: str | Path | None = None) -> Path:
    """Write the shipped set from a stage-02 cache: the longest prefix of ``sentences`` whose every sample
    is cached (a prefix, so the set is always "the first n sentences of the sampler")."""
    import sqlite3

    from metaie_utils.core.params import load_params
    from metaie_utils.llm import client as llm

    from metaie_utils.core.io import read_jsonl

    sentences = read_jsonl(sentences_path)
    ident = teacher_identity(teacher)
    conn = sqlite3.connect(f"file:{Path(cache_path)}?mode=ro", uri=True)
    rows, created = [], []
    try:
        for sent in sentences:
            msgs = llm.build_messages(prompt_version, sent["text"])
            got = []
            for k in range(n_samples):
                key = llm.cache_key(ident["model"], prompt_version, msgs, temperature, max_tokens, k,
                                    None if seed is None else int(seed) + k)
                hit = conn.execute("SELECT text, finish_reason, prompt_tokens, completion_tokens, created FROM responses "
                                   "WHERE key=?", (key,)).fetchone()
                if hit is None:
                    break
                got.append({"id": sent["id"], "text": sent["text"], "sample_index": k, "response": hit[0],
                            "finish_reason": hit[1], "prompt_tokens": hit[2] or 0, "completion_tokens": hit[3] or 0})
                created.append(hit[4])
            if len(got) < n_samples:
                break
            rows.extend(got)
    finally:
        conn.close()
    stats = llm.response_stats([{**r, "error": None} for r in rows])
    d = load_params()  # params/defaults.yaml: the sampler stage 01 used
    versions = {}
    try:
        from importlib.metadata import version

        versions["llama_cpp_python"] = version("llama_cpp_python")
    except Exception:
        pass
    prov = {
        "format_version": FORMAT_VERSION,
        **ident,
        "prompt_version": prompt_version,
        "prompt_messages": [list(m) for m in llm.PROMPTS[prompt_version]],
        "sampling": {"temperature": float(temperature), "max_tokens": int(max_tokens), "seed": seed,
                     "n_samples": int(n_samples)},
        "corpus": sampler or {k: d[k] for k in ("corpus", "sentence_mode", "min_words", "max_words", "dedup", "seed")} | {
                              "sampler": "stages.sample.sample_rows (seeded bottom-k, prefix-stable)"},
        "sentences_requested": len(sentences),
        "sentences": len(rows) // max(1, n_samples),
        "first_id": rows[0]["id"] if rows else None,
        "last_id": rows[-1]["id"] if rows else None,
        "parsable_fraction": stats["parsable_fraction"],
        "label_lines": stats["label_lines"],
        "finish_length": stats["finish_length"],
        "started": _iso(min(created)) if created else None,
        "updated": _iso(max(created)) if created else None,
        "versions": versions,
        "made_by": "scripts/distill_shipped.sh (python -m metaie_utils distill on one core, then shipped export)",
    }
    if server_log and Path(server_log).is_file():
        prov["server_log_head"] = Path(server_log).read_text(errors="replace").splitlines()[:3]
    return write(out or default_path(), prov, rows)


def restore(cache_path: str | Path, teacher: str = "local:qwen2.5-0.5b", path: str | Path | None = None) -> int:
    """Write the shipped set's answers into a stage-02 cache, under the keys the teacher's client would use,
    so that extending the set on a new machine asks only the sentences it lacks. Refuses when ``teacher``
    is not the set's teacher file (mixing teachers in one set would be silent). Returns the rows written
    (rows already cached are left as they are)."""
    import time

    from metaie_utils.llm import client as llm

    s = load(path)
    prov = s.provenance
    samp = prov.get("sampling", {})
    why = mismatch(prov, teacher, prov.get("prompt_version"), samp.get("temperature", 1.0), samp.get("max_tokens", 96),
                   samp.get("seed"), int(samp.get("n_samples", 1)))
    if why:
        raise UserError(f"cannot restore {s.path.name} into a cache for {teacher!r}: {why}")

    t0, t1 = _ts(prov.get("started")) or time.time(), _ts(prov.get("updated")) or time.time()
    seed, pv = samp.get("seed"), prov["prompt_version"]
    cache = llm.ResponseCache(cache_path)
    before = len(cache)
    try:
        n = max(1, len(s.rows) - 1)
        for i, r in enumerate(s.rows):
            k = int(r.get("sample_index", 0))
            key = llm.cache_key(prov["model"], pv, llm.build_messages(pv, r["text"]), float(samp.get("temperature", 1.0)),
                                int(samp.get("max_tokens", 96)), k, None if seed is None else int(seed) + k)
            c = llm.Completion(text=r["response"], finish_reason=r.get("finish_reason"),
                               prompt_tokens=int(r.get("prompt_tokens", 0)), completion_tokens=int(r.get("completion_tokens", 0)))
            # the original finish times are not shipped; spread them over [started, updated] so a re-export keeps both
            cache.put(key, prov["model"], pv, k, c, created=t0 + (t1 - t0) * i / n)
        return len(cache) - before
    finally:
        cache.close()


def seed_cache(cache_path: str | Path, teacher: str, prompt_version: str, temperature: float, max_tokens: int,
               seed: int | None, n_samples: int = 1, path: str | Path | None = None) -> tuple[int, str]:
    """Put a (possibly partial) shipped set into a teacher cache when it answers THIS request (teacher file,
    prompt, sampling), so that the teacher is asked only the sentences the set lacks -> ``(rows written, note)``.
    A set that does not match, or no set, writes nothing and says why."""
    p = Path(path) if path else default_path()
    if not p.is_file():
        return 0, f"no shipped set at {p.name}"
    s = load(p)
    why = mismatch(s.provenance, teacher, prompt_version, temperature, max_tokens, seed, n_samples)
    if why:
        return 0, f"{p.name} not used: {why}"
    n = restore(cache_path, teacher, p)
    return n, f"{n} answers of {p.name} ({s.n_sentences} sentences) put into the cache"


# -- answer sets: a teacher's cached answers to any prompts (the llm-icl baseline's), keyed by request ------------

#: The teacher-in-context (llm-icl) answers of the CPU grid, shipped like the distillation sets.
ANSWERS_FORMAT = "answers-v1"


def answers_path(teacher: str = "local:qwen2.5-0.5b", kind: str = "icl") -> Path:
    """The shipped answer set of ``kind`` for ``teacher`` (it may not exist):
    ``metaie_utils/data/distillation/<kind>-<model>-answers.jsonl.gz``."""
    return SHIPPED_DIR / f"{kind}-{teacher_identity(teacher)['model']}-answers.jsonl.gz"


def export_answers(cache_path: str | Path, out: str | Path, teacher: str, made_by: str = "") -> Path:
    """A response cache (:class:`metaie_utils.llm.client.ResponseCache`) -> an answer set: every cached answer of
    ``teacher``'s model, under the request keys the client computed (the key hashes the model, prompt version,
    messages and sampling, so a prompt that changes later simply misses). Rows already in ``out`` are kept
    (the file only grows); the output is deterministic (sorted by key, gzip mtime 0)."""
    import sqlite3

    ident = teacher_identity(teacher)
    rows: dict[str, dict] = {}
    created: list[float] = []
    old = load(out) if Path(out).is_file() else None
    if old is not None:
        why = _answers_mismatch(old.provenance, ident)
        if why:
            raise UserError(f"cannot add {teacher!r}'s answers to {Path(out).name}: {why}")
        rows.update({r["key"]: r for r in old.rows})
        created += [t for t in (_ts(old.provenance.get("started")), _ts(old.provenance.get("updated"))) if t]
    conn = sqlite3.connect(f"file:{Path(cache_path)}?mode=ro", uri=True)
    try:
        for key, pv, k, text, fin, pt, ct, c in conn.execute(
                "SELECT key, prompt_version, sample_index, text, finish_reason, prompt_tokens, completion_tokens, "
                "created FROM responses WHERE model=?", (ident["model"],)):
            if text is None:
                continue
            rows.setdefault(key, {"key": key, "prompt_version": pv, "sample_index": int(k or 0), "response": text,
                                  "finish_reason": fin, "prompt_tokens": int(pt or 0), "completion_tokens": int(ct or 0)})
            created.append(float(c or 0) or 0.0)
    finally:
        conn.close()
    created = [t for t in created if t]
    by_prompt: dict[str, int] = {}
    for r in rows.values():
        by_prompt[r["prompt_version"]] = by_prompt.get(r["prompt_version"], 0) + 1
    prov = {"format_version": FORMAT_VERSION, "kind": ANSWERS_FORMAT, **ident, "answers": len(rows),
            "prompt_versions": dict(sorted(by_prompt.items())),
            "started": _iso(min(created)) if created else None, "updated": _iso(max(created)) if created else None,
            "made_by": made_by or (old.provenance.get("made_by", "") if old else "")}
    if old is not None and old.provenance.get("retired"):  # prompt versions dropped from the set, and why
        prov["retired"] = old.provenance["retired"]
    return write(out, prov, [rows[k] for k in sorted(rows)])


def _answers_mismatch(prov: dict, ident: dict) -> str | None:
    if prov.get("kind") != ANSWERS_FORMAT:
        return f"it is not an answer set (kind {prov.get('kind')!r}, not {ANSWERS_FORMAT!r})"
    if ident["gguf_sha256"] != prov.get("gguf_sha256") or ident["model"] != prov.get("model"):
        return (f"teacher {ident['teacher']!r} (model {ident['model']!r}, sha256 {str(ident['gguf_sha256'])[:12]}) is not "
                f"the set's {prov.get('teacher')!r} (model {prov.get('model')!r}, sha256 {str(prov.get('gguf_sha256'))[:12]})")
    return None


def import_answers(cache_path: str | Path, teacher: str, path: str | Path | None = None) -> tuple[int, str]:
    """Put a shipped answer set into a response cache when it is ``teacher``'s (same GGUF file, or the same API
    model name) -> ``(answers added, note)``; answers already cached are left alone. No set, or another
    teacher's, adds nothing and says why."""
    from metaie_utils.llm import client as llm

    p = Path(path) if path else answers_path(teacher)
    if not p.is_file():
        return 0, f"no shipped answers at {p.name}"
    s = load(p)
    why = _answers_mismatch(s.provenance, teacher_identity(teacher))
    if why:
        return 0, f"{p.name} not used: {why}"
    t0 = _ts(s.provenance.get("started")) or 0.0
    cache = llm.ResponseCache(cache_path)
    before = len(cache)
    try:
        for r in s.rows:
            c = llm.Completion(text=r["response"], finish_reason=r.get("finish_reason"),
                               prompt_tokens=int(r.get("prompt_tokens", 0)), completion_tokens=int(r.get("completion_tokens", 0)))
            cache.put(r["key"], s.provenance["model"], r.get("prompt_version", ""), int(r.get("sample_index", 0)), c,
                      created=t0 or None)
        added = len(cache) - before
    finally:
        cache.close()
    return added, f"{added} of the {len(s.rows)} answers of {p.name} put into the cache"


def _ts(iso: str | None) -> float | None:
    if not iso:
        return None
    return _dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc).timestamp()


def _iso(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def info(path: str | Path | None = None) -> dict[str, Any]:
    s = load(path)
    p = s.provenance
    if p.get("kind") == ANSWERS_FORMAT:
        return {"path": str(s.path), "kind": ANSWERS_FORMAT, "answers": len(s.rows), "teacher": p.get("teacher"),
                "gguf_sha256": p.get("gguf_sha256"), "prompt_versions": p.get("prompt_versions"),
                "started": p.get("started"), "updated": p.get("updated"), "bytes": s.path.stat().st_size}
    return {"path": str(s.path), "sentences": s.n_sentences, "responses": len(s.rows), "teacher": p.get("teacher"),
            "gguf_sha256": p.get("gguf_sha256"), "prompt_version": p.get("prompt_version"), "sampling": p.get("sampling"),
            "parsable_fraction": p.get("parsable_fraction"), "started": p.get("started"), "updated": p.get("updated"),
            "bytes": s.path.stat().st_size}


def _cmd(args) -> int:
    if args.action == "restore":
        n = restore(args.cache, args.teacher, args.output)
        print(f"restored {n} responses from {Path(args.output or default_path()).name} into {args.cache}")
        return 0
    if args.action in ("export-answers", "import-answers"):
        if not args.cache:
            raise UserError(f"shipped {args.action} needs --cache (the llm-icl cache: <out_root>/baselines/icl-cache.sqlite).")
        out = args.output or answers_path(args.teacher)
        if args.action == "export-answers":
            print(json.dumps(info(export_answers(args.cache, out, args.teacher))))
        else:
            print(import_answers(args.cache, args.teacher, out)[1])
        return 0
    if args.action == "export":
        p = export(args.sentences, args.cache, args.teacher, args.prompt_version, args.temperature, args.max_tokens,
                   args.seed, args.n_samples, args.output, server_log=args.log)
        print(json.dumps(info(p)))
    else:
        i = info(args.output)
        print(f"{i['sentences']} sentences, {i['parsable_fraction']:.0%} parsable" if args.brief else json.dumps(i, indent=2))
    return 0


def register_cli(sub) -> None:
    p = sub.add_parser("shipped", help="the shipped distillation set: info, export it from a stage-02 cache, "
                                          "or restore it into one (to extend it on a new machine)")
    p.add_argument("action", choices=["info", "export", "restore", "export-answers", "import-answers"],
                   help="export-answers / import-answers: the llm-icl teacher's answers (answers_path) from / into "
                        "a response cache (--cache)")
    p.add_argument("--output", default=None, help=f"the set's file (default {default_path()})")
    p.add_argument("--sentences", help="export: 01's sentences.jsonl (in sampler order)")
    p.add_argument("--cache", help="export/restore: 02's cache.sqlite")
    p.add_argument("--teacher", default="local:qwen2.5-0.5b")
    p.add_argument("--prompt-version", default="metaie-1shot-v1")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--max-tokens", type=int, default=96)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-samples", type=int, default=1)
    p.add_argument("--log", default=None, help="export: the teacher server's log (its first lines go into provenance)")
    p.add_argument("--brief", action="store_true")
    p.set_defaults(func=_cmd)
