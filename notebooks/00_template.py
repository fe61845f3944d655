# %% [markdown]
# # 00 · Template for a new stage
#
# **Inputs -> outputs.** Nothing -> a run directory `outputs/00_template/<run_name>/` with `manifest.json` and
# `metrics.json`. Copy this notebook to add a stage: keep the cell order (setup, ONE `parameters` cell,
# config, work, results) and put every transform in `metaie_utils`.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/metaie-project/metaie/blob/main/notebooks/00_template.ipynb)

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
from metaie_utils.core.params import TemplateConfig
from metaie_utils.core.runs import start_run

# %% tags=["parameters"]
run_name = ""      # empty: a timestamp; outputs/00_template/<run_name>
out_root = "outputs"  # relative to the repository root
overwrite = False  # True replaces a finished run directory
seed = 0           # any int

# %%
cfg = TemplateConfig.from_namespace(globals())
run = start_run(cfg)
print("run directory:", run.dir)

# %%
run.finish({"ok": 1})
