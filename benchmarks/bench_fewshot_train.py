"""Few-shot training speed and memory: this project's trainer (fp32, bf16) against the authors' run_ner.py recipe.

All configurations fine-tune the same backbone on the authors' 80 CoNLL2003 5-shot instances
(``metaie_reference/dataset/train.5-shot.conll2003.json``) with the same per-device batch, gradient accumulation
and learning rate, and each sees the same number of training samples (``--samples``). Samples are COUNTED
with a forward pre-hook on the model, not taken from transformers' nominal ``train_samples_per_second``: an
epoch of 80 instances at 8 x 8 ends on a short accumulation step, so the nominal figure over-counts.

- ``project-fp32`` / ``project-bf16``: :func:`metaie_utils.models.trainer.train_token_classifier` (dynamic padding,
  length-grouped batches, cosine schedule, warmup 6%, the backbone's full window), fp32 or bf16 autocast. The bf16
  row runs only on CPUs with bf16 matrix units (AMX or AVX512-BF16) or on a GPU; elsewhere it says why not.
- ``authors-run_ner``: the recipe of the HF ``run_ner.py`` the authors fine-tune with, rebuilt on the installed
  transformers (their script pins transformers 4.35): label of the first sub-token only, ``padding=False`` with
  ``DataCollatorForTokenClassification``, shuffled (not length-grouped) batches, linear schedule, no warmup, no
  weight decay, fp32.

Each configuration runs in a fresh subprocess so that peak RSS (``ru_maxrss``) is its own; the ratio column is
samples/s against ``authors-run_ner`` measured in the same run. Threads: set ``OMP_NUM_THREADS`` (and pin with
``taskset``) as for every CPU measurement here; the figures change with the thread count.

    taskset -c 0 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_fewshot_train.py           # ~3-5 min
    .venv/bin/python benchmarks/bench_fewshot_train.py --samples 1920 --batch 8 --accum 8 --lr 1e-5  # the issue's setting
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
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CONFIGS = ["authors-run_ner", "project-fp32", "project-bf16"]
TRAIN_FILE = "metaie_reference/dataset/train.5-shot.conll2003.json"


def _instances() -> list[dict]:
    from metaie_utils.stages.train import read_instances

    return read_instances(TRAIN_FILE)


def _bf16_ok() -> str:
    """"" when bf16 training can run here, else the reason it cannot."""
    import torch

    from metaie_utils.core.device import cpu_bf16_units

    if torch.cuda.is_available():
        return ""
    return "" if cpu_bf16_units() else "this CPU has no bf16 matrix units (AMX or AVX512-BF16)"


def run_project(backbone: str, a: argparse.Namespace, precision: str) -> dict:
    from metaie_utils.models.checkpoint import read_training_info
    from metaie_utils.models.trainer import TrainRecipe, train_token_classifier

    steps = a.samples // (a.batch * a.accum)
    recipe = TrainRecipe(lr=a.lr, batch_size=a.batch, grad_accum=a.accum, max_steps=steps, max_length=0,
                         precision=precision, save_steps=10**6, log_steps=10**6, seed=0)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        out = train_token_classifier(_instances(), backbone, Path(d) / "model", recipe, progress=False)
        wall = time.perf_counter() - t0
        info = read_training_info(out)
    return {"samples": info["samples_seen"], "train_s": info["train_runtime_s"], "wall_s": wall,
            "nominal_samples_per_s": info["train_samples_per_second"], "steps": info["global_step"]}


def run_authors(backbone: str, a: argparse.Namespace) -> dict:
    """The authors' run_ner.py recipe on this transformers: Trainer defaults, first-sub-token labels, fp32."""
    import torch
    from transformers import (AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification,
                              Trainer, TrainingArguments, set_seed)

    from metaie_utils.models.checkpoint import resolve_backbone

    path = resolve_backbone(backbone)
    labels = ["B", "I", "O"]  # run_ner.py sorts the label names
    l2i = {t: i for i, t in enumerate(labels)}
    set_seed(0)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForTokenClassification.from_pretrained(path, num_labels=3, id2label=dict(enumerate(labels)),
                                                            label2id=l2i)
    feats = []
    for inst in _instances():
        enc = tok(inst["words"], is_split_into_words=True, truncation=True)  # padding=False, max_seq_length=None
        prev, lab = None, []
        for w in enc.word_ids():
            lab.append(-100 if w is None or w == prev else l2i[inst["ner"][w]])
            prev = w
        feats.append({**enc, "labels": lab})
    steps = a.samples // (a.batch * a.accum)
    with tempfile.TemporaryDirectory() as d:
        args = TrainingArguments(output_dir=d, learning_rate=a.lr, per_device_train_batch_size=a.batch,
                                 gradient_accumulation_steps=a.accum, max_steps=steps, save_strategy="no",
                                 report_to="none", disable_tqdm=True, seed=0, use_cpu=not torch.cuda.is_available(),
                                 logging_steps=10**6)
        seen = [0]

        def hook(module, args_, kwargs):
            if module.training:
                seen[0] += int(kwargs["input_ids"].shape[0])

        h = model.register_forward_pre_hook(hook, with_kwargs=True)
        trainer = Trainer(model=model, args=args, train_dataset=feats, processing_class=tok,
                          data_collator=DataCollatorForTokenClassification(tok))
        t0 = time.perf_counter()
        res = trainer.train()
        wall = time.perf_counter() - t0
        h.remove()
    return {"samples": seen[0], "train_s": res.metrics["train_runtime"], "wall_s": wall,
            "nominal_samples_per_s": res.metrics["train_samples_per_second"], "steps": trainer.state.global_step}


def child(config: str, a: argparse.Namespace) -> None:
    import psutil
    import torch

    if config == "authors-run_ner":
        r = run_authors(a.backbone, a)
    else:
        r = run_project(a.backbone, a, "bf16" if config.endswith("bf16") else "fp32")
    r.update(peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
             rss_end_mb=psutil.Process().memory_info().rss / 2**20, threads=torch.get_num_threads())
    print(json.dumps(r))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="minilm-l6")
    ap.add_argument("--samples", type=int, default=960, help="training samples every configuration sees")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--accum", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-5, help="the authors' few-shot learning rate")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.samples < a.batch * a.accum:
        ap.error(f"--samples {a.samples} is less than one optimizer step ({a.batch} x {a.accum})")
    if a.child:
        child(a.child, a)
        return
    rows = []
    for cfg in a.configs.split(","):
        if cfg not in CONFIGS:
            ap.error(f"unknown config {cfg!r}; choose from {CONFIGS}")
        if cfg.endswith("bf16") and (why := _bf16_ok()):
            rows.append((cfg, None, f"skipped: {why}"))
            continue
        cmd = [sys.executable, __file__, "--child", cfg, "--backbone", a.backbone, "--samples", str(a.samples),
               "--batch", str(a.batch), "--accum", str(a.accum), "--lr", str(a.lr)]
        print(f"[bench] {cfg} ...", file=sys.stderr, flush=True)
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            rows.append((cfg, None, "failed: " + (p.stderr.strip().splitlines() or ["?"])[-1][:120]))
            continue
        rows.append((cfg, json.loads(p.stdout.strip().splitlines()[-1]), ""))
    base = next((r["samples"] / r["train_s"] for c, r, _ in rows if c == "authors-run_ner" and r), None)
    print(f"\nFew-shot training on the authors' 80 CoNLL2003 5-shot instances, {a.backbone}, batch {a.batch} x "
          f"accumulation {a.accum}, lr {a.lr:g}, {a.samples} samples each; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(f"{'configuration':<18}{'steps':>6}{'samples seen':>14}{'train s':>9}{'samples/s':>11}{'nominal/s':>11}"
          f"{'ratio':>7}{'peak RSS MB':>13}")
    for cfg, r, err in rows:
        if r is None:
            print(f"{cfg:<18}  {err}")
            continue
        sps = r["samples"] / r["train_s"]
        ratio = f"{sps / base:.2f}" if base else "-"
        print(f"{cfg:<18}{r['steps']:>6}{r['samples']:>14}{r['train_s']:>9.1f}{sps:>11.1f}"
              f"{r['nominal_samples_per_s']:>11.1f}{ratio:>7}{r['peak_rss_mb']:>13.0f}")


if __name__ == "__main__":
    main()
