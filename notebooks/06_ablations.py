# %% [markdown]
# # 06 · Ablations: student size, distillation data size, architecture, label distribution
#
# **Inputs -> outputs.** Finished sweeps (`outputs/sweeps/<name>/sweep.json`, written by
# `python -m metaie_utils sweep params/sweeps/<name>.yaml`) and each of their runs' `metrics.json` ->
# a run directory `outputs/06_ablations/<run_name>/` with one table (CSV) and figures (PNG) per sweep,
# `ablations.csv` (every score of every point) and `metrics.json`.
#
# The paper's ablations (section 5): bigger students transfer better; a threshold amount of distilled
# data is needed before the meta-understanding appears; sequence labeling beats generating the spans;
# the long-tailed, diverse label set is what makes the meta-model general. This notebook reads only
# recorded metrics, so it re-draws in seconds and never trains anything.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/metaie-project/metaie/blob/main/notebooks/06_ablations.ipynb)

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
import matplotlib

matplotlib.use("Agg")  # figures are saved; inline display still works in Jupyter through display(fig)
import pandas as pd
from IPython.display import Markdown, display

from metaie_utils.stages import ablations
from metaie_utils.stages.ablations import AblationConfig
from metaie_utils.plots import save
from metaie_utils.plots import ablations as plots
from metaie_utils.core.runs import start_run

# %% tags=["parameters"]
run_name = ""         # "": a timestamp; outputs/06_ablations/<run_name>
out_root = "outputs"  # relative to the repository root; sweeps are read from <out_root>/sweeps
overwrite = False     # True replaces a finished run directory
seed = 0              # any int (nothing random here)
sweeps = []           # sweep names or spec paths, e.g. ["model_size_cpu", "params/sweeps/data_size_cpu.yaml"]; []: every recorded sweep
metric = "f1"         # "f1" | "precision" | "recall"
baseline_run = "cpu"  # the stage-05 run (<out_root>/05_fewshot_eval/NAME) whose vanilla pairs with sweeps that run none (empty: none)

# %%
cfg = AblationConfig.from_namespace(globals())
run = start_run(cfg)
print("run directory:", run.dir)

# %% [markdown]
# ## Recorded sweeps
# Each point of a sweep is one run of stages 04-05 (or 03-05) named `<sweep>--k=v,k=v`. A point whose
# stage-05 `metrics.json` is missing (not run yet, or cut off) is listed but draws nothing.

# %%
results = ablations.load_sweeps(cfg.sweeps, cfg.out_root)
not_started = ablations.missing_sweeps(cfg.sweeps, cfg.out_root)
if not_started:
    display(Markdown(f"Not recorded yet (run `python -m metaie_utils sweep params/sweeps/NAME.yaml`): {', '.join(not_started)}"))
if not results:
    display(Markdown("**" + ablations.no_sweeps_message(cfg.out_root).replace("\n", "  \n") + "**"))
for res in results:
    display(Markdown(f"### {res.name} ({res.kind}): {res.n_finished}/{len(res.points)} points finished, "
                     f"{res.wall_seconds / 60:.1f} min of stage wall time  \n{res.spec.get('description', '')}"))
    display(ablations.points_table(res))

# %% [markdown]
# ## Tables and figures per ablation
# Cells are `mean ± std` in %: the mean over points that differ only in `seed`, else the few-shot
# seeds' std of stage 05. Model-size sweeps add F1 against parameters (log x); data-size sweeps add F1
# against distilled sentences (symlog x; 0 sentences = the vanilla initialization, i.e. no meta-training,
# with the same few-shot protocol and seeds).

# %%
all_scores = []
for res in results:
    if not len(res.scores):
        display(Markdown(f"*{res.name}: no finished point yet.*"))
        continue
    all_scores.append(res.scores.assign(sweep=res.name, kind=res.kind))
    table = ablations.ablation_table(res.scores, cfg.metric)
    table.to_csv(run.path(f"{res.name}/table.csv"))
    display(Markdown(f"#### {res.name}"))
    display(table)
    for stem, fig in plots.figures_for(res, cfg.metric).items():
        save(fig, run.path(f"{res.name}/{stem}.png"))
        display(fig)
    # each point against vanilla, paired over the same support sets and test sentences (issue 17, item 3)
    baseline_run = ablations.resolve_baseline_run(cfg.baseline_run, cfg.out_root)  # outputs/, else docs/results/
    intervals = ablations.sweep_intervals(res, baseline_run=baseline_run)
    if len(intervals):
        intervals.to_csv(run.path(f"{res.name}/intervals.csv"), index=False)
        display(Markdown(f"{res.name}: each point − vanilla, F1 points with the 95% paired bootstrap interval"))
        display(ablations.interval_table(intervals))
        fig = plots.interval_figure(intervals, title=f"{res.name}: each point against vanilla")
        save(fig, run.path(f"{res.name}/intervals.png"))
        display(fig)

# %%
scores = pd.concat(all_scores, ignore_index=True) if all_scores else pd.DataFrame()
scores.to_csv(run.path("ablations.csv"), index=False)
metrics = ablations.ablation_metrics(results, cfg.metric)
metrics

# %%
run.finish(metrics)
