"""Distillation throughput against the local teacher: sentences/s and tokens/s at several concurrencies,
and the time of a re-run answered entirely from the cache.

    .venv/bin/python benchmarks/bench_distill.py                       # smollm2-135m, concurrency 1 2 4
    .venv/bin/python benchmarks/bench_distill.py --model qwen2.5-0.5b --n 20

Each concurrency level gets its own server (``--parallel`` = the concurrency, passed when the installed
llama-cpp-python server supports it) and a fresh cache; one warm-up request is not timed. Ratios are
against concurrency 1 measured in the same run. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from metaie_utils.llm.client import LLMClient, build_messages, distill, response_stats
from metaie_utils.stages.distill import load_sentences
from metaie_utils.llm.teacher import local_teacher


def _sentences(path: str | None, n: int) -> list[dict]:
    if path:
        return load_sentences(path, n)
    try:  # news first sentences when the asset is installed, else the committed fixture
        from metaie_utils.stages.sample import SampleConfig, sample_corpus

        rows, _ = sample_corpus(SampleConfig(corpus="news", n_sentences=n, max_docs=400, seed=0), progress=False)
        return rows
    except Exception:
        return load_sentences("tests/fixtures/distill/sentences.jsonl", n)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m", help="GGUF alias or path")
    ap.add_argument("--input", default=None, help="sentences.jsonl (default: news first sentences)")
    ap.add_argument("--n", type=int, default=8, help="sentences per level")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--prompt-version", default="metaie-1shot-v1")
    a = ap.parse_args(argv)
    sents = _sentences(a.input, a.n)
    rows_out = []
    with tempfile.TemporaryDirectory(prefix="bench-distill-") as tmp:
        last_cache = None
        for c in a.concurrency:
            cache = Path(tmp) / f"cache-c{c}.sqlite"
            with local_teacher(a.model, parallel=c, log_dir=Path(tmp) / f"log-c{c}") as t:
                client = LLMClient(t.base_url, t.model, concurrency=c, cache_path=cache, timeout=600)
                client.complete_many([{"messages": build_messages(a.prompt_version, "Warm up the server."),
                                       "temperature": 1.0, "max_tokens": 4, "sample_index": 0}], progress=False)
                client.stats.completion_tokens = client.stats.completed = 0
                t0 = time.perf_counter()
                rows = distill(sents, client, a.prompt_version, max_tokens=a.max_tokens, progress=False)
                wall = time.perf_counter() - t0
            st = response_stats(rows)
            rows_out.append({"setting": f"concurrency {c}", "wall_s": wall, "sent_per_s": len(rows) / wall,
                             "tok_per_s": client.stats.completion_tokens / wall, "parsable": st["parsable_fraction"]})
            last_cache = (cache, t.model)
        # cache-hit re-run: no server at all (the URL is dead), every answer from sqlite
        cache, model = last_cache
        client = LLMClient("http://127.0.0.1:9/v1", model, concurrency=4, cache_path=cache)
        t0 = time.perf_counter()
        rows = distill(sents, client, a.prompt_version, max_tokens=a.max_tokens, progress=False)
        wall = time.perf_counter() - t0
        assert client.stats.requests == 0 and client.stats.cache_hits == len(sents)
        rows_out.append({"setting": "cache re-run", "wall_s": wall, "sent_per_s": len(rows) / wall, "tok_per_s": float("nan"),
                         "parsable": response_stats(rows)["parsable_fraction"]})
    base = rows_out[0]
    print(f"\nmodel {a.model}, {len(sents)} sentences, prompt {a.prompt_version}, max_tokens {a.max_tokens}, "
          f"{os.cpu_count()} CPU cores\n")
    print("| setting | wall s | sentences/s | x vs c=1 | tokens/s | x vs c=1 | parsable |")
    print("|---|---|---|---|---|---|---|")
    for r in rows_out:
        tok_ratio = r["tok_per_s"] / base["tok_per_s"] if base["tok_per_s"] and r["tok_per_s"] == r["tok_per_s"] else float("nan")
        print(f"| {r['setting']} | {r['wall_s']:.2f} | {r['sent_per_s']:.3f} | {r['sent_per_s'] / base['sent_per_s']:.2f} | "
              f"{r['tok_per_s']:.2f} | {tok_ratio:.2f} | {r['parsable']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
