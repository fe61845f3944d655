"""Layered, flat, validated parameters.

A run's parameters are one flat mapping built from YAML files applied in order
(``params/defaults.yaml`` first, then each override file, then ``--set key=value`` pairs). Each
notebook stage declares the keys it reads as a pydantic model (a :class:`StageConfig` subclass); the
set of valid keys is the union of all stages' fields. An unknown key, a wrong type or a missing file is
an error that names the file and the key.

>>> p = load_params([], {"seed": 3})           # defaults.yaml + one override
>>> p["seed"]
3
>>> cfg = stage_config("01_sample_corpus", p)   # the stage's validated view  # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import importlib
import re
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from metaie_utils.core.paths import PARAMS_DIR, resolve

# Stage name -> "module:ConfigClass". A stage's notebook is notebooks/<stage>.ipynb; its parameters
# cell holds exactly the fields of its config class (tests/test_notebooks_static.py checks it).
STAGES: dict[str, str] = {
    "01_sample_corpus": "metaie_utils.stages.sample:SampleConfig",
    "02_distill_llm": "metaie_utils.stages.distill:DistillConfig",
    "03_convert_bio": "metaie_utils.stages.convert:ConvertConfig",
    "04_train_meta_model": "metaie_utils.stages.train:TrainConfig",
    "05_fewshot_eval": "metaie_utils.stages.fewshot.loop:EvalConfig",
    "06_ablations": "metaie_utils.stages.ablations:AblationConfig",
}


#: The one place where a notebook's own parameters cell (what runs when the notebook is opened alone, or
#: executed without params) differs from params/defaults.yaml, which the config classes equal
#: (tests/test_params.py). Each entry is a smaller standalone budget; every other parameter of every
#: notebook equals its default (tests/test_notebooks_static.py checks the values, not just the names).
#: Upstream inputs (``input_dir``, ``meta_model``) default to committed fixtures in the config classes.
STANDALONE: dict[str, dict[str, Any]] = {
    "01_sample_corpus": {"max_docs": 300, "n_sentences": 20},  # seconds instead of the whole corpus
    "02_distill_llm": {"limit": 3, "teacher": "local:smollm2-135m", "max_tokens": 48},  # the 98 MB test teacher
    "04_train_meta_model": {"max_length": 64, "meta_batch_size": 4, "meta_grad_accum": 1, "meta_max_steps": 30,
                            "heldout_fraction": 0.2, "eval_steps": 10, "log_steps": 5},  # the authors' 10 instances
    "05_fewshot_eval": {"datasets": ["conll2003"]},  # one dataset, the default recipe (~2 min on CPU)
}


PIPELINE = ["01_sample_corpus", "02_distill_llm", "03_convert_bio", "04_train_meta_model", "05_fewshot_eval"]


class ParamsError(ValueError):
    """A parameter file or value is wrong; the message names the file, the key and the fix."""


class StageConfig(BaseModel):
    """Base of every stage's config: the fields every notebook has.

    Subclasses set ``stage`` and, for each parameter that names an upstream run directory, an entry
    in ``upstream`` (parameter name -> upstream stage). The pipeline runner fills those parameters with
    the upstream stage's run directory of the same run.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=False)

    stage: ClassVar[str] = ""
    upstream: ClassVar[dict[str, str]] = {}
    #: Keys the stage's metrics.json always holds (``Run.finish`` refuses a metrics dict without them), so
    #: downstream readers (stage 06, the README tables) read one spelling instead of guessing.
    metrics_keys: ClassVar[tuple[str, ...]] = ()

    run_name: str = ""  # "" = a timestamp; the run directory is <out_root>/<stage>/<run_name>
    out_root: str = "outputs"  # relative paths resolve from the repository root
    overwrite: bool = False  # True replaces an existing finished run directory
    seed: int = 0

    @classmethod
    def from_namespace(cls, ns: Mapping[str, Any]) -> "StageConfig":
        """Build the config from a notebook's globals (the parameters cell plus papermill's injection)."""
        missing = [k for k in cls.model_fields if k not in ns]
        if missing:
            raise ParamsError(
                f"Notebook for stage {cls.stage} lacks parameters {missing}: its parameters cell must define "
                f"every field of {cls.__name__}."
            )
        try:
            return cls(**{k: ns[k] for k in cls.model_fields})
        except ValidationError as e:
            raise ParamsError(_explain(e, source=f"notebook {cls.stage} parameters")) from None


def stage_class(stage: str) -> type[StageConfig]:
    """The config class of a stage, imported lazily."""
    if stage not in STAGES:
        raise ParamsError(f"Unknown stage {stage!r}; known stages: {', '.join(STAGES)}.")
    mod, _, name = STAGES[stage].partition(":")
    return getattr(importlib.import_module(mod), name)


def available_stages() -> dict[str, type[StageConfig]]:
    """Stages whose module imports (all of them in a complete checkout)."""
    out = {}
    for s in STAGES:
        try:
            out[s] = stage_class(s)
        except (ImportError, AttributeError):
            continue
    return out


def all_fields() -> dict[str, Any]:
    """Union of every stage's fields: key -> pydantic FieldInfo (first stage that declares it)."""
    fields: dict[str, Any] = {}
    for cls in available_stages().values():
        for k, f in cls.model_fields.items():
            fields.setdefault(k, f)
    return fields


def _explain(e: ValidationError, source: str) -> str:
    parts = []
    for err in e.errors():
        key = ".".join(str(x) for x in err["loc"])
        parts.append(f"{source}: key {key!r} = {err.get('input')!r}: {err['msg']}")
    return "; ".join(parts) + ". Fix the value (see the comment next to the key in params/defaults.yaml)."


def read_yaml(path: str | Path) -> dict[str, Any]:
    """One flat params file as a dict, with clear errors for a missing file or a non-flat mapping."""
    p = resolve(path)
    if not p.is_file():
        raise ParamsError(f"Params file {p} does not exist. Available: {', '.join(list_param_files())}.")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ParamsError(f"Params file {p} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ParamsError(f"Params file {p} must be a flat mapping of key: value, got {type(data).__name__}.")
    for k, v in data.items():
        if isinstance(v, dict):
            raise ParamsError(f"Params file {p}: key {k!r} holds a mapping; params are flat (key: value).")
    return data


def list_param_files() -> list[str]:
    return sorted(str(p.relative_to(PARAMS_DIR.parent)) for p in PARAMS_DIR.glob("*.yaml"))


def parse_set(pairs: Iterable[str]) -> dict[str, Any]:
    """``["seed=3", "backbone=mpnet-base", "lr=3e-4"]`` -> ``{"seed": 3, "backbone": "mpnet-base", "lr": 0.0003}``.

    Values are YAML-typed, and ``3e-4``-style numbers (strings in YAML 1.1) become floats.
    """
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ParamsError(f"--set expects key=value, got {pair!r}.")
        k, v = pair.split("=", 1)
        val = yaml.safe_load(v) if v.strip() else ""
        if isinstance(val, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", val.strip()):
            val = float(val)  # YAML 1.1 reads 3e-4 as a string
        out[k.strip()] = val
    return out


def load_params(
    files: Iterable[str | Path] = (), overrides: Mapping[str, Any] | None = None, with_defaults: bool = True
) -> dict[str, Any]:
    """Layer ``defaults.yaml``, then ``files`` in order, then ``overrides``; validate every key and type.

    Returns the flat resolved mapping. Raises :class:`ParamsError` naming the file and key on an unknown
    key (with the closest known key), a wrong type, or a missing file.
    """
    known = all_fields()
    layers: list[tuple[str, dict[str, Any]]] = []
    if with_defaults:
        layers.append((str(PARAMS_DIR / "defaults.yaml"), read_yaml(PARAMS_DIR / "defaults.yaml")))
    for f in files:
        if with_defaults and resolve(f) == PARAMS_DIR / "defaults.yaml":
            continue
        layers.append((str(resolve(f)), read_yaml(f)))
    if overrides:
        layers.append(("--set", dict(overrides)))
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for src, data in layers:
        for k, v in data.items():
            if k not in known:
                close = difflib.get_close_matches(k, known, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ParamsError(f"{src}: unknown parameter {k!r}.{hint} Known parameters are listed in params/defaults.yaml.")
            merged[k] = v
            origin[k] = src
    # Type-check every key through each stage that reads it.
    for cls in available_stages().values():
        sub = {k: v for k, v in merged.items() if k in cls.model_fields}
        try:
            cls(**sub)
        except ValidationError as e:
            msgs = []
            for err in e.errors():
                key = str(err["loc"][0]) if err["loc"] else "?"
                msgs.append(f"{origin.get(key, 'defaults')}: key {key!r} = {err.get('input')!r}: {err['msg']}")
            raise ParamsError("; ".join(msgs) + f" (stage {cls.stage}).") from None
    return merged


def stage_params(stage: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of a flat params mapping that a stage's notebook declares."""
    cls = stage_class(stage)
    return {k: v for k, v in params.items() if k in cls.model_fields}


def stage_config(stage: str, params: Mapping[str, Any]) -> StageConfig:
    """A stage's validated config from a flat params mapping (missing keys take the class defaults)."""
    cls = stage_class(stage)
    try:
        return cls(**stage_params(stage, params))
    except ValidationError as e:
        raise ParamsError(_explain(e, source=f"stage {stage}")) from None


class TemplateConfig(StageConfig):
    """Config of ``notebooks/00_template``: the common fields only. Copy it when adding a stage."""

    stage: ClassVar[str] = "00_template"


# Few-shot recipe strings ("lr=0.0003;max_steps=300;...", stage 05's results rows): read by stage 05's resume
# check and by the ablations' notes on a baseline fine-tuned under another recipe.


def recipe_differences(recorded: str, current: str) -> dict[str, tuple[str, str]]:
    """Keys whose values differ between two recipe strings, over the keys both name (a key added to the recipe
    after a results file was written, such as ``precision``, is not a difference).

    >>> recipe_differences("lr=0.0003;neg_share=0.0", "lr=0.0003;neg_share=0.5;precision=auto")
    {'neg_share': ('0.0', '0.5')}
    >>> recipe_differences("lr=0.0003;max_steps=300", "lr=0.0003;max_steps=300;precision=auto")
    {}
    """
    def parse(s: str) -> dict[str, str]:
        return dict(kv.split("=", 1) for kv in s.split(";") if "=" in kv)

    a, b = parse(recorded), parse(current)
    return {k: (a[k], b[k]) for k in a if k in b and a[k] != b[k]}


def recorded_recipe(row: Mapping[str, Any]) -> str:
    """A results row's recipe string, with a recorded ``precision=auto`` (rows written before ``auto`` was
    resolved into the recipe) replaced by the precision the row's fine-tune ran in (``train_precision``), or
    dropped when the row does not say; a row written before ``min_epochs`` existed ran without it
    (``min_epochs=0``).

    >>> recorded_recipe({"recipe": "lr=0.0003;precision=auto", "train_precision": "fp32"})
    'lr=0.0003;precision=fp32;min_epochs=0'
    >>> recorded_recipe({"recipe": "lr=0.0003;precision=auto"})
    'lr=0.0003;min_epochs=0'
    >>> recorded_recipe({"recipe": "lr=0.0003;min_epochs=3.0"})
    'lr=0.0003;min_epochs=3.0'
    """
    parts = [kv for kv in str(row.get("recipe") or "").split(";") if kv]
    out = []
    for kv in parts:
        if kv == "precision=auto":
            tp = str(row.get("train_precision") or "").strip()
            if tp:
                out.append(f"precision={tp}")
            continue
        out.append(kv)
    if out and not any(kv.startswith("min_epochs=") for kv in out):
        out.append("min_epochs=0")
    return ";".join(out)
