"""Layer by layer, how usable is a frozen backbone's token representation for MetaIE's tagging task?

For every hidden layer of an encoder (0 = embeddings) it measures, on the held-out instances of a stage-03 run
(label-prompted sentences with B/I/O tags):

- ``token_cosine``: the mean pairwise cosine between the token vectors of one sentence (1.0 = every token the same
  direction; sentence-embedding training pushes the last layer toward it);
- ``probe_f1``: micro F1 on the B and I tags of a logistic-regression probe on the frozen first-subword vectors,
  trained on the first ``--train`` instances and scored on the rest.

Written for the 12-layer MPNet-base (all-mpnet-base-v2) of the student-size ablation, whose meta-training stayed
at held-out span F1 0.0 where its 3- and 6-layer truncations learned (README, Ablations):

    .venv/bin/python scripts/layer_probe.py --backbone mpnet-base --out docs/results/ablations/layer_probe
    .venv/bin/python scripts/layer_probe.py --backbone minilm-l6 --out docs/results/ablations/layer_probe

Writes ``<out>/<backbone>.csv`` and ``<out>/<backbone>.png``; one torch thread, about a minute per 12-layer
backbone on a CPU core. A diagnostic: it fine-tunes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def layer_profile(model_path: str, instances: Sequence[dict[str, Any]], n_train: int, max_length: int = 128):
    """One row per hidden layer: layer, token_cosine, probe_f1 (see the module docstring). ``instances`` are
    stage 03's (``words``, ``ner`` B/I/O tags); the first ``n_train`` train the probe, the rest score it."""
    import numpy as np
    import pandas as pd
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from transformers import AutoModel, AutoTokenizer

    if not 0 < n_train < len(instances):
        raise ValueError(f"--train = {n_train}: needs 0 < train < {len(instances)} (the instances read), so both the "
                         f"probe's training and its test part are non-empty.")
    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModel.from_pretrained(model_path).eval()
    feats: dict[int, list[Any]] = {}
    cos: dict[int, list[float]] = {}
    tags, n_train_words = [], 0
    for k, inst in enumerate(instances):
        enc = tok(list(inst["words"]), is_split_into_words=True, return_tensors="pt", truncation=True, max_length=max_length)
        wid = enc.word_ids()
        first = [i for i, w in enumerate(wid) if w is not None and (i == 0 or wid[i - 1] != w)]
        with torch.no_grad():
            hidden = model(**enc, output_hidden_states=True).hidden_states
        for layer, h in enumerate(hidden):
            feats.setdefault(layer, []).append(h[0, first].float().numpy())
            body = [i for i, w in enumerate(wid) if w is not None]
            u = torch.nn.functional.normalize(h[0, body].float(), dim=-1)
            n = u.shape[0]
            if n > 1:
                cos.setdefault(layer, []).append(float(((u @ u.T).sum() - n) / (n * (n - 1))))
        tags += [inst["ner"][wid[i]] for i in first]
        if k < n_train:
            n_train_words = len(tags)
    y = np.array(tags)
    if len(set(y[:n_train_words])) < 2:
        raise ValueError("the probe's training instances hold one tag only; pass more instances or a larger --train.")
    rows = []
    for layer in sorted(feats):
        X = np.concatenate(feats[layer])
        clf = LogisticRegression(max_iter=300).fit(X[:n_train_words], y[:n_train_words])
        f1 = f1_score(y[n_train_words:], clf.predict(X[n_train_words:]), labels=["B", "I"], average="micro", zero_division=0)
        rows.append({"layer": layer, "token_cosine": round(float(np.mean(cos.get(layer, [float("nan")]))), 4),
                     "probe_f1": round(float(f1), 4)})
    return pd.DataFrame(rows)


def figure(df, title: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.plot(df["layer"], df["token_cosine"], marker="o", label="mean token cosine (within a sentence)")
    ax.plot(df["layer"], df["probe_f1"], marker="s", label="frozen-feature probe, B/I F1")
    ax.set_xlabel("hidden layer (0 = embeddings)")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", required=True, help="an asset alias (mpnet-base, minilm-l6), a local path or a Hub name")
    ap.add_argument("--heldout", default="outputs/03_convert_bio/cpu/heldout.json",
                    help="stage 03's held-out instances (default: the CPU run's, 430 instances)")
    ap.add_argument("--train", type=int, default=330, help="instances that train the probe; the rest score it")
    ap.add_argument("--out", default="outputs/layer_probe", help="folder for <backbone>.csv and .png")
    args = ap.parse_args(argv)

    import torch

    from metaie_utils.core.assets import resolve_model
    from metaie_utils.plots import save

    torch.set_num_threads(1)
    heldout = Path(args.heldout)
    if not heldout.is_file():
        ap.error(f"--heldout {heldout}: no such file; run stage 03 first (make run, or run --params params/cpu.yaml "
                 f"--stages 01,02,03) or point at another run's heldout.json.")
    instances = json.loads(heldout.read_text())
    df = layer_profile(resolve_model(args.backbone), instances, args.train)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.backbone).name
    df.to_csv(out / f"{stem}.csv", index=False)
    save(figure(df, f"{stem}: frozen token features per layer ({len(instances)} held-out instances)"), out / f"{stem}.png")
    print(df.to_string(index=False))
    print(f"wrote {out / stem}.csv and .png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
