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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping, NamedTuple, Sequence

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from metaie_utils.core.metrics import aggregate_scores, data_size_curve  # noqa: F401  (re-exported)
from metaie_utils.core.params import (
    PIPELINE,
    STAGES,
    ParamsError,
    StageConfig,
    all_fields,
    available_stages,
    recipe_differences,
    recorded_recipe,
)
from metaie_utils.core.paths import PARAMS_DIR, resolve

SWEEPS_DIR = PARAMS_DIR / "sweeps"


SWEEP_RECORD = "sweep.json"


# Keys a sweep must not vary or set: the runner owns them.
RUNNER_KEYS = frozenset({"run_name", "out_root", "overwrite"})


MAX_RUN_NAME = 150


_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class SweepSpecError(ParamsError):
    """A sweep spec is malformed (unknown key, empty grid, unknown stage or parameter, name clash)."""


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
    metaie_utils.stages.ablations.SweepSpecError: sweep spec: the sweep has an empty grid and no points: nothing to run. ...
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


def check_compatible_record(spec: SweepSpec, record: Mapping[str, Any], where: str = "sweep.json",
                            extendable: Iterable[str] = ()) -> None:
    """Refuse to continue a sweep whose existing ``sweep.json`` came from a different spec.

    Compares what defines the runs (params, set, reuse, stages, grid, points); a changed description
    is fine, and so is a ``set`` list of an ``extendable`` key (stage 05's datasets, initializations) that
    now holds more items than recorded (its finished points are extended, as ``run`` extends a finished run),
    and a ``points`` list that keeps every recorded point and adds more (each point has its own run directory).
    Raises :class:`SweepSpecError` naming the differing keys and the fix.
    """
    old = record.get("spec")
    if not isinstance(old, Mapping):
        raise SweepSpecError(f"{where} has no 'spec' entry: it was not written by `python -m metaie_utils sweep`. Move it away or pick another sweep name.")
    try:  # a record written from the raw YAML lacks the defaults: normalise it through the model
        old = validate_sweep_spec(old, known_keys=None).model_dump()
    except SweepSpecError:
        pass
    new = spec.model_dump()
    def same(a: Any, b: Any) -> bool:
        return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)

    diff = [k for k in new if k != "description" and not same(old.get(k), new[k])]
    if "set" in diff and isinstance(old.get("set"), Mapping):
        was, now, ext = old["set"], new["set"], set(extendable)
        if set(was) == set(now) and all(same(was[k], now[k]) or (k in ext and _part_of(was[k], now[k])) for k in now):
            diff.remove("set")
    if "points" in diff and isinstance(old.get("points"), list) and isinstance(new.get("points"), list):
        # a point added to the list names a new run directory; the recorded points keep theirs
        if all(any(same(p, q) for q in new["points"]) for p in old["points"]):
            diff.remove("points")
    if diff:
        raise SweepSpecError(
            f"{where} records sweep {spec.name!r} with a different spec (keys {diff} differ), so its run directories "
            f"do not match this spec. Rename the sweep (`name:`) for the new grid, or delete outputs/sweeps/{spec.name} "
            f"and its run directories to start over."
        )


_PROTOCOL_KEYS = ("protocol_inits", "protocol_lr", "protocol_epochs", "protocol_batch_size", "protocol_max_test")


# Keys a run does not use while a switch is off: ``key -> (switch, is_off(switch value))``. A difference in such a
# key, with the switch off both in the recorded run and now, does not make a finished run a different one (a run
# made with protocol_eval=false is the same whatever protocol_lr was).
INERT_WHEN: dict[str, tuple[str, Any]] = {
    **{k: ("protocol_eval", lambda v: not v) for k in _PROTOCOL_KEYS},
    "label_top_k": ("label_subset", lambda v: v != "top_k"),
}


# Keys that say how a run executes, not what it computes: never a difference between two runs.
EXECUTION_KEYS = frozenset({"fewshot_workers"})


def _inert(key: str, recorded: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    if key in EXECUTION_KEYS:
        return True
    if key not in INERT_WHEN:
        return False
    switch, is_off = INERT_WHEN[key]
    return switch in recorded and switch in wanted and is_off(recorded[switch]) and is_off(wanted[switch])


def param_diff(run_dir: Path, wanted: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{key: (recorded, wanted)}`` for every key of ``wanted`` that the run's manifest records otherwise.

    A directory without a manifest gives ``{}`` (nothing started there yet); a corrupt one is an error.
    Keys the run does not use (:data:`INERT_WHEN`: ``protocol_lr`` while ``protocol_eval`` is off in both) are not
    differences.
    """
    mf = Path(run_dir) / "manifest.json"
    if not mf.is_file():
        return {}
    try:
        params = json.loads(mf.read_text()).get("params", {})
    except json.JSONDecodeError as e:
        raise SweepSpecError(f"{mf} is not valid JSON ({e}); delete the run directory {run_dir} to re-run it.") from None
    return {k: (params[k], v) for k, v in wanted.items()
            if k in params and params[k] != v and not _inert(k, params, wanted)}


def _part_of(recorded: Any, wanted: Any) -> bool:
    return isinstance(recorded, list) and isinstance(wanted, list) and set(recorded) <= set(wanted)


def check_run_matches(run_dir: Path, overrides: Mapping[str, Any], extendable: Iterable[str] = ()) -> None:
    """Refuse a run directory whose manifest params contradict the point's overrides.

    Only keys the run's stage declares are compared (a training run has no ``max_sentences``).
    A directory without a manifest passes (nothing started there yet). For an ``extendable`` key (stage 05's
    datasets and initializations) a recorded list that is part of the wanted one is no contradiction: the run
    was made by a narrowed sweep (``sweep --set datasets=[...]``) and the full one extends it.

    >>> import tempfile, json
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "manifest.json").write_text(json.dumps({"params": {"datasets": ["conll2003"]}}))
    >>> check_run_matches(d, {"datasets": ["conll2003", "conll04"]}, extendable=["datasets"])
    >>> try:
    ...     check_run_matches(d, {"datasets": ["conll04"]}, extendable=["datasets"])
    ... except SweepSpecError as e:
    ...     print(str(e).split("(")[1].split(")")[0])
    datasets: run has ['conll2003'], spec wants ['conll04']
    """
    bad = {k: ab for k, ab in param_diff(run_dir, overrides).items() if not (k in extendable and _part_of(*ab))}
    if bad:
        detail = ", ".join(f"{k}: run has {a!r}, spec wants {b!r}" for k, (a, b) in bad.items())
        raise SweepSpecError(
            f"run directory {run_dir} was made with different parameters ({detail}): it belongs to an incompatible "
            f"spec. Rename the sweep, or delete that run directory to re-run the point."
        )


def _capped(n: Any, cap: Any) -> Any:
    """``n`` instances under a ``meta_max_instances`` cap (0 or None: no cap).

    >>> _capped(8812, 1000), _capped(8812, 0), _capped(None, 1000), _capped(300, 1000)
    (1000, 8812, None, 300)
    """
    return min(n, int(cap)) if n is not None and cap else n


def run_covers(run_dir: Path, wanted: Mapping[str, Any], extendable: Iterable[str]) -> bool:
    """Whether a run directory's recorded ``extendable`` lists hold every item ``wanted`` asks for.

    >>> import tempfile, json
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "manifest.json").write_text(json.dumps({"params": {"datasets": ["conll2003"], "seed": 0}}))
    >>> run_covers(d, {"datasets": ["conll2003"], "seed": 1}, ["datasets"]), run_covers(d, {"datasets": ["conll04"]}, ["datasets"])
    (True, False)
    """
    mf = Path(run_dir) / "manifest.json"
    if not mf.is_file():
        return False
    params = json.loads(mf.read_text()).get("params", {})
    return all(_part_of(wanted[k], params[k]) for k in extendable if k in wanted and k in params)


METRICS_KEYS = ("f1", "f1_std", "precision", "precision_std", "recall", "recall_std", "n_seeds")


SCORE_METRICS = ("f1", "precision", "recall")


# Ablation kinds, recognised from the keys a sweep varies (first match wins), with the x axis they plot.
KINDS: dict[str, tuple[str, ...]] = {
    "architecture": ("architecture",),
    "label_distribution": ("label_subset", "label_top_k"),
    "data_size": ("max_sentences", "max_instances", "meta_max_instances"),
    "model_size": ("backbone", "num_layers"),
}


class AblationConfig(StageConfig):
    """Stage 06: read finished sweeps (``outputs/sweeps/<name>/sweep.json`` and each run's metrics.json)
    and draw the ablation figures and tables."""

    stage: ClassVar[str] = "06_ablations"
    metrics_keys: ClassVar[tuple[str, ...]] = ("sweeps", "finished_points")

    sweeps: list[str] = Field(default_factory=list)  # sweep names or spec paths; [] = every sweep under <out_root>/sweeps
    metric: str = "f1"  # the few-shot score drawn: "f1" | "precision" | "recall"
    baseline_run: str = "cpu"  # stage-05 run whose vanilla rows pair with sweeps that fine-tune no vanilla ("" = none)

    @field_validator("metric")
    @classmethod
    def _metric_ok(cls, v: str) -> str:
        if v not in SCORE_METRICS:
            raise ValueError(f"metric {v!r} is not one of {list(SCORE_METRICS)}")
        return v


# Nominal parameter counts of the token-classification encoders the sweeps use (no pooler, no head):
# lower-cased backbone name -> (embeddings, one layer, layers). Used when stage 04's metrics.json does not
# record ``n_parameters``. Numbers from the published configs (vocab x hidden + positions + LayerNorm; per layer
# attention 4(h^2+h), feed-forward 2hi + i + h, two LayerNorms 4h).
NOMINAL_SIZES: dict[str, tuple[int, int, int]] = {
    "minilm-l6": (11_918_592, 1_774_464, 6),
    "all-minilm-l6-v2": (11_918_592, 1_774_464, 6),
    "mpnet-base": (23_841_408, 7_087_872, 12),
    "all-mpnet-base-v2": (23_841_408, 7_087_872, 12),
    "roberta-base": (39_000_576, 7_087_872, 12),
    "roberta-large": (52_000_768, 12_596_224, 24),
    "bert-large-cased": (30_220_288, 12_596_224, 24),
    "smollm2-135m": (134_515_008, 0, 0),
    "qwen2.5-0.5b": (494_032_768, 0, 0),
}


def nominal_params(backbone: str, num_layers: int = 0) -> int | None:
    """Parameters of a backbone truncated to its first ``num_layers`` layers (0 = all); None if unknown.

    >>> nominal_params("mpnet-base"), nominal_params("mpnet-base", 3), nominal_params("FacebookAI/roberta-large") // 10**6
    (108895872, 45105024, 354)
    """
    key = str(backbone).rstrip("/").split("/")[-1].lower()
    if key not in NOMINAL_SIZES:
        return None
    emb, layer, n = NOMINAL_SIZES[key]
    k = n if not num_layers or num_layers >= n else num_layers
    return emb + k * layer


def sweeps_root(out_root: str | Path = "outputs") -> Path:
    return resolve(out_root) / "sweeps"


def find_sweeps(out_root: str | Path = "outputs") -> list[str]:
    """Names of the sweeps recorded under ``<out_root>/sweeps`` (those with a sweep.json), sorted."""
    root = sweeps_root(out_root)
    return sorted(p.parent.name for p in root.glob(f"*/{SWEEP_RECORD}")) if root.is_dir() else []


def sweep_record_path(name_or_path: str | Path, out_root: str | Path = "outputs") -> Path:
    """A sweep name, a spec path or a sweep.json path -> the sweep.json of that sweep.

    ``"model_size_cpu"`` and ``"params/sweeps/model_size_cpu.yaml"`` both give
    ``outputs/sweeps/model_size_cpu/sweep.json``. Raises FileNotFoundError naming the command to run.
    """
    s = str(name_or_path)
    p = resolve(s)
    if p.is_file() and p.name == SWEEP_RECORD:
        return p
    if p.is_dir() and (p / SWEEP_RECORD).is_file():
        return p / SWEEP_RECORD
    name = Path(s).name.removesuffix(".yaml").removesuffix(".yml")
    if p.is_file() and p.suffix in (".yaml", ".yml"):
        try:
            name = (yaml.safe_load(p.read_text()) or {}).get("name", name)
        except yaml.YAMLError:
            pass
    rec = sweeps_root(out_root) / name / SWEEP_RECORD
    if not rec.is_file():
        have = find_sweeps(out_root)
        raise FileNotFoundError(
            f"No sweep record for {s!r} ({rec} does not exist). Run the sweep first: "
            f"`python -m metaie_utils sweep params/sweeps/{name}.yaml`. Recorded sweeps: {have or 'none'}."
        )
    return rec


def flatten_fewshot_metrics(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Stage 05's metrics.json ``{dataset: {subtask: {init: {"f1", "f1_std", ...}}}}`` -> long rows.

    Entries that are not of that shape (scalars, other summaries) are ignored.

    >>> flatten_fewshot_metrics({"conll2003": {"ner": {"metaie": {"f1": 40.0, "f1_std": 1.0}}}, "wall_s": 3})
    [{'dataset': 'conll2003', 'subtask': 'ner', 'initialization': 'metaie', 'f1': 40.0, 'f1_std': 1.0}]
    """
    if isinstance(metrics.get("scores"), Mapping):  # stage 05's declared layout: the scores sit under "scores"
        metrics = metrics["scores"]
    rows = []
    for ds, subs in metrics.items():
        if not isinstance(subs, Mapping):
            continue
        for sub, inits in subs.items():
            if not isinstance(inits, Mapping):
                continue
            for init, vals in inits.items():
                if isinstance(vals, Mapping) and isinstance(vals.get("f1"), (int, float)):
                    rows.append({"dataset": ds, "subtask": sub, "initialization": init,
                                 **{k: vals[k] for k in METRICS_KEYS if k in vals}})
    return rows


def _read_json(p: Path) -> dict[str, Any] | None:
    try:
        return json.loads(p.read_text()) if p.is_file() else None
    except json.JSONDecodeError:
        return None


def _seconds(manifest: Mapping[str, Any] | None) -> float | None:
    import datetime as dt

    if not manifest or not manifest.get("start_time") or not manifest.get("end_time"):
        return None
    try:
        a = dt.datetime.fromisoformat(str(manifest["start_time"]))
        b = dt.datetime.fromisoformat(str(manifest["end_time"]))
    except ValueError:
        return None
    return (b - a).total_seconds()


def ablation_kind(spec: Mapping[str, Any]) -> str:
    """The ablation a spec runs, from the keys it varies: ``model_size`` | ``data_size`` |
    ``architecture`` | ``label_distribution`` | ``other``.

    >>> ablation_kind({"grid": {"seed": [0]}, "points": [{"backbone": "minilm-l6", "num_layers": 0}]})
    'model_size'
    """
    varied = set(spec.get("grid") or {}) | {k for p in spec.get("points") or [] for k in p}
    for kind, keys in KINDS.items():
        if varied & set(keys):
            return kind
    return "other"


def point_label(overrides: Mapping[str, Any], varied: Iterable[str], skip: Iterable[str] = ("seed",)) -> str:
    """A short legend label of a point: its varied values except ``skip``.

    >>> point_label({"backbone": "mpnet-base", "num_layers": 3, "seed": 1, "epochs": 1}, ["seed", "backbone", "num_layers"])
    'backbone=mpnet-base, num_layers=3'
    """
    parts = [f"{k}={overrides[k]}" for k in varied if k not in set(skip) and k in overrides]
    return ", ".join(parts) or "all"


@dataclass
class SweepResults:
    """One recorded sweep read back: its spec, one row per point, and the long table of few-shot scores.

    ``points`` columns: run_name, label (legend), status (finished | partial | missing), the varied keys,
    n_params, n_sentences, n_instances, seconds (sum of the stages' wall times), and one run directory
    column per stage. ``scores`` columns: run_name, label, the varied keys, n_params, n_sentences,
    n_instances, dataset, subtask, task (dataset/subtask), initialization, f1, f1_std, precision, recall, ...
    """

    name: str
    spec: dict[str, Any]
    kind: str
    varied: list[str]
    points: Any  # pandas.DataFrame
    scores: Any  # pandas.DataFrame

    @property
    def n_finished(self) -> int:
        return int((self.points["status"] == "finished").sum()) if len(self.points) else 0

    @property
    def wall_seconds(self) -> float:
        return float(self.points["seconds"].fillna(0).sum()) if len(self.points) else 0.0


def _count(metrics: Mapping[str, Any] | None, keys: Sequence[str]) -> int | None:
    for k in keys:
        v = (metrics or {}).get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return int(v)
    return None


def read_sweep(name_or_path: str | Path, out_root: str | Path = "outputs") -> SweepResults:
    """Read ``sweep.json`` and every point's run metrics into a :class:`SweepResults`.

    Only ``sweep.json``, each stage run's ``metrics.json`` and ``manifest.json`` (for wall times) are
    read. Points whose 05 run has no metrics.json are listed with status ``missing``/``partial`` and
    contribute no scores. Reused upstream stages (``reuse``) are read from their own run directory.
    """
    import pandas as pd

    rec_path = sweep_record_path(name_or_path, out_root)
    try:
        record = json.loads(rec_path.read_text())
    except json.JSONDecodeError as e:
        raise SweepSpecError(f"{rec_path} is not valid JSON ({e}); re-run the sweep command to rewrite it.") from None
    spec = record.get("spec")
    if not isinstance(spec, Mapping) or not isinstance(record.get("points"), list):
        raise SweepSpecError(f"{rec_path} lacks 'spec' or 'points': it was not written by `python -m metaie_utils sweep`.")
    spec = dict(spec)
    name = str(spec.get("name", rec_path.parent.name))
    stages = list(spec.get("stages") or [])
    reuse = dict(spec.get("reuse") or {})
    try:
        varied = validate_sweep_spec(spec, known_keys=None).varied_keys()
    except SweepSpecError:
        varied = list(spec.get("grid") or {}) + [k for p in spec.get("points") or [] for k in p]
        varied = list(dict.fromkeys(varied))
    root = resolve(out_root)
    point_rows, score_rows = [], []
    for pt in record["points"]:
        run_name, ov = pt["run_name"], dict(pt.get("overrides") or {})
        dirs = {s: root / s / run_name for s in stages}
        dirs.update({s: root / s / r for s, r in reuse.items()})
        mets = {s: _read_json(d / "metrics.json") for s, d in dirs.items()}
        done = [s for s in stages if mets.get(s) is not None]
        status = "finished" if len(done) == len(stages) else ("partial" if done else "missing")
        manifests = {s: _read_json(d / "manifest.json") for s, d in dirs.items()}
        secs = [_seconds(manifests[s]) for s in stages]
        m03, m04 = mets.get("03_convert_bio"), mets.get("04_train_meta_model")
        # the backbone of the run as resolved (point, else spec set, else the params layers via 04's manifest)
        ran = ((manifests.get("04_train_meta_model") or {}).get("params") or {})
        backbone = ov.get("backbone", spec.get("set", {}).get("backbone", ran.get("backbone", "")))
        layers = ov.get("num_layers", spec.get("set", {}).get("num_layers", ran.get("num_layers", 0)))
        # 04 records n_params (a declared metrics key); the nominal table only serves runs made before it did
        n_params = _count(m04, ("n_params",)) or nominal_params(backbone, int(layers or 0))
        row = {
            "run_name": run_name, "label": point_label(ov, varied), "status": status, **{k: ov.get(k) for k in varied},
            "n_params": n_params,
            "n_sentences": _count(m03, ("sentences", "n_sentences")),
            # instances meta-training saw: 04's n_train (after meta_max_instances), else 03's training instances
            # under the point's cap (a point not trained yet must not show the whole conversion's count)
            "n_instances": _count(m04, ("n_train",)) or _capped(
                _count(m03, ("train_instances", "instances", "n_instances")),
                ov.get("meta_max_instances", spec.get("set", {}).get("meta_max_instances", ran.get("meta_max_instances")))),
            "seconds": sum(x for x in secs if x is not None) if any(x is not None for x in secs) else None,
            **{f"dir_{s}": str(d) for s, d in dirs.items()},
        }
        point_rows.append(row)
        m05 = mets.get("05_fewshot_eval")
        if m05:
            for r in flatten_fewshot_metrics(m05):
                score_rows.append({k: row[k] for k in ("run_name", "label", *varied, "n_params", "n_sentences", "n_instances")}
                                  | {"task": f"{r['dataset']}/{r['subtask']}"} | r)
    points = pd.DataFrame(point_rows)
    scores = pd.DataFrame(score_rows)
    return SweepResults(name=name, spec=spec, kind=ablation_kind(spec), varied=varied, points=points, scores=scores)


def missing_sweeps(names: Sequence[str], out_root: str | Path = "outputs") -> list[str]:
    """The named sweeps that have no sweep.json yet (not started)."""
    out = []
    for n in names:
        try:
            sweep_record_path(n, out_root)
        except FileNotFoundError:
            out.append(str(n))
    return out


def load_sweeps(names: Sequence[str] = (), out_root: str | Path = "outputs", skip_missing: bool = True) -> list[SweepResults]:
    """Read the named sweeps (names, spec paths or sweep.json paths); ``[]`` = every recorded sweep.

    ``skip_missing``: leave out named sweeps that were never started (list them with
    :func:`missing_sweeps`); False raises FileNotFoundError naming the command that records them.
    """
    names = list(names) or find_sweeps(out_root)
    if skip_missing:
        gone = set(missing_sweeps(names, out_root))
        names = [n for n in names if str(n) not in gone]
    return [read_sweep(n, out_root) for n in names]


def ablation_table(scores: Any, metric: str = "f1", group: str = "label") -> Any:
    """Long scores -> wide table: rows task x initialization, columns the point labels, cells
    ``"mean ± std"`` in % (the mean over seed points; the std over seed points, else the 05 run's std over
    few-shot seeds).

    >>> import pandas as pd
    >>> t = ablation_table(pd.DataFrame([{"task": "c/ner", "initialization": "metaie", "label": "a", "f1": 40.0,
    ...     "f1_std": 2.0}, {"task": "c/ner", "initialization": "metaie", "label": "a", "f1": 44.0, "f1_std": 1.0}]))
    >>> t.loc[("c/ner", "metaie"), "a"]
    '42.00 ± 2.83'
    """
    import pandas as pd

    if scores is None or len(scores) == 0:
        return pd.DataFrame()
    agg = aggregate_scores(scores, metric, group)
    agg["cell"] = [f"{m:.2f} ± {s:.2f}" for m, s in zip(agg["mean"], agg["std"])]
    order = list(dict.fromkeys(scores[group]))
    t = agg.pivot_table(index=["task", "initialization"], columns=group, values="cell", aggfunc="first", sort=False)
    return t[[c for c in order if c in t.columns]]






INTERVAL_COLUMNS = ["sweep", "label", "dataset", "subtask", "initialization", "n_seeds", "f1", "f1_std", "n_pred",
                    "baseline", "diff", "diff_lo", "diff_hi", "p", "n_paired_seeds", "n_sentences", "n_collapsed", "note"]


def _read_run(run_dir: Path) -> tuple[list[dict], list[dict]]:
    """A stage-05 run's results.csv rows and per-sentence counts (``[], []`` when it has none yet)."""
    import csv

    from metaie_utils.core.stats import read_counts

    f = Path(run_dir) / "results.csv"
    if not f.is_file():
        return [], []
    with f.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return rows, read_counts(Path(run_dir) / "counts.jsonl")


def _point_runs(res: SweepResults) -> list[tuple[str, list[dict], list[dict]]]:
    """(label, results rows, counts) of every point whose stage-05 run has rows, in the sweep's order."""
    col = "dir_05_fewshot_eval"
    runs = []
    for _, pt in (res.points.iterrows() if len(res.points) and col in res.points.columns else []):
        rows, counts = _read_run(Path(pt[col]))
        if rows:
            runs.append((pt["label"], rows, counts))
    return runs


def resolve_point(reference: str, labels: list[str], sweep: str = "") -> str:
    """The point label ``reference`` names: itself, or the one label holding every ``key=value`` of it (so
    ``backbone=minilm-l6`` names ``backbone=minilm-l6, num_layers=0, ...``); a clear error when none or several do.

    >>> resolve_point("backbone=minilm-l6", ["backbone=minilm-l6, num_layers=0", "backbone=mpnet-base, num_layers=3"])
    'backbone=minilm-l6, num_layers=0'
    >>> resolve_point("backbone=mpnet-base", ["backbone=mpnet-base, num_layers=3", "backbone=mpnet-base, num_layers=6"])
    Traceback (most recent call last):
    ...
    metaie_utils.stages.ablations.SweepSpecError: reference point 'backbone=mpnet-base' matches 2 points with results in sweep '': ['backbone=mpnet-base, num_layers=3', 'backbone=mpnet-base, num_layers=6']; name one of them (more key=value pairs).
    """
    if reference in labels:
        return reference
    want = {p.strip() for p in reference.split(",") if p.strip()}
    hits = [lab for lab in labels if want and want <= {p.strip() for p in lab.split(",")}]
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise SweepSpecError(f"reference point {reference!r} matches {len(hits)} points with results in sweep "
                             f"{sweep!r}: {hits}; name one of them (more key=value pairs).")
    raise SweepSpecError(f"reference point {reference!r} has no results in sweep {sweep!r}; "
                         f"points with results: {labels or 'none'}.")


def point_differences(res: SweepResults, reference: str, initialization: str = "metaie", n_boot: int = 2000,
                      seed: int = 0, level: float = 0.95, reference_run: str | Path | None = None) -> Any:
    """Each point of a sweep against another point of it (``reference``, a point label such as
    ``"label_subset=all"``): ``diff`` = point − reference in F1 points for ``initialization``, with its
    ``level`` paired bootstrap CI over test sentences and seeds (the points share support sets and test
    sentences). This is what decides "A beats B" between two points; :func:`sweep_intervals` only says
    how each compares with vanilla. Columns as :func:`sweep_intervals`, ``baseline`` = ``reference``.

    With ``reference_run`` (a stage-05 run directory, e.g. the CPU grid's ``docs/results/cpu``), every point is
    compared with that run's ``initialization`` rows instead (``reference`` is then only its label): a point of
    a student-size sweep against the grid's MiniLM MetaIE, on the datasets the point evaluated. The pairs need the
    same seeds and test sentences, which the ``*_cpu`` sweeps share with the grid.
    """
    import pandas as pd

    from metaie_utils.core.stats import summary_table

    runs = _point_runs(res)
    labels = [lab for lab, *_ in runs]
    if reference_run is not None:
        reference = reference or f"{Path(reference_run).name} {initialization}"
        ref_rows, ref_counts = _read_run(Path(reference_run))
        if not ref_rows:
            raise SweepSpecError(f"--versus-run {reference_run}: no results.csv rows there (a stage-05 run directory "
                                 f"holds results.csv and counts.jsonl[.gz]).")
        ds = {x.get("dataset") for _, r, _ in runs for x in r if x.get("initialization") == initialization}
        runs = [*runs, (reference, [x for x in ref_rows if x.get("dataset") in ds], [x for x in ref_counts if x.get("dataset") in ds])]
    else:
        reference = resolve_point(reference, labels, res.name)
    rows, counts = [], []
    for lab, r, c in runs:
        rows += [{**x, "initialization": lab} for x in r if x.get("initialization") == initialization]
        counts += [{**x, "initialization": lab} for x in c if x.get("initialization") == initialization]
    others = [lab for lab in labels if lab != reference]
    if not others or not rows:
        return pd.DataFrame(columns=INTERVAL_COLUMNS)
    df = summary_table(rows, counts, reference=reference, baselines=others, n_boot=n_boot, seed=seed, level=level)
    df = df[df["initialization"] != reference].copy()
    df["diff"], df["diff_lo"], df["diff_hi"] = -df["diff"], -df["diff_hi"], -df["diff_lo"]
    df["sweep"], df["label"], df["baseline"] = res.name, df["initialization"], reference
    df["initialization"] = initialization
    return df[[c for c in INTERVAL_COLUMNS if c in df.columns]].reset_index(drop=True)


def sweep_intervals(res: SweepResults, baseline: str = "vanilla", n_boot: int = 2000, seed: int = 0,
                    level: float = 0.95, baseline_run: str | Path | None = None) -> Any:
    """Each point of a sweep against ``baseline``, with a paired confidence interval: one row per point x
    dataset x sub-task x initialization (all but ``baseline``), F1 mean ± std over few-shot seeds, and
    ``diff`` = point − baseline (F1 points) with its ``level`` bootstrap CI over test sentences and seeds
    (:func:`metaie_utils.core.stats.summary_table`).

    Every finished point's stage-05 run is read (``results.csv``, ``counts.jsonl``). The baseline of a point
    is its own run's rows when it has them (model size: a vanilla per backbone), else the first point's
    that does (data size, label distribution: vanilla does not depend on the distilled data, so a sweep
    may run it once), else those of ``baseline_run`` (a stage-05 run directory: the CPU grid's vanilla,
    same backbone, recipe, seeds and test sentences, so the ``*_cpu`` sweeps need not fine-tune it again).
    Pairs need the same seeds and test sentences; a baseline fine-tuned under another recipe is named in
    the row's note.
    """
    import pandas as pd

    from metaie_utils.core.stats import summary_table

    read = _read_run
    runs = _point_runs(res)
    shared = next(((r, c) for _, r, c in runs if any(x.get("initialization") == baseline for x in r)), None)
    shared_from = f"{baseline} from another point of the sweep"
    if shared is None and baseline_run:
        shared = read(Path(baseline_run))
        shared_from = f"{baseline} from {Path(baseline_run).name}"
    shared = shared or ([], [])
    out = []
    for label, rows, counts in runs:
        own = any(x.get("initialization") == baseline for x in rows)
        base_rows, base_counts = ((rows, counts) if own else shared)
        base_rows = [x for x in base_rows if x.get("initialization") == baseline]
        base_counts = [x for x in base_counts if x.get("initialization") == baseline]
        mine = [x for x in rows if x.get("initialization") != baseline]
        my_counts = [x for x in counts if x.get("initialization") != baseline]
        for init in dict.fromkeys(x.get("initialization") for x in mine):
            # only the datasets this point evaluated (the grid's vanilla covers all 14)
            ds = {x.get("dataset") for x in mine if x.get("initialization") == init}
            df = summary_table([x for x in mine if x.get("initialization") == init] + [x for x in base_rows if x.get("dataset") in ds],
                               [x for x in my_counts if x.get("initialization") == init]
                               + [x for x in base_counts if x.get("dataset") in ds],
                               reference=baseline, baselines=[init], n_boot=n_boot, seed=seed, level=level)
            df = df[df["initialization"] == init].copy()
            # summary_table gives baseline − point: turn it into point − baseline
            df["diff"], df["diff_lo"], df["diff_hi"] = -df["diff"], -df["diff_hi"], -df["diff_lo"]
            df["sweep"], df["label"], df["baseline"] = res.name, label, baseline if len(base_rows) else ""
            extra = [shared_from] if not own and base_rows else []
            recipes = ({recorded_recipe(x) for x in base_rows if x.get("recipe")},
                       {recorded_recipe(x) for x in mine if x.get("initialization") == init and x.get("recipe")})
            differ = recipe_differences(sorted(recipes[0])[0], sorted(recipes[1])[0]) if all(recipes) else {}
            if differ:  # the keys both recipes name (a key added to the recipe later is not a difference)
                extra.append(f"{baseline}'s recipe differs ("
                             + ", ".join(f"{k}: {a} vs {b}" for k, (a, b) in differ.items()) + ")")
            if extra:
                df["note"] = ["; ".join(x for x in (str(n or ""), *extra) if x) for n in df["note"]]
            out.append(df)
    if not out:
        return pd.DataFrame(columns=INTERVAL_COLUMNS)
    t = pd.concat(out, ignore_index=True)
    return t[[c for c in INTERVAL_COLUMNS if c in t.columns]]


def resolve_baseline_run(name: str | Path | None, out_root: str | Path = "outputs") -> Path | None:
    """The stage-05 run whose vanilla rows pair with sweeps that fine-tune no vanilla (``baseline_run``).

    ``name`` is a run name (``"cpu"``: ``<out_root>/05_fewshot_eval/cpu``) or a directory holding a
    results.csv (e.g. the kept copy ``docs/results/cpu``). When the run is not under ``out_root`` (a new
    machine, outputs/ gone) the kept copy ``docs/results/<name>`` is used if it exists. None when ``name`` is
    empty or nothing is found (the intervals then have no difference column).
    """
    if not name:
        return None
    p = resolve(name)
    if (p / "results.csv").is_file():
        return p
    for cand in (resolve(out_root) / "05_fewshot_eval" / str(name), resolve("docs/results") / str(name)):
        if (cand / "results.csv").is_file():
            return cand
    return None


EXPORT_FILES = ("metrics.json", "manifest.json", "results.csv", "notes.json")


def export_sweep(name_or_path: str | Path, dest: str | Path, out_root: str | Path = "outputs",
                 baseline_run: str | Path | None = "cpu") -> Path:
    """Keep a sweep's results where outputs/ does not reach (``docs/results/ablations``): the same layout
    as ``out_root`` (``sweeps/<name>/sweep.json``, ``<stage>/<run>/{metrics,manifest}.json``, stage 05's
    results.csv and its per-sentence counts gzip'd), so ``read_sweep(name, dest)``, ``sweep_intervals`` and
    ``python -m metaie_utils ablations --out-root DEST`` read it back unchanged. No checkpoint is copied.
    ``<dest>/sweeps/<name>/intervals.csv`` and ``intervals.png`` hold the intervals against ``baseline_run``
    as computed here; a model-size sweep adds ``vs_params.png``, a data-size sweep ``vs_sentences.png``.
    With ``dest`` = ``out_root`` (a kept sweep) only those are redrawn.
    Deterministic (gzip without a timestamp): re-exporting unchanged results changes no byte.
    """
    import gzip
    import shutil

    res = read_sweep(name_or_path, out_root)
    src_root, dest = resolve(out_root), resolve(dest)
    rec = sweep_record_path(name_or_path, out_root)
    (dest / "sweeps" / res.name).mkdir(parents=True, exist_ok=True)
    in_place = src_root.resolve() == dest.resolve()  # re-export a kept sweep: only intervals and figures are redrawn
    if not in_place:
        shutil.copyfile(rec, dest / "sweeps" / res.name / SWEEP_RECORD)
    for col in [c for c in res.points.columns if c.startswith("dir_")] if len(res.points) and not in_place else []:
        for d in dict.fromkeys(res.points[col]):
            d = Path(d)
            if not d.is_dir():
                continue
            out = dest / d.relative_to(src_root)
            out.mkdir(parents=True, exist_ok=True)
            for f in EXPORT_FILES:
                if (d / f).is_file():
                    shutil.copyfile(d / f, out / f)
            if (d / "counts.jsonl").is_file():
                with (d / "counts.jsonl").open("rb") as src, gzip.GzipFile(out / "counts.jsonl.gz", "wb", mtime=0, compresslevel=9) as gz:
                    shutil.copyfileobj(src, gz)
    import matplotlib.pyplot as plt

    from metaie_utils.plots import save
    from metaie_utils.plots.ablations import figures_for, interval_figure

    kept = read_sweep(res.name, dest)
    iv = sweep_intervals(kept, baseline_run=resolve_baseline_run(baseline_run, out_root))
    iv.to_csv(dest / "sweeps" / res.name / "intervals.csv", index=False, float_format="%.4g")
    figs = {"intervals": interval_figure(iv, title=f"{res.name}: each point against vanilla")} if len(iv) else {}
    if kept.n_finished:  # the sweep kind's own figure (F1 against parameters / distilled sentences)
        figs.update(figures_for(kept))
    for stem, fig in figs.items():
        if stem != "per_task":  # the intervals say what per_task's bars would
            save(fig, dest / "sweeps" / res.name / f"{stem}.png")
        plt.close(fig)
    return dest / "sweeps" / res.name


def interval_table(df: Any) -> Any:
    """:func:`sweep_intervals` for reading: one row per dataset / sub-task, one column per point, cells
    ``"F1 ± std (Δ [lo, hi])"`` with Δ the difference to the baseline."""
    import math

    import pandas as pd

    if df is None or len(df) == 0:
        return pd.DataFrame()

    def cell(r) -> str:
        f1 = f"{r['f1']:.1f}" + (f" ± {r['f1_std']:.1f}" if int(r.get("n_seeds") or 1) > 1 else "")
        if r.get("diff") is None or (isinstance(r["diff"], float) and math.isnan(r["diff"])):
            return f1
        return f"{f1} ({r['diff']:+.1f} [{r['diff_lo']:+.1f}, {r['diff_hi']:+.1f}])"

    d = df.assign(task=[f"{a}/{b}" for a, b in zip(df["dataset"], df["subtask"])], cell=[cell(r) for _, r in df.iterrows()])
    order = list(dict.fromkeys(d["label"]))
    t = d.pivot_table(index=["task", "initialization"], columns="label", values="cell", aggfunc="first", sort=False)
    return t[[c for c in order if c in t.columns]]


def points_table(res: SweepResults) -> Any:
    """The points of a sweep for display: run name, varied values, status, sizes and wall time."""
    cols = ["run_name", "status", *res.varied, "n_params", "n_sentences", "n_instances", "seconds"]
    return res.points[[c for c in cols if c in res.points.columns]] if len(res.points) else res.points


def ablation_metrics(results: Sequence[SweepResults], metric: str = "f1") -> dict[str, Any]:
    """metrics.json of stage 06: per sweep its kind, point counts, wall time and the mean ``metric`` of
    each point label and initialization over tasks (in %)."""
    out: dict[str, Any] = {"sweeps": len(results), "finished_points": sum(r.n_finished for r in results)}
    for r in results:
        entry: dict[str, Any] = {"kind": r.kind, "points": len(r.points), "finished": r.n_finished,
                                 "wall_seconds": round(r.wall_seconds, 1)}
        if len(r.scores):
            agg = aggregate_scores(r.scores, metric)
            entry[f"mean_{metric}"] = {
                f"{lab} | {init}": round(float(g["mean"].mean()), 2)
                for (lab, init), g in agg.groupby(["label", "initialization"], sort=False)
            }
        out[r.name] = entry
    return out


def no_sweeps_message(out_root: str | Path = "outputs") -> str:
    """What to tell a user who has no finished sweep yet."""
    specs = sorted(p.stem for p in SWEEPS_DIR.glob("*_cpu.yaml"))
    cmds = "\n".join(f"  python -m metaie_utils sweep params/sweeps/{s}.yaml" for s in specs) or "  (no specs found)"
    return (f"No finished sweep under {sweeps_root(out_root)}: nothing to draw yet. Run a CPU sweep first, e.g.\n"
            f"{cmds}\nthen re-run this notebook (sweeps=[] reads every recorded sweep).")


def _cmd_ablations(args: Any) -> int:
    import pandas as pd

    results = load_sweeps(args.sweeps or [], args.out_root)
    gone = missing_sweeps(args.sweeps or [], args.out_root)
    if gone:
        print(f"not recorded yet: {', '.join(gone)}")
    if not results:
        print(no_sweeps_message(args.out_root))
        return 0
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60):
        for r in results:
            print(f"\n== {r.name} ({r.kind}): {r.n_finished}/{len(r.points)} points finished, "
                  f"{r.wall_seconds / 60:.1f} min of stage wall time")
            pts = points_table(r)
            print(pts.to_string(index=False) if len(pts) else "(no points)")
            if len(r.scores):
                print()
                print(ablation_table(r.scores, args.metric).to_string())
            # from each point's results.csv, so a point still running shows the seeds it has finished
            base = resolve_baseline_run(args.baseline_run, args.out_root)
            iv = sweep_intervals(r, baseline_run=base)
            if len(iv):
                src = f"; vanilla from the point runs, else {base}" if base else ""
                print(f"\neach point − vanilla, F1 points [95% paired bootstrap CI over test sentences and seeds{src}]:")
                print(interval_table(iv).to_string())
            if args.versus:
                pdiff = point_differences(r, args.versus, initialization=args.versus_init)
                if len(pdiff):
                    print(f"\neach point − {args.versus} ({args.versus_init}), F1 points [95% paired bootstrap CI]:")
                    print(interval_table(pdiff).to_string())
            if args.versus_run:
                ref = resolve_baseline_run(args.versus_run, args.out_root)
                if ref is None:
                    raise SweepSpecError(f"--versus-run {args.versus_run!r}: no such stage-05 run under "
                                         f"{args.out_root}/05_fewshot_eval, docs/results, or as a directory.")
                pdiff = point_differences(r, "", initialization=args.versus_init, reference_run=ref)
                if len(pdiff):
                    print(f"\neach point − {ref} ({args.versus_init}), F1 points [95% paired bootstrap CI]:")
                    print(interval_table(pdiff).to_string())
            if args.export:
                print(f"kept: {export_sweep(r.name, args.export, args.out_root, args.baseline_run)}")
    return 0


def register_cli(subparsers: Any) -> None:
    """``ablations [SWEEP ...]``: print each recorded sweep's points (status, wall time) and F1 table."""
    p = subparsers.add_parser("ablations", help="print the points, wall times and F1 tables of recorded sweeps",
                              description="Read outputs/sweeps/<name>/sweep.json and each point's metrics.json, "
                                          "print the points (status, sizes, wall time) and a mean ± std table per sweep.")
    p.add_argument("sweeps", nargs="*", help="sweep names or spec paths (default: every recorded sweep)")
    p.add_argument("--out-root", default="outputs", help="outputs root holding sweeps/ (default: outputs)")
    p.add_argument("--metric", default="f1", choices=list(SCORE_METRICS))
    p.add_argument("--baseline-run", default="cpu",
                   help="stage-05 run (a name under <out-root>/05_fewshot_eval, or a directory with results.csv; "
                        "docs/results/NAME when outputs/ lacks it) whose vanilla pairs with sweeps that run none "
                        "(default: cpu, the CPU grid; '' = none)")
    p.add_argument("--versus", default="", metavar="LABEL",
                   help="also compare each point with the point LABEL (e.g. 'label_subset=all', or some of its "
                        "key=value pairs when only one point has them), paired")
    p.add_argument("--versus-init", default="metaie", choices=["metaie", "vanilla"],
                   help="the initialization --versus / --versus-run compares across points (default metaie; vanilla: "
                        "how the backbones differ before meta-training, in a sweep that runs a vanilla per point)")
    p.add_argument("--versus-run", default="", metavar="RUN",
                   help="also compare each point with another stage-05 run's --versus-init rows, paired (RUN as "
                        "--baseline-run: e.g. cpu, the CPU grid, whose MiniLM MetaIE a student-size point faces)")
    p.add_argument("--export", default="", metavar="DEST",
                   help="also keep each sweep's results under DEST (e.g. docs/results/ablations), readable with "
                        "--out-root DEST")
    p.set_defaults(func=_cmd_ablations)
