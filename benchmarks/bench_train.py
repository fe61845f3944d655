"""Training speed and memory: samples/s and peak RSS of ``train_token_classifier``.

Backbones MiniLM-L6 and MPNet-base (offline aliases; a missing asset is reported and skipped) at the
smoke and cpu recipes of params/*.yaml (batch x accumulation, max_length), on the authors'
distillation instances repeated to fill the steps. Each configuration runs in a fresh subprocess so
that peak RSS (``ru_maxrss``) belongs to it alone; samples/s is the Trainer's ``train_samples_per_second``
(training loop only, model loading excluded). The ratio column compares with MiniLM at the smoke recipe
measured in the same run.

    .venv/bin/python benchmarks/bench_train.py              # ~5-10 min on 2 busy cores
    .venv/bin/python benchmarks/bench_train.py --steps 10   # steadier figures
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RECIPES = {  # mirrors params/smoke.yaml and params/cpu.yaml (section 04_train_meta_model)
    "smoke": {"batch_size": 4, "grad_accum": 1, "max_length": 64, "lr": 1e-4},
    "cpu": {"batch_size": 16, "grad_accum": 2, "max_length": 128, "lr": 1e-4},
}
BACKBONES = ["minilm-l6", "mpnet-base"]


def child(backbone: str, recipe_name: str, steps: int) -> None:
    import psutil

    from metaie_utils.models.trainer import TrainRecipe, train_token_classifier
    from metaie_utils.stages.train import read_instances
    from metaie_utils.models.checkpoint import read_training_info

    inst = read_instances("metaie_reference/distill/metaie.json")
    r = TrainRecipe(**RECIPES[recipe_name], max_steps=steps, warmup_ratio=0.0, save_steps=10_000, log_steps=1)
    n = r.effective_batch * steps
    data = (inst * (n // len(inst) + 1))[:n]
    with tempfile.TemporaryDirectory() as d:
        out = train_token_classifier(data, backbone, Path(d) / "model", r, progress=False)
        info = read_training_info(out)
    print(json.dumps({"samples_per_s": info["train_samples_per_second"], "peak_rss_mb":
                      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "rss_end_mb": psutil.Process().memory_info().rss / 2**20}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3, help="optimizer steps per configuration")
    ap.add_argument("--backbones", default=",".join(BACKBONES))
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child[0], a.child[1], a.steps)
        return
    rows = []
    for bb in a.backbones.split(","):
        for rn in RECIPES:
            p = subprocess.run([sys.executable, __file__, "--child", bb, rn, "--steps", str(a.steps)],
                               capture_output=True, text=True)
            if p.returncode != 0:
                rows.append((bb, rn, None, p.stderr.strip().splitlines()[-1][:100] if p.stderr.strip() else "failed"))
                continue
            rows.append((bb, rn, json.loads(p.stdout.strip().splitlines()[-1]), ""))
    base = next((r[2]["samples_per_s"] for r in rows if r[2]), None)
    print(f"\nTraining throughput and memory, CPU, {a.steps} optimizer steps per configuration")
    print(f"{'backbone':<12}{'recipe':<8}{'batch x acc':>12}{'max_len':>8}{'samples/s':>11}{'ratio':>7}{'peak RSS MB':>13}")
    for bb, rn, r, err in rows:
        rc = RECIPES[rn]
        bxa = f"{rc['batch_size']} x {rc['grad_accum']}"
        head = f"{bb:<12}{rn:<8}{bxa:>12}{rc['max_length']:>8}"
        if r is None:
            print(f"{head}  skipped: {err}")
        else:
            print(f"{head}{r['samples_per_s']:>11.2f}{r['samples_per_s'] / base:>7.2f}{r['peak_rss_mb']:>13.0f}")


if __name__ == "__main__":
    main()
