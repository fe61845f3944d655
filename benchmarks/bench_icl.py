"""llm-icl prompt throughput against the local teacher: the prompt layouts icl-v1 (queries in the system prompt)
and icl-v2 (queries in the last message, so the server reuses the shared prefix), on one dataset's real
support set and second-stage queries (asked on the gold anchors, so they exist without a first stage).

    .venv/bin/python benchmarks/bench_icl.py                                   # conll04, 12 prompts per layout
    taskset -c 1 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_icl.py --dataset 14res --n 8

Both layouts are asked the same prompts in the same order, each on its own fresh server, with no response cache;
one warm-up prompt per server is not timed. Prints seconds per prompt, the ratio against icl-v1 measured in the
same run, the mean prompt tokens and how many answers parse into at least one span.
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

from metaie_utils.llm.client import LLMClient  # noqa: E402
from metaie_utils.llm.teacher import local_teacher  # noqa: E402
from metaie_utils.stages.fewshot import baselines  # noqa: E402
from metaie_utils.stages.fewshot.loop import EvalConfig, capped_test, prepare_support  # noqa: E402
from metaie_utils.tasks import get_dataset  # noqa: E402


def icl_messages_v1(words, labels, demos, max_words=baselines.ICL_MAX_PROMPT_WORDS, fixed=frozenset()):
    """The icl-v1 layout (until 2026-12-05), kept here as the baseline: the queries in the system prompt."""
    system = (f"Extract the spans that answer these queries from the user's sentence: {'; '.join(labels)}. Answer one "
              f'span per line as "- <query>: <span>", copying the span from the sentence; answer "- none" when there is none.')
    msgs = [{"role": "system", "content": system}]
    asked = set(labels)
    first_stage = any(lab in fixed for lab in asked) or not fixed
    budget = max_words - len(words)
    for dw, spans in demos:
        if budget - len(dw) < 0:
            break
        budget -= len(dw)
        shown = [(lab, txt) for lab, txt in spans if (lab in asked if first_stage else lab not in fixed)]
        msgs.append({"role": "user", "content": " ".join(dw)})
        msgs.append({"role": "assistant", "content": "\n".join(f"- {lab}: {txt}" for lab, txt in shown) or "- none"})
    msgs.append({"role": "user", "content": " ".join(words)})
    return msgs


class Recorder:
    """An extractor that answers nothing and records every (words, labels) query the decoder asks."""

    def __init__(self):
        self.asked: list[tuple[list[str], list[str]]] = []

    def extract(self, texts, labels):
        per = labels if labels and not isinstance(labels[0], str) else [list(labels)] * len(texts)
        self.asked += [(list(t), list(ls)) for t, ls in zip(texts, per)]
        return [[] for _ in texts]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="conll04")
    ap.add_argument("--model", default="qwen2.5-0.5b", help="GGUF alias or path")
    ap.add_argument("--n", type=int, default=12, help="second-stage prompts per layout")
    ap.add_argument("--shots", type=int, default=5)
    a = ap.parse_args(argv)
    ds = get_dataset(a.dataset)
    with tempfile.TemporaryDirectory(prefix="bench-icl-") as tmp:
        cfg = EvalConfig(datasets=[a.dataset], shots=a.shots)
        _, instances, _ = prepare_support(ds, a.dataset, cfg, 0, Path(tmp))
        demos, fixed = baselines.demonstrations(instances), baselines.fixed_labels(instances)
        rec = Recorder()
        ds.predict(rec, capped_test(ds.load("test"), 50), 64, anchors="gold")
        second = [(w, ls) for w, ls in rec.asked if ls and not any(lab in fixed for lab in ls)][: a.n]
        if not second:
            raise SystemExit(f"{a.dataset}: no second-stage queries on gold anchors")
        layouts = {
            "icl-v1 (queries in the system prompt)": [icl_messages_v1(w, ls, demos, fixed=fixed) for w, ls in second],
            "icl-v2 (queries in the last message)": [baselines.icl_messages(w, ls, demos, task=ds.task, fixed_labels=fixed)
                                                    for w, ls in second],
        }
        out = []
        for name, chats in layouts.items():
            with local_teacher(a.model, log_dir=Path(tmp) / name.split()[0]) as t:
                client = LLMClient(t.base_url, t.model, concurrency=1, timeout=600)
                warm = [{"messages": chats[0][:-1] + [{"role": "user", "content": "Warm up."}], "temperature": 0.0,
                         "max_tokens": 4, "sample_index": 0}]
                client.complete_many(warm, progress=False)
                reqs = [{"messages": m, "temperature": 0.0, "max_tokens": 128, "sample_index": 0} for m in chats]
                t0 = time.perf_counter()
                res = client.complete_many(reqs, progress=False)
                wall = time.perf_counter() - t0
            parsed = sum(1 for c, (w, ls) in zip(res, second) if baselines.parse_icl_response(c.text, w, ls))
            out.append((name, wall / len(chats), sum(c.prompt_tokens or 0 for c in res) / len(res), parsed))
    base = out[0][1]
    print(f"\n{a.dataset}: {len(second)} second-stage prompts (gold anchors), {a.shots}-shot demonstrations, "
          f"teacher {a.model}, {os.cpu_count()} CPU cores visible, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}\n")
    print("| layout | s / prompt | x vs icl-v1 | prompt tokens (mean) | answers with a span |")
    print("|---|---|---|---|---|")
    for name, per, toks, parsed in out:
        print(f"| {name} | {per:.2f} | {base / per:.2f} | {toks:.0f} | {parsed}/{len(second)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
