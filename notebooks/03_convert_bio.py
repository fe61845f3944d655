# %% [markdown]
# # 03 · Convert teacher responses to BIO instances
#
# **Inputs -> outputs.** Stage 02's `responses.jsonl` (the teacher's `- <label>: <span>` lines per sentence;
# standalone default: an offline fixture rebuilt from the authors' reference files plus hand-written messy
# responses) -> `outputs/03_convert_bio/<run_name>/` with `instances.json` (the authors' format:
# `words = label words + [":"] + sentence words`, `ner = O-prefix + B/I/O`), `heldout.json` (held-out
# sentences for span F1 in stage 04), `label_stats.csv`, figures and `metrics.json`.
#
# Two parsers: `reference` reproduces the authors' regex parser tag for tag; `robust` (default) also reads
# numbered/bulleted lists, markdown, labels with a colon, quoted spans, parenthetical notes and "and" lists,
# merges duplicate labels, resolves overlapping spans (longer wins, then earlier) and counts every answer
# that is not in the sentence.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/metaie-project/metaie/blob/main/notebooks/03_convert_bio.ipynb)

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
from collections import Counter

import pandas as pd
from IPython.display import display

from metaie_utils.core.bio import split_instance
from metaie_utils.llm import label_to_span as l2s
from metaie_utils.stages import convert as stage
from metaie_utils.plots import convert as plots
from metaie_utils.plots import save
from metaie_utils.core.runs import start_run, write_json

# %% tags=["parameters"]
run_name = ""                 # empty string: timestamp; outputs/03_convert_bio/<run_name>
out_root = "outputs"          # relative to the repository root
overwrite = False             # True replaces a finished run directory
seed = 0                      # any int: sentence/instance subsamples and the held-out split
input_dir = "tests/fixtures/convert/responses.jsonl"  # 02's run directory or a responses.jsonl
parse_mode = "robust"         # "robust" | "reference" (the authors' parser, tag for tag)
label_normalization = "clean" # "none" | "clean" (markdown, quotes, spaces; inner ": " -> " - ") | "lower"
min_label_freq = 1            # non-negative int: drop labels with fewer instances (0 or 1: keep all)
max_labels_per_sentence = 0   # non-negative int: first N labels of a sentence (0: all)
negatives = False             # True: labels whose spans were all not found become all-O instances
heldout_fraction = 0.05       # float in [0, 0.5]: share of sentences in heldout.json
label_subset = "all"          # "all" | "top_k" | "ner_types" (label-distribution ablation)
label_top_k = 100             # non-negative int: K for label_subset "top_k"
max_instances = 0             # non-negative int: seeded subsample of instances (0: all)
max_sentences = 0             # non-negative int: seeded subsample of source sentences (0: all)

# %%
cfg = stage.ConvertConfig.from_namespace(globals())
run = start_run(cfg)
print("run directory:", run.dir)

# %% [markdown]
# ## Read the teacher's responses
# Lines that are not UTF-8, not JSON, or lack a sentence are skipped and counted (never a crash).

# %%
stats = Counter()
rows = list(l2s.read_responses(cfg.input_dir, stats))
print(f"{len(rows)} response rows from {cfg.input_dir}")
display(pd.DataFrame(rows)[["id", "sample_index", "text", "response"]].head(5))

# %% [markdown]
# ## Parse, match and build instances
# One example first: a response, what the parser made of each label, and the BIO instance.

# %%
example = next((r for r in rows if r.get("response")), None)
if example is not None:
    words = l2s.word_tokenize(example["text"])
    print(example["response"])
    if cfg.parse_mode == "robust":
        for pl in l2s.parse_robust(words, example["response"], cfg.label_normalization):
            print(f"{pl.label!r:>24} -> {[' '.join(words[s:e]) for s, e in pl.spans]} "
                  f"({', '.join(m.how for m in pl.matches)})")
    else:
        for inst in l2s.parse_reference(example["text"], example["response"]):
            lw, sw, tags = split_instance(inst)
            print(f"{' '.join(lw)!r:>24} -> {[s['text'] for s in l2s.decode(sw, tags)]}")

# %%
result = l2s.convert_responses(rows, cfg, stats)
paths = stage.write_outputs(result, run.dir)
metrics = result.metrics
print({k: metrics[k] for k in ["sentences", "instances", "train_instances", "heldout_instances", "distinct_labels"]})
if result.instances:
    first = result.instances[0]
    display(pd.DataFrame({"word": first["words"], "tag": first["ner"]}).T)

# %% [markdown]
# ## What was skipped, and how answers matched

# %%
display(pd.Series({k: v for k, v in metrics.items()
                   if k.startswith(("skipped_", "dropped_", "duplicate_", "labels_without", "spans_dropped", "negative_"))},
                  name="count", dtype="int64"))
fig = plots.match_rates(metrics)
save(fig, run.path("match_rates.png"))

# %% [markdown]
# ## Labels: the most frequent, rank-frequency (log-log), length categories (the paper's Table 1)

# %%
label_stats = pd.DataFrame(result.label_stats)
display(label_stats.head(20))
fig = plots.label_rank_frequency(result.label_stats)
save(fig, run.path("label_rank_frequency.png"))
fig = plots.label_length_categories(result.label_stats)
save(fig, run.path("label_length_categories.png"))
fig = plots.span_lengths(result.span_lengths)
save(fig, run.path("span_lengths.png"))

# %% [markdown]
# ## The inverse: BIO back to spans with character offsets (what the extraction module uses)

# %%
if result.instances:
    lw, sw, tags = split_instance(result.instances[0])
    display(pd.DataFrame(l2s.decode(sw, tags, label=" ".join(lw))))

# %%
write_json(run.path("convert_stats.json"), dict(stats))
run.finish(metrics)
