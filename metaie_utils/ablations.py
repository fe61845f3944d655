"""Stage 06: ablation sweeps, from spec validation to the tables the notebook draws.

A sweep spec (``params/sweeps/*.yaml``, format in docs/ARCHITECTURE.md "Sweeps") is validated by
:func:`validate_sweep_spec` and expanded by :func:`expand_sweep` into :class:`Point` s, one per run.
``python -m metaie_utils sweep SPEC`` (metaie_utils/pipeline.py) executes the points; this module then
reads ``outputs/sweeps/<name>/sweep.json`` and every point's ``metrics.json`` into tidy tables.

Run names
---------
A point's run name is ``"<sweep name>--k=v,k=v"`` over the keys that vary (grid keys in spec order,
then the keys of the explicit point in their order; ``set`` keys are fixed and left out). Values are
made filesystem-safe: ``true``/``false``/``none`` for booleans and null, numbers as written, and every
character outside ``[A-Za-z0-9._+-]`` replaced by ``_`` (so ``FacebookAI/roberta-large`` becomes
``FacebookAI_roberta-large``). A name longer than 150 characters is cut and suffixed with an 8-digit
hash of the full name. A spec with a single point and nothing varying gets the bare sweep name.

>>> spec = validate_sweep_spec({"name": "size", "stages": ["04_train_meta_model"],
...     "grid": {"seed": [0, 1]}, "points": [{"backbone": "minilm-l6", "num_layers": 0}]}, known_keys=None)
>>> [p.run_name for p in expand_sweep(spec)]
['size--seed=0,backbone=minilm-l6,num_layers=0', 'size--seed=1,backbone=minilm-l6,num_layers=0']
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping, NamedTuple

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .params import PIPELINE, STAGES, ParamsError, StageConfig, all_fields, available_stages
from .paths import PARAMS_DIR, resolve

SWEEPS_DIR = PARAMS_DIR / "sweeps"
SWEEP_RECORD = "sweep.json"
# Keys a sweep must not vary or set: the runner owns them.
RUNNER_KEYS = frozenset({"run_name", "out_root", "overwrite"})
MAX_RUN_NAME = 150
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class SweepSpecError(ParamsError):
    """A sweep spec is malformed (unknown key, empty grid, unknown stage or parameter, name clash)."""


# ----------------------------------------------------------------------------------------------------
# Spec validation and expansion (used by metaie_utils.pipeline)
# ----------------------------------------------------------------------------------------------------


class SweepSpec(BaseModel):
    """A validated sweep spec. Every field mirrors a top-level key of the YAML file; others are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str  # sweep name, also the prefix of every run name: letters, digits, . _ -
    description: str = ""  # one line
    params: list[str] = Field(default_factory=list)  # params layers applied over defaults.yaml, in order
    set: dict[str, Any] = Field(default_factory=dict)  # fixed overrides for every point
    reuse: dict[str, str] = Field(default_factory=dict)  # upstream stage -> existing run name
    stages: list[str]  # stages executed per point, in pipeline order
    grid: dict[str, list[Any]] = Field(default_factory=dict)  # cartesian product over these values
    points: list[dict[str, Any]] = Field(default_factory=list)  # zipped settings, crossed with the grid

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not _NAME_RE.match(v) or "--" in v:
            raise ValueError(
                f"sweep name {v!r} must start with a letter or digit and hold only letters, digits, '.', '_' "
                f"and single '-' (it prefixes run directory names), e.g. 'model_size_cpu'"
            )
        return v

    @field_validator("stages")
    @classmethod
    def _stages_ok(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("stages is empty: list the stages each point runs, e.g. [04_train_meta_model, 05_fewshot_eval]")
        unknown = [s for s in v if s not in STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; known stages: {list(STAGES)}")
        if len(set(v)) != len(v):
            raise ValueError(f"stages {v} lists a stage twice")
        order = [s for s in STAGES if s in v]
        if order != v:
            raise ValueError(f"stages {v} are out of pipeline order; write them as {order}")
        return v

    @field_validator("reuse")
    @classmethod
    def _reuse_ok(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = [s for s in v if s not in STAGES]
        if unknown:
            raise ValueError(f"reuse names unknown stage(s) {unknown}; known stages: {list(STAGES)}")
        empty = [s for s, r in v.items() if not isinstance(r, str) or not r.strip()]
        if empty:
            raise ValueError(f"reuse of {empty} needs an existing run name (outputs/<stage>/<run_name>), got an empty value")
        return v

    @field_validator("grid")
    @classmethod
    def _grid_ok(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for k, vals in v.items():
            if not vals:
                raise ValueError(f"grid key {k!r} has an empty list of values: give at least one value or drop the key")
            if len({json.dumps(x, sort_keys=True, default=str) for x in vals}) != len(vals):
                raise ValueError(f"grid key {k!r} repeats a value in {vals}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "SweepSpec":
        if not self.grid and not self.points:
            raise ValueError("the sweep has an empty grid and no points: nothing to run. Add `grid: {key: [values]}` or `points: [{key: value}]`")
        if any(not p for p in self.points):
            raise ValueError("points holds an empty mapping {}; every point must set at least one key")
        clash = sorted(set(self.reuse) & set(self.stages))
        if clash:
            raise ValueError(f"stage(s) {clash} are both reused and executed; drop them from `reuse` or from `stages`")
        first = min(PIPELINE.index(s) if s in PIPELINE else len(PIPELINE) for s in self.stages)
        late = [s for s in self.reuse if s in PIPELINE and PIPELINE.index(s) >= first]
        if late:
            raise ValueError(f"reused stage(s) {late} come after the first executed stage {self.stages[0]}; reuse only upstream stages")
        point_keys = {k for p in self.points for k in p}
        for label, keys in (("grid", set(self.grid)), ("set", set(self.set)), ("points", point_keys)):
            bad = sorted(keys & RUNNER_KEYS)
            if bad:
                raise ValueError(f"{label} sets {bad}, which the sweep runner owns (run names come from the spec)")
        for a, b, ka, kb in (("grid", "points", set(self.grid), point_keys), ("set", "grid", set(self.set), set(self.grid)),
                             ("set", "points", set(self.set), point_keys)):
            both = sorted(ka & kb)
            if both:
                raise ValueError(f"key(s) {both} appear in both `{a}` and `{b}`; a key is either fixed or varied in one place")
        return self

    def varied_keys(self) -> list[str]:
        """Keys that differ between points: grid keys in order, then the points' keys in first-seen order."""
        keys = list(self.grid)
        for p in self.points:
            keys += [k for k in p if k not in keys]
        return keys

    def fingerprint(self) -> str:
        """A short hash of what defines the runs (params, set, reuse, stages, grid, points; not the description)."""
        core = self.model_dump(exclude={"description"})
        return hashlib.sha1(json.dumps(core, sort_keys=True, default=str).encode()).hexdigest()[:12]


class Point(NamedTuple):
    """One run of a sweep: its run name (the same in every executed stage) and its flat overrides
    (``set`` merged with the grid values and the explicit point)."""

    run_name: str
    overrides: dict[str, Any]


def _format_error(e: ValidationError, source: str) -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "spec"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = (f"unknown key {loc!r}; a sweep spec has only the keys "
                   f"{list(SweepSpec.model_fields)} (see docs/ARCHITECTURE.md 'Sweeps')")
            parts.append(f"{source}: {msg}")
            continue
        if err["type"] == "missing":
            msg = f"missing required key {loc!r}"
            parts.append(f"{source}: {msg}")
            continue
        parts.append(f"{source}: {loc}: {msg}" if loc != "spec" else f"{source}: {msg}")
    return "; ".join(parts) + "."


def validate_sweep_spec(
    data: Mapping[str, Any], known_keys: Iterable[str] | None | str = "auto", source: str = "sweep spec"
) -> SweepSpec:
    """A raw spec mapping (the parsed YAML) -> a validated :class:`SweepSpec`, or :class:`SweepSpecError`.

    ``known_keys``: the parameter names that ``set``/``grid``/``points`` may use. ``"auto"`` = the union
    of every stage's config fields (checked only when every stage module imports, so a partial checkout
    does not reject valid keys); ``None`` = no check.

    >>> validate_sweep_spec({"name": "x", "stages": ["04_train_meta_model"], "grid": {}}, None)
    Traceback (most recent call last):
    ...
    metaie_utils.ablations.SweepSpecError: sweep spec: the sweep has an empty grid and no points: nothing to run. ...
    """
    if not isinstance(data, Mapping):
        raise SweepSpecError(f"{source}: a sweep spec is a mapping with keys {list(SweepSpec.model_fields)}, got {type(data).__name__}.")
    try:
        spec = SweepSpec.model_validate(dict(data))
    except ValidationError as e:
        raise SweepSpecError(_format_error(e, source)) from None
    if known_keys == "auto":
        known_keys = list(all_fields()) if len(available_stages()) == len(STAGES) else None
    if known_keys is not None:
        known = set(known_keys)
        used = list(spec.set) + spec.varied_keys()
        unknown = [k for k in used if k not in known]
        if unknown:
            import difflib

            hints = [f"{k!r}" + (f" (did you mean {c[0]!r}?)" if (c := difflib.get_close_matches(k, known, n=1)) else "")
                     for k in unknown]
            raise SweepSpecError(f"{source}: unknown parameter(s) {', '.join(hints)}; parameters are listed in params/defaults.yaml.")
    return spec


def load_sweep_spec(path_or_name: str | Path, known_keys: Iterable[str] | None | str = "auto") -> SweepSpec:
    """A spec file (path, or bare name looked up in params/sweeps/) -> validated :class:`SweepSpec`.

    ``"model_size_cpu"`` -> ``params/sweeps/model_size_cpu.yaml``.
    """
    p = sweep_spec_path(path_or_name)
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise SweepSpecError(f"sweep spec {p} is not valid YAML: {e}") from None
    return validate_sweep_spec(data or {}, known_keys=known_keys, source=f"sweep spec {p}")


def sweep_spec_path(path_or_name: str | Path) -> Path:
    """Resolve a spec argument: an existing path (absolute or from the repo root), else params/sweeps/<name>.yaml."""
    p = resolve(path_or_name)
    if p.is_file():
        return p
    cand = SWEEPS_DIR / f"{Path(str(path_or_name)).name.removesuffix('.yaml')}.yaml"
    if cand.is_file():
        return cand
    avail = ", ".join(sorted(x.stem for x in SWEEPS_DIR.glob("*.yaml"))) or "none"
    raise SweepSpecError(f"sweep spec {path_or_name!r} not found (looked at {p} and {cand}). Available in params/sweeps: {avail}.")


def safe_value(v: Any) -> str:
    """A parameter value as a filesystem-safe run-name fragment.

    >>> [safe_value(x) for x in (True, None, 0.5, 1000, "FacebookAI/roberta-large", "a b")]
    ['true', 'none', '0.5', '1000', 'FacebookAI_roberta-large', 'a_b']
    """
    if isinstance(v, bool):
        s = "true" if v else "false"
    elif v is None:
        s = "none"
    elif isinstance(v, (int, float, str)):
        s = str(v)
    else:
        s = json.dumps(v, sort_keys=True, separators=(",", ":"), default=str)
    s = _UNSAFE.sub("_", s)
    return s or "_"


def point_run_name(sweep_name: str, varied: Mapping[str, Any]) -> str:
    """``("size", {"backbone": "mpnet-base", "num_layers": 3})`` -> ``"size--backbone=mpnet-base,num_layers=3"``."""
    if not varied:
        return sweep_name
    name = f"{sweep_name}--" + ",".join(f"{_UNSAFE.sub('_', k)}={safe_value(v)}" for k, v in varied.items())
    if len(name) > MAX_RUN_NAME:
        h = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = name[: MAX_RUN_NAME - 9] + "~" + h
    return name


def expand_sweep(spec: SweepSpec | Mapping[str, Any]) -> list[Point]:
    """A spec -> its points, grid-major: for each grid combination (cartesian, spec key order), each point.

    The overrides of a point are ``set`` | grid values | the explicit point. Raises
    :class:`SweepSpecError` when two points get the same run name (e.g. values that differ only in
    characters made filesystem-safe).

    >>> spec = validate_sweep_spec({"name": "ds", "stages": ["04_train_meta_model"], "set": {"epochs": 1},
    ...     "grid": {"max_sentences": [0, 100]}}, known_keys=None)
    >>> expand_sweep(spec)[1]
    Point(run_name='ds--max_sentences=100', overrides={'epochs': 1, 'max_sentences': 100})
    """
    if not isinstance(spec, SweepSpec):
        spec = validate_sweep_spec(spec)
    keys = list(spec.grid)
    combos = list(itertools.product(*(spec.grid[k] for k in keys))) if keys else [()]
    extra = spec.points or [{}]
    out: list[Point] = []
    seen: dict[str, dict[str, Any]] = {}
    for combo in combos:
        for pt in extra:
            varied = {**dict(zip(keys, combo)), **pt}
            name = point_run_name(spec.name, varied)
            if name in seen:
                raise SweepSpecError(
                    f"sweep {spec.name!r}: points {seen[name]} and {varied} both map to run name {name!r}; "
                    f"make the values differ in letters or digits, or drop the duplicate point."
                )
            seen[name] = varied
            out.append(Point(name, {**spec.set, **varied}))
    return out


def check_compatible_record(spec: SweepSpec, record: Mapping[str, Any], where: str = "sweep.json") -> None:
    """Refuse to continue a sweep whose existing ``sweep.json`` came from a different spec.

    Compares what defines the runs (params, set, reuse, stages, grid, points); a changed description
    is fine. Raises :class:`SweepSpecError` naming the differing keys and the fix.
    """
    old = record.get("spec")
    if not isinstance(old, Mapping):
        raise SweepSpecError(f"{where} has no 'spec' entry: it was not written by `python -m metaie_utils sweep`. Move it away or pick another sweep name.")
    new = spec.model_dump()
    diff = [k for k in new if k != "description" and json.dumps(old.get(k), sort_keys=True, default=str)
            != json.dumps(new[k], sort_keys=True, default=str)]
    if diff:
        raise SweepSpecError(
            f"{where} records sweep {spec.name!r} with a different spec (keys {diff} differ), so its run directories "
            f"do not match this spec. Rename the sweep (`name:`) for the new grid, or delete outputs/sweeps/{spec.name} "
            f"and its run directories to start over."
        )


def check_run_matches(run_dir: Path, overrides: Mapping[str, Any]) -> None:
    """Refuse a run directory whose manifest params contradict the point's overrides.

    Only keys the run's stage declares are compared (a training run has no ``max_sentences``).
    A directory without a manifest passes (nothing started there yet).
    """
    mf = Path(run_dir) / "manifest.json"
    if not mf.is_file():
        return
    try:
        params = json.loads(mf.read_text()).get("params", {})
    except json.JSONDecodeError as e:
        raise SweepSpecError(f"{mf} is not valid JSON ({e}); delete the run directory {run_dir} to re-run it.") from None
    bad = {k: (params[k], v) for k, v in overrides.items() if k in params and params[k] != v}
    if bad:
        detail = ", ".join(f"{k}: run has {a!r}, spec wants {b!r}" for k, (a, b) in bad.items())
        raise SweepSpecError(
            f"run directory {run_dir} was made with different parameters ({detail}): it belongs to an incompatible "
            f"spec. Rename the sweep, or delete that run directory to re-run the point."
        )


# ----------------------------------------------------------------------------------------------------
# Stage 06 config
# ----------------------------------------------------------------------------------------------------


class AblationConfig(StageConfig):
    """Stage 06: read finished sweeps and draw the ablation figures and tables."""

    stage: ClassVar[str] = "06_ablations"

    sweeps: list[str] = Field(default_factory=list)  # sweep names or spec paths; [] = every sweep under <out_root>/sweeps
    metric: str = "f1"  # the few-shot metric plotted: f1 | precision | recall
