"""Stage 02 (notebook ``02_distill_llm``): the teacher's "- <label>: <span>" notes on every sentence.

:func:`run_distill` is the stage: it replays the distillation set shipped with the package when the
requested teacher file, prompt and sampling match it and it holds every requested sentence (zero cost:
no server, no model download; ``distill_set: off`` turns it off), and otherwise asks the teacher through
:mod:`metaie_utils.llm.client` (a local llama.cpp server from :mod:`metaie_utils.llm.teacher`, or any
OpenAI-compatible endpoint), with the crash-safe cache in the run directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from metaie_utils.core.errors import UserError
from metaie_utils.core.io import write_jsonl
from metaie_utils.core.params import StageConfig
from metaie_utils.llm.client import (
    PROMPTS,
    LLMClient,
    completions_table,
    distill,
    load_sentences,
    response_stats,
)


class DistillConfig(StageConfig):
    """Parameters of ``notebooks/02_distill_llm``."""

    stage: ClassVar[str] = "02_distill_llm"
    metrics_keys: ClassVar[tuple[str, ...]] = ("sentences", "model", "source", "replayed", "responses", "answered",
                                               "parsable_fraction", "elapsed_s")
    upstream: ClassVar[dict[str, str]] = {"input_dir": "01_sample_corpus"}

    input_dir: str = "tests/fixtures/distill/sentences.jsonl"  # 01's run directory or a sentences.jsonl
    limit: int = 0  # 0 = every sentence; N = the first N sentences
    teacher: str = "local:qwen2.5-0.5b"  # local:<alias|path.gguf> starts a llama.cpp server; else the model name at base_url
    base_url: str = ""  # remote teachers only: "" = the OpenAI API; e.g. http://localhost:8000/v1 (vLLM, Ollama)
    api_key_env: str = "OPENAI_API_KEY"  # environment variable holding the key (remote teachers)
    prompt_version: str = "metaie-1shot-v1"  # metaie-v1 (paper) | metaie-1shot-v1 (small teachers) | ner-v1
    n_samples: int = 1  # responses per sentence (sample_index 0..n-1)
    temperature: float = 1.0  # the paper: 1.0
    max_tokens: int = 96  # cap on response tokens
    concurrency: int = 1  # requests in flight
    teacher_parallel: int = 1  # local server slots (llama.cpp --parallel where supported)
    n_ctx: int = 2048  # local server context size (tokens)
    max_retries: int = 6  # retries per request on 429/5xx/timeouts/dropped connections
    request_timeout: float = 600.0  # seconds per request (a timed-out request is re-sent: keep it above the slowest answer)
    price_per_1k_input: float = 0.0  # USD per 1k prompt tokens (0 for local teachers)
    price_per_1k_output: float = 0.0  # USD per 1k completion tokens
    distill_set: str = "auto"  # auto (replay the shipped set when teacher, prompt and sampling match) | off | path to a .jsonl.gz




def _cmd_distill(args) -> int:
    from metaie_utils.llm.teacher import teacher_endpoint

    sentences = load_sentences(args.input, args.limit)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    prices = {"price_per_1k_input": args.price_per_1k_input, "price_per_1k_output": args.price_per_1k_output}

    def go(base_url: str | None, model: str) -> int:
        client = LLMClient(base_url, model, api_key_env=args.api_key_env, concurrency=args.concurrency,
                           max_retries=args.max_retries, timeout=args.timeout, cache_path=out / "cache.sqlite",
                           prices=prices, backoff_base=args.backoff_base)
        rows = distill(sentences, client, args.prompt_version, args.n_samples, args.temperature, args.max_tokens,
                       seed=args.seed, progress=not args.quiet)
        write_jsonl(out / "responses.jsonl", rows)
        summary = {**client.summary(), **response_stats(rows)}
        (out / "distill_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(json.dumps(summary))
        return 0

    with teacher_endpoint(args.model, args.base_url, parallel=args.concurrency, log_dir=out) as t:
        return go(t.base_url, t.model)


def register_cli(sub) -> None:
    p = sub.add_parser("distill", help="ask a teacher LLM for important information on each sentence (stage 02)")
    d = DistillConfig()
    p.add_argument("--input", required=True, help="sentences.jsonl or 01's run directory")
    p.add_argument("--output", required=True, help="output directory (responses.jsonl, cache.sqlite)")
    p.add_argument("--base-url", default="", help="OpenAI-compatible base URL ending in /v1; empty = OpenAI API")
    p.add_argument("--model", required=True, help="model name at the endpoint, or local:<alias|path.gguf>")
    p.add_argument("--api-key-env", default=d.api_key_env)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--prompt-version", default="metaie-v1", choices=sorted(PROMPTS))
    p.add_argument("--n-samples", type=int, default=1)
    p.add_argument("--temperature", type=float, default=d.temperature)
    p.add_argument("--max-tokens", type=int, default=d.max_tokens)
    p.add_argument("--max-retries", type=int, default=d.max_retries)
    p.add_argument("--timeout", type=float, default=d.request_timeout)
    p.add_argument("--backoff-base", type=float, default=0.5, help="seconds; first retry waits up to this")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--price-per-1k-input", type=float, default=0.0)
    p.add_argument("--price-per-1k-output", type=float, default=0.0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_distill)


def mean_completion_tokens(stats: dict) -> float:
    """Completion tokens per answer whose tokens are counted: the ones asked now plus the ones replayed from a
    shipped set (cache hits count none).

    >>> mean_completion_tokens({"completion_tokens": 99, "completed": 0, "replayed": 3})
    33.0
    """
    n = int(stats.get("completed", 0)) + int(stats.get("replayed", 0))
    return round(stats.get("completion_tokens", 0) / n, 2) if n else 0.0


def run_distill(cfg: DistillConfig, run_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Stage 02 on ``cfg``: ``{"rows", "stats", "timings", "model", "source", "note", "sentences"}``.

    ``source`` is ``"shipped"`` when the shipped set stood in for the teacher (``note`` says which file),
    else ``"teacher"`` (``note`` says why the shipped set was not used). ``rows`` are responses rows;
    ``timings`` one dict per completion (empty for a replay).
    """
    from metaie_utils.llm import shipped
    from metaie_utils.llm.teacher import teacher_endpoint

    run_dir = Path(run_dir)
    sentences = load_sentences(cfg.input_dir, cfg.limit)
    if cfg.distill_set != "off":
        path = None if cfg.distill_set == "auto" else cfg.distill_set
        if path is not None and not Path(path).is_file():
            raise UserError(f"distill_set = {cfg.distill_set!r}: no such file (use auto, off or a shipped .jsonl.gz).")
        rows, note = shipped.replay(sentences, cfg.teacher, cfg.prompt_version, cfg.temperature, cfg.max_tokens,
                                    cfg.seed, cfg.n_samples, path)
        if rows is not None:
            stats = {**response_stats(rows), "requests": 0, "retries": 0, "cache_hits": 0, "completed": 0,
                     "prompt_tokens": sum(r.get("prompt_tokens", 0) for r in rows),
                     "completion_tokens": sum(r.get("completion_tokens", 0) for r in rows),
                     "cost_usd": 0.0, "elapsed_s": 0.0, "tokens_per_s": 0.0, "replayed": len(rows)}
            stats["mean_completion_tokens"] = mean_completion_tokens(stats)
            for r in rows:
                r.pop("prompt_tokens", None), r.pop("completion_tokens", None)
            return {"rows": rows, "stats": stats, "timings": [], "model": rows[0]["model"] if rows else cfg.teacher,
                    "source": "shipped", "note": note, "sentences": sentences}
    else:
        note = "distill_set = off"
    with teacher_endpoint(cfg.teacher, cfg.base_url, cfg.teacher_parallel, cfg.n_ctx, log_dir=run_dir) as endpoint:
        client = LLMClient(
            endpoint.base_url, endpoint.model, api_key_env=cfg.api_key_env, concurrency=cfg.concurrency,
            max_retries=cfg.max_retries, timeout=cfg.request_timeout, cache_path=run_dir / "cache.sqlite",
            prices={"price_per_1k_input": cfg.price_per_1k_input, "price_per_1k_output": cfg.price_per_1k_output},
        )
        rows = distill(sentences, client, cfg.prompt_version, cfg.n_samples, cfg.temperature, cfg.max_tokens,
                       seed=cfg.seed, progress=progress)
    stats = {**client.summary(), **response_stats(rows), "replayed": 0}
    stats["mean_completion_tokens"] = mean_completion_tokens(stats)
    return {"rows": rows, "stats": stats, "timings": completions_table(client.last_completions), "model": endpoint.model,
            "source": "teacher", "note": f"asked the teacher ({note})", "sentences": sentences}
