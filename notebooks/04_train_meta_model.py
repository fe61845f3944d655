# %% [markdown]
# # 04 · Train the meta-model
#
# **Inputs -> outputs.** Stage 03's `instances.json` + `heldout.json` (BIO instances `label words : sentence`;
# standalone default: the authors' 10 real distillation instances, `metaie_reference/distill/metaie.json`)
# -> `outputs/04_train_meta_model/<run_name>/model/`: a `save_pretrained` token classifier with its tokenizer,
# `metaie_training.json` (recipe, data provenance, truncated count, held-out span F1, log history) and a
# `README.md` model card, loadable by plain `AutoModelForTokenClassification` or `MetaIE.from_pretrained`.
#
# The recipe is the paper's (AdamW, cosine schedule with warmup, first-sub-token labels, effective batch
# 32) on any backbone: an offline alias (`minilm-l6`, `mpnet-base`), a folder, or a Hub name such as
# `roberta-large`. An optional last section runs the authors' CoNLL2003 5-shot protocol on their own files
# (fine-tune on their 80 support instances, score all 3,453 test sentences x 4 labels) with the authors'
# string-match micro-F1 and offset-exact micro-F1, from the plain backbone and from this meta-model.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/metaie-project/metaie/blob/main/notebooks/04_train_meta_model.ipynb)

# %% [markdown]
# **Colab or a fresh kernel:** set `INSTALL = True` and run the cell once. It clones the repository and
# installs it into this kernel's Python without replacing Colab's own torch.

# %%
INSTALL = False  # opt-in
if INSTALL:
    import subprocess, sys  # noqa: E401

    subprocess.run(
        "test -d metaie || git clone -q https://github.com/metaie-project/metaie.git && "
        "cd metaie && METAIE_NO_VENV=1 bash scripts/bootstrap.sh",
        shell=True, check=True,
    )
    sys.path.insert(0, "metaie")

# %%
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # offline machines; unset it to pull Hub backbones such as roberta-large

import pandas as pd
from IPython.display import Markdown, display

from metaie_utils.models import load_extractor
from metaie_utils.stages import train as stage
from metaie_utils.plots import save
from metaie_utils.plots import train as plots
from metaie_utils.core.runs import start_run, write_json

# %% tags=["parameters"]
run_name = ""                 # empty string: timestamp; outputs/04_train_meta_model/<run_name>
out_root = "outputs"          # relative to the repository root
overwrite = False             # True replaces a finished run directory
seed = 0                      # any int: model init, data order, held-out split
input_dir = "metaie_reference/distill/metaie.json"  # 03's run directory or an instances JSON/JSONL (repo path, else data-folder path)
backbone = "minilm-l6"        # assets alias (minilm-l6, mpnet-base), a local folder, or a Hub name (roberta-large)
num_layers = 0                # non-negative int: 0 keeps all encoder layers; k keeps the first k
architecture = "seqlabel"     # "seqlabel" (the paper) | "generative" (metaie_utils.models.generative)
device = "auto"               # "auto" | "cpu" | "cuda" | "cuda:N" | "mps"
precision = "auto"            # "auto" (bf16/fp16 on GPU, fp32 on CPU) | "fp32" | "fp16" | "bf16"
max_length = 64               # int, at least 8: sub-tokens per "label : sentence"; longer ones are truncated and counted
label_all_subtokens = False   # False: first sub-token of each word (paper) | True: every sub-token
meta_lr = 3e-4                # positive float: peak learning rate (AdamW, cosine; MiniLM-L6, measured)
meta_epochs = 6.0             # positive float: epochs (meta_max_steps caps this standalone run)
meta_batch_size = 4           # positive int: per-device batch
meta_grad_accum = 1           # positive int: gradient accumulation (effective batch: batch x accum x GPUs)
meta_warmup_ratio = 0.06      # float in [0, 1): share of warmup steps
meta_weight_decay = 0.01      # non-negative float: AdamW weight decay
meta_max_steps = 30           # int: -1 lets the epochs decide; N > 0 caps optimizer steps
meta_max_instances = 0        # non-negative int: seeded sample of N training instances (0: all)
heldout_fraction = 0.2        # float in [0, 0.5]: share held out when the input has no heldout.json
eval_steps = 10               # non-negative int: held-out span F1 every N steps (0: every epoch)
log_steps = 5                 # positive int: log the loss every N steps
save_steps = 200              # positive int: checkpoint every N steps (a re-run resumes from it)
protocol_eval = False         # True: run the authors' CoNLL2003 5-shot protocol section
protocol_inits = "vanilla,meta"  # comma list of "vanilla" (the backbone) and "meta" (this run's model)
protocol_lr = 3e-4            # positive float: protocol fine-tuning learning rate
protocol_epochs = 30.0        # positive float: protocol fine-tuning epochs over the 80 support instances
protocol_batch_size = 16      # positive int: protocol fine-tuning batch
protocol_max_test = 0         # non-negative int: first N test sentences (0: all 3,453)

# %%
cfg = stage.TrainConfig.from_namespace(globals())
run = start_run(cfg, device=cfg.device)
log = run.log()
print("run directory:", run.dir)

# %% [markdown]
# ## Data
# Training instances and the held-out slice (from 03's `heldout.json`, else a seeded share of the input).

# %%
train, heldout, provenance = stage.load_training_data(cfg.input_dir, cfg.heldout_fraction, cfg.seed,
                                                         cfg.meta_max_instances)
display(pd.DataFrame([provenance]).T.rename(columns={0: "value"}))
display(pd.DataFrame([{"label": " ".join(stage.split_instance(x)[0]),
                       "sentence": " ".join(stage.split_instance(x)[1])[:90],
                       "spans": sum(t == "B" for t in x["ner"])} for x in train[:8]]))

# %% [markdown]
# ## Meta-training
# Resumable: a re-run of the same `run_name` continues from the last checkpoint in `model-checkpoints/`.

# %%
recipe = cfg.recipe()
display(pd.DataFrame([recipe.as_dict()]))
model_dir = stage.finetune(train, cfg.backbone, run.dir / "model", recipe, cfg.architecture,
                              heldout or None, **({"provenance": provenance} if cfg.architecture == "seqlabel" else {}))
info = stage.read_training_info(model_dir)
log.info("trained %s: %s steps", model_dir, info.get("global_step"))
display(Markdown((model_dir / "README.md").read_text()) if (model_dir / "README.md").is_file() else model_dir)

# %% [markdown]
# ## Learning curves
# Training loss per logged step; held-out loss and span F1 (offset-exact B(I*) spans of the sentence words).

# %%
fig = plots.learning_curves(info.get("log_history", []), title=f"Meta-training {cfg.backbone}")
save(fig, run.path("learning_curves.png"))
final_eval = info.get("final_eval", {})
display(pd.DataFrame([final_eval]))

# %% [markdown]
# ## Try it
# The meta-model answers arbitrary labels. (After a smoke run the spans are noise.)

# %%
ie = load_extractor(model_dir, device=cfg.device)
demo = ie.extract(["Hillary Clinton met reporters in Paris on Friday to discuss the climate agreement."],
                  ["Person", "Location", "Date", "Topic"], conflict="all")
display(pd.DataFrame([s.as_dict() for s in demo[0]]))

# %% [markdown]
# ## The authors' protocol (CoNLL2003 5-shot, their files)
# Fine-tune each initialization on `train.5-shot.conll2003.json` (80 instances = 20 sentences x 4 labels),
# query every test sentence with the 4 labels (a span predicted under several labels keeps the most
# confident one), and score micro-F1 two ways: offset-exact (label, word span) tuples and the authors'
# per-sentence (label, span string) match.

# %%
protocol_rows = []
if cfg.protocol_eval:
    inits = {"vanilla": cfg.backbone, "meta": str(model_dir)}
    for name in [x.strip() for x in cfg.protocol_inits.split(",") if x.strip()]:
        if name not in inits:
            raise ValueError(f"protocol_inits entry {name!r}: use 'vanilla' and/or 'meta'.")
        res = stage.authors_protocol(inits[name], run.dir / "protocol" / name / "model", cfg.protocol_recipe(),
                                        max_test=cfg.protocol_max_test)
        write_json(run.path(f"protocol/{name}/scores.json"), res)
        for metric in ("offset", "string"):
            protocol_rows.append({"init": name, "metric": metric, **{k: res[metric][k] for k in
                                  ("precision", "recall", "f1", "tp", "n_gold", "n_pred")},
                                  "n_sentences": res["n_sentences"]})
    display(pd.DataFrame(protocol_rows))
    pd.DataFrame(protocol_rows).to_csv(run.path("protocol_scores.csv"), index=False)
    save(plots.protocol_scores(protocol_rows), run.path("protocol_scores.png"))

# %%
metrics = {
    "n_train": provenance["n_train"], "n_heldout": provenance["n_heldout"], "n_params": info.get("n_params"),
    "truncated": info.get("data", {}).get("truncated"), "global_step": info.get("global_step"),
    "train_loss_last": next((r["loss"] for r in reversed(info.get("log_history", [])) if "loss" in r), None),
    "heldout_span_f1": final_eval.get("eval_span_f1"),
    "train_samples_per_second": info.get("train_samples_per_second"),
    **{f"protocol_{r['init']}_{r['metric']}_f1": r["f1"] for r in protocol_rows},
}
run.finish(metrics)
