"""Extraction speed and memory: batched ``MetaIE.extract`` against a one-pair-at-a-time loop.

Workload: the authors' CoNLL2003 test sentences x their 4 labels (``metaie_reference/dataset/
test.conll2003.json``), MiniLM-L6 with a token-classification head (a trained checkpoint via
``--model``; default: the backbone with a seeded random 3-tag head, which predicts plenty of spans,
so the equality check is not vacuous).

Prints two tables:

1. throughput in (text, label) pairs/s: the batched API on ``--sentences`` sentences and the
   one-pair-at-a-time loop (the authors' inference: tokenize one query, one forward pass, decode) on the
   first ``--loop-sentences`` of them, with the ratio, and whether both give identical spans (labels and
   offsets equal, scores within 1e-4) on the shared sentences;
   A third row runs the batched API under bf16 autocast (``precision="bf16"``; fast on CPUs with AMX or
   AVX512-BF16) and reports its span agreement with fp32;
2. peak RSS of extraction at batch sizes 1, 32, 128, each measured in a fresh subprocess (the peak mark
   is reset after the model is loaded, so it is extraction's own peak).

    .venv/bin/python benchmarks/bench_extract.py                   # ~5 min on 2 busy cores
    .venv/bin/python benchmarks/bench_extract.py --sentences 0     # all 3,453 sentences (13,812 pairs)
    python benchmarks/bench_extract.py --device cuda --sentences 0 --loop-sentences 300   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux ``/proc/self/clear_refs``), so the peak that follows is the
    extraction's, not model loading's (which briefly holds two copies of the weights)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak RSS since the last :func:`reset_peak_rss` (``VmHWM``), else since the process started."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def make_model(path: str | None) -> str:
    """The checkpoint to benchmark: ``path`` or MiniLM-L6 with a seeded random O/B/I head."""
    if path:
        return path
    out = Path(tempfile.gettempdir()) / "metaie-bench-minilm-tagger"
    if not (out / "config.json").is_file():
        import torch

        from metaie_utils.models.checkpoint import load_model, load_tokenizer, resolve_backbone

        torch.manual_seed(0)
        src = resolve_backbone("minilm-l6")
        load_model(src).save_pretrained(out)
        load_tokenizer(src).save_pretrained(out)
    return str(out)


def workload(n_sentences: int):
    from metaie_utils.stages.train import protocol_queries, read_instances

    s, labels, _ = protocol_queries(read_instances("metaie_reference/dataset/test.conll2003.json"))
    return (s[:n_sentences], labels[:n_sentences]) if n_sentences else (s, labels)


def one_at_a_time(ie, sentences, labels):
    """The authors' way: one tokenizer call and one forward pass per (sentence, label)."""
    import torch

    from metaie_utils.core.bio import label_words
    from metaie_utils.core.spans import resolve_conflicts, to_doc
    from metaie_utils.models.extractor import spans_from_tags

    out = []
    for words, labs in zip(sentences, labels):
        doc, spans = to_doc(words), []
        for lab in labs:
            prefix = label_words(lab) + [":"]
            enc = ie.tokenizer(prefix + doc.words, is_split_into_words=True, truncation=True,
                               max_length=ie.max_length, return_tensors="pt").to(ie.device)
            with torch.no_grad():
                probs = ie.model(**enc).logits[0].softmax(-1)
            pmax, arg = probs.max(-1)
            tags, ps, prev = ["O"] * len(doc.words), [1.0] * len(doc.words), None
            for pos, wid in enumerate(enc.word_ids(0)):
                if wid is not None and wid != prev and wid >= len(prefix):
                    tags[wid - len(prefix)] = ie._tags[int(arg[pos])]
                    ps[wid - len(prefix)] = float(pmax[pos])
                prev = wid
            spans.extend(spans_from_tags(tags, ps, doc, lab))
        out.append(resolve_conflicts(spans))
    return out


def agreement(a, b) -> float:
    """Share of the (label, start, end) spans of either side that both sides predict."""
    x = {(i, s.label, s.start, s.end) for i, spans in enumerate(a) for s in spans}
    y = {(i, s.label, s.start, s.end) for i, spans in enumerate(b) for s in spans}
    return len(x & y) / max(1, len(x | y))


def same(a, b) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if [(s.label, s.start, s.end) for s in x] != [(s.label, s.start, s.end) for s in y]:
            return False
        if any(abs(s.score - t.score) > 1e-4 for s, t in zip(x, y)):
            return False
    return True


def memory_child(model: str, batch_size: int, n_sentences: int) -> None:
    from metaie_utils.models.extractor import MetaIE

    ie = MetaIE.from_pretrained(model, device="cpu", batch_size=batch_size)
    s, labels = workload(n_sentences or -(-2 * batch_size // 4))
    reset_peak_rss()
    base = rss_mb()
    ie.extract(s, labels)
    print(json.dumps({"batch_size": batch_size, "rss_after_load_mb": base, "peak_rss_mb": peak_rss_mb()}))


def memory_table(model: str, memory_sentences: int) -> None:
    print("\nExtraction peak memory (fresh process each; RSS after loading the model and the queries, and the"
          " peak during extract, the peak mark reset after loading; two batches of CoNLL2003 queries)")
    print(f"{'batch_size':>10}{'RSS after load MB':>20}{'peak RSS MB':>14}{'extra MB':>10}")
    for bs in (1, 32, 128):
        outp = subprocess.run([sys.executable, __file__, "--mem-child", str(bs), "--model", model,
                               "--memory-sentences", str(memory_sentences)], capture_output=True, text=True, check=True)
        r = json.loads(outp.stdout.strip().splitlines()[-1])
        print(f"{bs:>10}{r['rss_after_load_mb']:>20.0f}{r['peak_rss_mb']:>14.0f}{r['peak_rss_mb'] - r['rss_after_load_mb']:>10.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="checkpoint folder (default: MiniLM-L6 + seeded random head)")
    ap.add_argument("--sentences", type=int, default=300, help="sentences for the batched run (0 = all 3,453)")
    ap.add_argument("--loop-sentences", type=int, default=60, help="sentences for the one-at-a-time loop")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--memory-sentences", type=int, default=0,
                    help="sentences per memory measurement (0 = enough for two batches: ceil(2 x batch / 4))")
    ap.add_argument("--memory-only", action="store_true", help="skip the throughput table")
    ap.add_argument("--no-bf16", action="store_true", help="skip the bf16-autocast row (CPUs without bf16 units are slow at it)")
    ap.add_argument("--device", default="cpu",
                    help="cpu (default) | cuda | auto; on CUDA the low-precision row is the GPU's half precision "
                         "(bf16, else fp16) and CUDA peak memory replaces the RSS table")
    ap.add_argument("--mem-child", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    model = make_model(a.model)
    if a.mem_child is not None:
        memory_child(model, a.mem_child, a.memory_sentences)
        return

    import torch

    from metaie_utils.core.device import pick_device, pick_precision
    from metaie_utils.models.extractor import MetaIE

    device = pick_device() if a.device == "auto" else a.device
    cuda = device.startswith("cuda")
    if a.memory_only:
        return memory_table(model, a.memory_sentences)
    ie = MetaIE.from_pretrained(model, device=device, precision="fp32", batch_size=a.batch_size)
    sents, labels = workload(a.sentences)
    n_loop = min(a.loop_sentences, len(sents))
    ie.extract(sents[:4], labels[:4])  # warm-up

    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sync()
    t = time.perf_counter()
    batched = ie.extract(sents, labels)
    sync()
    t_b = time.perf_counter() - t
    pairs_b = sum(len(x) for x in labels)

    t = time.perf_counter()
    looped = one_at_a_time(ie, sents[:n_loop], labels[:n_loop])
    t_l = time.perf_counter() - t
    pairs_l = sum(len(x) for x in labels[:n_loop])
    ok = same(batched[:n_loop], looped)
    n_spans = sum(len(x) for x in batched[:n_loop])

    where = torch.cuda.get_device_name(0) if cuda else f"CPU ({torch.get_num_threads()} torch threads)"
    print(f"\nExtraction throughput, MiniLM-L6 tagger, {where}, CoNLL2003 test sentences x 4 labels")
    print(f"{'method':<34}{'pairs':>8}{'seconds':>10}{'pairs/s':>10}{'ratio':>8}")
    r_l = pairs_l / t_l
    print(f"{'one pair at a time (authors)':<34}{pairs_l:>8}{t_l:>10.1f}{r_l:>10.1f}{1.0:>8.2f}")
    print(f"{f'MetaIE.extract batch={a.batch_size}':<34}{pairs_b:>8}{t_b:>10.1f}{pairs_b / t_b:>10.1f}"
          f"{pairs_b / t_b / r_l:>8.2f}")
    print(f"identical predictions on the {n_loop} shared sentences ({n_spans} spans): {ok}")
    if not a.no_bf16:
        low = pick_precision(device) if cuda else "bf16"
        ie16 = MetaIE(ie.model, ie.tokenizer, device, a.batch_size, precision=low)
        ie16.extract(sents[:4], labels[:4])
        sync()
        t = time.perf_counter()
        half = ie16.extract(sents, labels)
        sync()
        t_h = time.perf_counter() - t
        print(f"{'MetaIE.extract batch=' + str(a.batch_size) + ' ' + low:<34}{pairs_b:>8}{t_h:>10.1f}"
              f"{pairs_b / t_h:>10.1f}{pairs_b / t_h / r_l:>8.2f}")
        print(f"{low} autocast (precision='{low}') against fp32 on all {len(sents)} sentences: span agreement "
              f"{agreement(half, batched):.4f} (1 = identical), identical: {same(half, batched)}")

    if cuda:
        print(f"CUDA peak memory allocated (model and extraction): {torch.cuda.max_memory_allocated() / 2**20:.0f} MB")
    else:
        memory_table(model, a.memory_sentences)
    if not ok:
        sys.exit("batched and one-at-a-time predictions differ")


if __name__ == "__main__":
    main()
