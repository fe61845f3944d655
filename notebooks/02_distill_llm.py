# %% [markdown]
# # 02 · Distill "important information" from a teacher LLM
#
# **Inputs -> outputs.** Stage 01's `sentences.jsonl` (standalone default: a committed fixture of 4 sentences
# of the authors' reference data and 5 news sentences) -> `outputs/02_distill_llm/<run_name>/` with
# `responses.jsonl` (one row per sentence and sample: `id`, `text`, `response`, `model`, `prompt_version`,
# `sample_index`, `finish_reason`, `error`), `cache.sqlite` (every finished response; a re-run or a resumed
# run sends no request for them), `completions.csv` (timings and tokens), figures and `metrics.json`.
#
# The teacher is either local (`teacher = "local:smollm2-135m"` / `"local:qwen2.5-0.5b"` / `"local:/path/x.gguf"`
# starts a llama.cpp server on 127.0.0.1 and stops it after) or any OpenAI-compatible endpoint
# (`teacher = "gpt-3.5-turbo"`, `base_url = ""` for OpenAI with `$OPENAI_API_KEY` set in the environment,
# or e.g. `base_url = "http://localhost:8000/v1"` for vLLM/Ollama). The paper's prompt is `metaie-v1`;
# small local teachers follow the format far better with the one-example `metaie-1shot-v1`.
#
# **The shipped set.** The package ships the local Qwen2.5-0.5B teacher's answers for the first news sentences
# of stage 01's seeded sampler (2,017 at present, growing to 3,000) (`metaie_utils/data/distillation/`, with its provenance). With
# `distill_set = "auto"`, a request with the same teacher file, prompt and sampling is replayed from it at zero
# cost (no server, no download) and the notebook says so; anything else asks the teacher.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/metaie-project/metaie/blob/main/notebooks/02_distill_llm.ipynb)

# %% [markdown]
# **Colab or a fresh kernel:** set `INSTALL = True` and run the cell once. It clones the repository and
# installs it into this kernel's Python without replacing Colab's own torch (plus the local teacher's
# server and a small GGUF model; skip those for a remote teacher).

# %%
INSTALL = False  # opt-in
if INSTALL:
    import subprocess, sys  # noqa: E401

    subprocess.run(
        "test -d metaie || git clone -q https://github.com/metaie-project/metaie.git && "
        "cd metaie && METAIE_NO_VENV=1 bash scripts/bootstrap.sh smollm2-135m teacher-server",
        shell=True, check=True,
    )
    sys.path.insert(0, "metaie")

# %%
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pandas as pd
from IPython.display import display

from metaie_utils.core.io import write_jsonl
from metaie_utils.core.runs import start_run, write_json
from metaie_utils.llm.client import build_messages, count_label_lines
from metaie_utils.plots import distill as plots
from metaie_utils.plots import save
from metaie_utils.stages import distill as stage

# %% tags=["parameters"]
run_name = ""                    # empty: timestamp; outputs/02_distill_llm/<run_name>
out_root = "outputs"             # relative to the repository root
overwrite = False                # True replaces a finished run directory
seed = 0                         # any int (sent as the request seed + sample_index)
input_dir = "tests/fixtures/distill/sentences.jsonl"  # 01's run directory or a sentences.jsonl
limit = 3                        # 0: every sentence; N: the first N
teacher = "local:smollm2-135m"   # "local:<smollm2-135m|qwen2.5-0.5b|qwen2.5-1.5b|path.gguf>" | a model name at base_url
base_url = ""                    # remote teachers: empty: OpenAI API; "http://host:port/v1" for vLLM/Ollama/llama.cpp
api_key_env = "OPENAI_API_KEY"   # environment variable with the key (remote teachers; never put a key here)
prompt_version = "metaie-1shot-v1"  # "metaie-v1" (the paper) | "metaie-1shot-v1" | "ner-v1"
n_samples = 1                    # responses per sentence
temperature = 1.0                # the paper: 1.0
max_tokens = 48                  # cap on response tokens
concurrency = 1                  # requests in flight
teacher_parallel = 1             # local server slots (llama-cpp-python serves one at a time; extra requests queue)
n_ctx = 2048                     # local server context (tokens)
max_retries = 6                  # retries per request on 429/5xx/timeouts/dropped connections
request_timeout = 600.0          # seconds per request (local CPU teachers are slow under load; a timeout re-sends the request)
price_per_1k_input = 0.0         # USD per 1k prompt tokens (cost estimate)
price_per_1k_output = 0.0        # USD per 1k completion tokens
distill_set = "auto"             # "auto": replay the shipped set when teacher, prompt and sampling match | "off" | path to a .jsonl.gz

# %%
cfg = stage.DistillConfig.from_namespace(globals())
run = start_run(cfg)
print("run directory:", run.dir)

# %% [markdown]
# ## Ask the teacher (or replay the shipped set)
# Finished responses are committed to `cache.sqlite` one by one: interrupt and re-run this cell (same
# `run_name`) to resume without repeating a request.

# %%
out = stage.run_distill(cfg, run.dir)
rows, sentences = out["rows"], out["sentences"]
print(f"{len(sentences)} sentences; prompt {cfg.prompt_version}; {out['source']}: {out['note']}")
for m in build_messages(cfg.prompt_version, sentences[0]["text"] if sentences else "<sentence>"):
    print(f"[{m['role']}] {m['content']}")
write_jsonl(run.path("responses.jsonl"), rows)
timings = out["timings"]
pd.DataFrame(timings).to_csv(run.path("completions.csv"), index=False)

# %% [markdown]
# ## What came back

# %%
stats = out["stats"]
write_json(run.path("distill_stats.json"), stats)
display(pd.DataFrame([stats]).T.rename(columns={0: "value"}))
display(pd.DataFrame(rows)[["id", "text", "response", "finish_reason", "error"]].head(10))

# %%
save(plots.label_counts([count_label_lines(r["response"]) for r in rows if r["response"] is not None]),
     run.path("label_lines.png"))
if timings:  # a replay of the shipped set asks nobody: no throughput to draw
    save(plots.throughput([t["finished_at"] for t in timings], [t["cached"] for t in timings]), run.path("throughput.png"))
    save(plots.token_usage(timings), run.path("token_usage.png"))

# %%
metrics = {
    "sentences": len(sentences),
    "model": out["model"],
    "source": out["source"],
    "replayed": stats["replayed"],
    "prompt_version": cfg.prompt_version,
    **{k: stats[k] for k in ("responses", "answered", "failed", "no_parsable_line", "label_lines", "parsable_fraction",
                             "requests", "retries", "cache_hits", "prompt_tokens", "completion_tokens", "cost_usd",
                             "elapsed_s", "tokens_per_s")},
    "sentences_per_s": round(stats["completed"] / stats["elapsed_s"], 4) if stats["elapsed_s"] else 0.0,
    "mean_completion_tokens": stats["mean_completion_tokens"],  # per answer asked now or replayed
}
run.finish(metrics)
