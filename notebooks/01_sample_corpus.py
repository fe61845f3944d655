# %% [markdown]
# # 01 · Sample the sentences the teacher will annotate
#
# **Inputs -> outputs.** A corpus (default: the packaged offline news corpus; the paper used OpenWebText,
# `corpus = "hf:Skylion007/openwebtext"` streams it with `datasets`; or your own .txt/.jsonl/.csv) ->
# `outputs/01_sample_corpus/<run_name>/` with `sentences.jsonl` (`id`, `text`, `source`, `doc_id`),
# `sample_stats.json` (counts per filter), `length_histogram.csv`, a figure and `metrics.json`.
#
# As in the paper, only the FIRST sentence of each paragraph is kept (diverse, no dangling coreference).
# Sentences with mojibake, non-text, a word count outside `[min_words, max_words]` or a normalized
# duplicate are dropped and counted; then `n_sentences` are sampled with a seeded, prefix-stable bottom-k sample.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/metaie-project/metaie/blob/main/notebooks/01_sample_corpus.ipynb)

# %% [markdown]
# **Colab or a fresh kernel:** set `INSTALL = True` and run the cell once. It clones the repository and
# installs it into this kernel's Python without replacing Colab's own torch.

# %%
INSTALL = False  # opt-in
if INSTALL:
    import subprocess, sys  # noqa: E401

    subprocess.run(
        "test -d metaie || git clone -q https://github.com/metaie-project/metaie.git && "
        "cd metaie && METAIE_NO_VENV=1 bash scripts/bootstrap.sh news",
        shell=True, check=True,
    )
    sys.path.insert(0, "metaie")

# %%
import pandas as pd
from IPython.display import display

from metaie_utils.stages import sample as sampling
from metaie_utils.plots import distill as plots
from metaie_utils.plots import save
from metaie_utils.core.runs import start_run, write_json

# %% tags=["parameters"]
run_name = ""            # empty: timestamp; outputs/01_sample_corpus/<run_name>
out_root = "outputs"     # relative to the repository root
overwrite = False        # True replaces a finished run directory
seed = 0                 # any int: the sample
corpus = "news"          # "news" | "hf:<dataset>[:<config>]" (e.g. "hf:Skylion007/openwebtext") | path to .txt/.jsonl/.csv/.zip
text_field = "text"      # column/key holding the text (hf, .jsonl, .csv)
hf_split = "train"       # split of a hf: dataset
max_docs = 300           # 0: every document; N: stop after N documents
sentence_mode = "first"  # "first" (the paper) | "all"
n_sentences = 20         # sentences to sample; 0: all that pass the filters
min_words = 5            # shortest sentence kept (words)
max_words = 60           # longest sentence kept (words)
dedup = True             # drop normalized duplicates

# %%
cfg = sampling.SampleConfig.from_namespace(globals())
run = start_run(cfg)
print("run directory:", run.dir)

# %% [markdown]
# ## Read, split, filter and sample

# %%
rows, stats = sampling.sample_corpus(cfg)
sampling.write_sentences(rows, run.path("sentences.jsonl"))
counts = stats.as_dict()
write_json(run.path("sample_stats.json"), counts)
display(pd.DataFrame([counts]).T.rename(columns={0: "count"}))

# %% [markdown]
# ## What was sampled

# %%
lengths = sampling.word_lengths(rows)
hist = pd.DataFrame(sampling.length_histogram(lengths))
hist.to_csv(run.path("length_histogram.csv"), index=False)
display(pd.DataFrame(rows).head(10))
fig = plots.sentence_lengths(lengths)
save(fig, run.path("sentence_lengths.png"))

# %%
metrics = {
    **counts,
    "mean_words": round(sum(lengths) / len(lengths), 2),
    "max_words_seen": max(lengths),
}
run.finish(metrics)
