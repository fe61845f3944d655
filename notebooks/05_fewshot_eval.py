# %% [markdown]
# # 05 · Few-shot evaluation: MetaIE against its baselines
#
# **Inputs -> outputs.** A meta-model of stage 04 (`meta_model`: its run directory) and the benchmark
# datasets -> `outputs/05_fewshot_eval/<run_name>/` with `results.csv` (one row per dataset x
# initialization x seed x sub-task), `summary.csv` (mean ± std over seeds, %), `support/<dataset>/seed<k>.json`
# (the sampled K-shot support sets), `fewshot_f1.png` and `metrics.json`.
#
# For every dataset and seed one K-shot support set is sampled (the same for every initialization), each
# initialization is fine-tuned on it with the same recipe (`fewshot_*`), and the model is scored on the
# (optionally capped, `test_cap`) test split with offset-exact micro F1. Initializations: `vanilla` (the
# backbone), `metaie` (stage 04), `ner-distill` (the teacher's NER-only distillation on MetaIE's sentences),
# `multiie` (human NER + RE + EE annotations, count-matched) and `llm-icl` (the teacher prompted with the
# support set). The defaults finish in about a minute on a CPU; `metaie` is skipped with a note while
# `meta_model` is empty.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/metaie-project/metaie/blob/main/notebooks/05_fewshot_eval.ipynb)

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
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pandas as pd
from IPython.display import display

from metaie_utils.stages.fewshot import loop as fewshot
from metaie_utils.stages.fewshot.loop import EvalConfig
from metaie_utils.plots import save
from metaie_utils.plots.eval import plot_results
from metaie_utils.core.runs import start_run

# %% tags=["parameters"]
run_name = ""  # "": timestamp; outputs/05_fewshot_eval/<run_name>
out_root = "outputs"  # relative to the repository root
overwrite = False  # True replaces a finished run directory
seed = 0  # first seed; the support sets use seed, seed+1, ...
meta_model = ""  # 04 run dir (its model/), a checkpoint folder or Hub name; "": skip the metaie initialization
datasets = ["conll2003"]  # tasks.DATASETS names/aliases (conll2003, wnut17, bc5cdr, bionlp2004, conll04, ade, casie, up-ewt, qasrl, 14res, 14lap, absa-14res, ...) or conll2003-authors
initializations = ["vanilla", "metaie"]  # any of vanilla, metaie, ner-distill, multiie, llm-icl
shots = 5  # K per type
fewshot_sampler = "greedy"  # "greedy" (until every type has K mentions or more) | "per-type" (K sentences per type)
fewshot_seeds = 1  # support sets per dataset (the paper's protocol: 3)
test_cap = 50  # test sentences per dataset (0: the full test split)
backbone = "minilm-l6"  # vanilla backbone: assets alias, path or Hub name (roberta-large)
num_layers = 0  # 0: all encoder layers; k: keep the first k
architecture = "seqlabel"  # "seqlabel" | "generative"
device = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N" | "mps"
fewshot_lr = 3e-4  # few-shot learning rate (paper, roberta-large: 1e-5; MiniLM-L6: 1e-4 stays all-O)
fewshot_epochs = 100  # epochs over the support instances (paper: 100)
fewshot_batch_size = 8  # per-device batch
fewshot_grad_accum = 1  # effective batch: batch x accum
fewshot_max_length = 0  # sub-tokens per query in few-shot training and extraction; 0: the backbone's window (512)
fewshot_max_steps = 300  # 0: epochs decide; n > 0 caps optimizer steps (the same for every initialization)
fewshot_min_epochs = 3  # with fewshot_max_steps > 0: at least this many epochs over the instances (0: the cap alone)
fewshot_neg_share = 0.5  # 0.5 chosen by the recipe comparison (README); 0: every all-O instance is trained on; s in (0, 1): all-O instances sampled down to this share
fewshot_collapse_retries = 1  # a fine-tune predicting no span on its own support sentences is retrained with twice the steps, up to this many times (0: never)
fewshot_class_weight = "none"  # "none" | "balanced": B/I/O loss weights n / (3 n_tag)
fewshot_precision = "auto"  # few-shot training: "auto" (GPU half; CPU bf16 with AMX/AVX512-BF16 units, else fp32) | "fp32" | "bf16" (CPU: AMX/AVX512-BF16 only) | "fp16"
eval_batch_size = 64  # (sentence, label) queries per forward pass
gold_anchor_rows = True  # two-stage tasks also score stage 2 on the gold anchors (<subtask>@gold rows)
fewshot_workers = 0  # fine-tunes at once in worker processes; 0: one per CPU core, one thread each (1 on a GPU)
keep_models = False  # True keeps every fine-tuned checkpoint under work/
baseline_instances = 0  # 0: MetaIE's instance count; n: pre-training instances of ner-distill/multiie
ner_responses = ""  # NER responses (02 run dir or file); "": distill now on MetaIE's sentences (more until counts match)
ner_prompt = "ner-icl-v1"  # ner-distill prompt: ner-icl-v1 (in-context NER demonstrations) | ner-v1 (zero-shot)
multiie_datasets = ["ncbi-disease", "semeval2010-task8", "casie"]  # human IE data of multiie (fewnerd/fewrel/fewevent when registered)
icl_test_cap = 20  # test sentences prompted per dataset for llm-icl (0: the test_cap subset)
teacher = "local:qwen2.5-0.5b"  # llm-icl teacher: local:<alias> starts llama.cpp; else a model at base_url
base_url = ""  # remote teachers: "": the OpenAI API; e.g. http://localhost:8000/v1
api_key_env = "OPENAI_API_KEY"  # environment variable holding the API key (remote teachers)

# %%
cfg = EvalConfig.from_namespace(globals())
run = start_run(cfg)
print("run directory:", run.dir)
print("few-shot recipe (the same for every initialization):", fewshot.recipe_string(fewshot.recipe_dict(cfg)))

# %% [markdown]
# ## Few-shot fine-tuning and scoring
# One row per dataset x initialization x seed x sub-task lands in `results.csv` as soon as it exists; a
# re-run of the same `run_name` resumes where it stopped.

# %%
rows = fewshot.run_fewshot(cfg, run.dir, log=run.log().info)
results = pd.DataFrame(rows)
display(results[["dataset", "initialization", "seed", "subtask", "precision", "recall", "f1", "n_pred", "support_n_pred",
                 "collapsed", "n_test", "n_support", "n_instances"]])
for line in fewshot.collapse_report(rows):  # a model that predicts nothing measures the recipe, not the init
    print(line)

# %% [markdown]
# ## Summary: F1 (%) mean ± std over seeds

# %%
summary = fewshot.write_summary(run.dir)
display(fewshot.summary_table(summary))
notes = json.loads((run.dir / "notes.json").read_text())
for k, v in notes.items():
    print(f"note [{k}]: {v}")

# %%
fig = plot_results(summary)
save(fig, run.dir / "fewshot_f1.png")

# %% [markdown]
# ## The support sets
# Sentences, instances and mentions per type of each sampled support set (`support/<dataset>/seed<k>.json`).

# %%
sup = []
for d in cfg.datasets:
    for s in cfg.seeds:
        p = run.dir / "support" / d / f"seed{s}.json"
        if p.is_file():
            r = json.loads(p.read_text())
            sup.append({"dataset": d, "seed": s, "sampler": r.get("sampler"), "sentences": r["n_sentences"],
                        "instances": r["n_instances"], **{f"n[{t}]": n for t, n in (r.get("type_counts") or {}).items()}})
display(pd.DataFrame(sup))

# %%
run.finish(fewshot.stage_metrics(summary, cfg))
