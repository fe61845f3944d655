"""Layered params: every key known, typed and documented; clear errors naming file and key."""


import pytest
import yaml

from metaie_utils.core import params as P
from metaie_utils.core.paths import PARAMS_DIR

pytestmark = pytest.mark.unit


def test_defaults_list_every_field_of_every_stage():
    """Every key is in defaults.yaml, except upstream inputs (input_dir, meta_model, ...): `run` wires those to
    the previous stage's run directory, and a notebook run alone falls back to its own fixture."""
    defaults = yaml.safe_load((PARAMS_DIR / "defaults.yaml").read_text())
    upstream = {k for cls in P.available_stages().values() for k in cls.upstream}
    fields = set(P.all_fields()) - upstream
    assert set(defaults) == fields, (
        f"missing from defaults.yaml: {sorted(fields - set(defaults))}; unknown there: {sorted(set(defaults) - fields)}"
    )


def test_every_stage_module_imports():
    assert set(P.available_stages()) == set(P.STAGES)


@pytest.mark.parametrize("name", sorted(p.name for p in PARAMS_DIR.glob("*.yaml")))
def test_every_params_file_loads_and_validates(name):
    merged = P.load_params([PARAMS_DIR / name])
    for stage in P.STAGES:
        P.stage_config(stage, merged)


@pytest.mark.parametrize("name", sorted(p.name for p in PARAMS_DIR.glob("*.yaml") if p.name != "defaults.yaml"))
def test_override_files_say_why_they_exist(name):
    first = (PARAMS_DIR / name).read_text().lstrip().splitlines()[0]
    assert first.startswith("#") and len(first) > 20


def test_shared_keys_mean_the_same_type_in_every_stage():
    seen: dict[str, tuple[str, object]] = {}
    for stage, cls in P.available_stages().items():
        for k, f in cls.model_fields.items():
            ann = f.annotation
            if k in seen:
                assert seen[k][1] == ann, f"{k}: {seen[k][0]} says {seen[k][1]}, {stage} says {ann}"
            else:
                seen[k] = (stage, ann)


def test_unknown_key_names_file_and_suggests(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("# why\nseeed: 3\n")
    with pytest.raises(P.ParamsError) as e:
        P.load_params([f])
    msg = str(e.value)
    assert "bad.yaml" in msg and "'seeed'" in msg and "'seed'" in msg


def test_wrong_type_names_file_and_key(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("seed: not-a-number\n")
    with pytest.raises(P.ParamsError) as e:
        P.load_params([f])
    assert "bad.yaml" in str(e.value) and "'seed'" in str(e.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(P.ParamsError, match="does not exist"):
        P.load_params([tmp_path / "nope.yaml"])


def test_nested_mapping_is_refused(tmp_path):
    f = tmp_path / "nested.yaml"
    f.write_text("seed: {a: 1}\n")
    with pytest.raises(P.ParamsError, match="flat"):
        P.load_params([f])


def test_layers_apply_in_order_and_set_wins(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("seed: 1\n")
    b.write_text("seed: 2\n")
    assert P.load_params([a, b])["seed"] == 2
    assert P.load_params([a, b], {"seed": 5})["seed"] == 5


def test_parse_set_is_yaml_typed():
    assert P.parse_set(["seed=3", "run_name=abc", "overwrite=true"]) == {"seed": 3, "run_name": "abc", "overwrite": True}
    assert P.parse_set(["lr=3e-4", "x=1.5E+2", "name=e5"]) == {"lr": 3e-4, "x": 150.0, "name": "e5"}
    with pytest.raises(P.ParamsError):
        P.parse_set(["seed"])


def test_from_namespace_validates():
    with pytest.raises(P.ParamsError, match="seed"):
        P.TemplateConfig.from_namespace({"run_name": "", "out_root": "o", "overwrite": False, "seed": "x"})
    with pytest.raises(P.ParamsError, match="lacks parameters"):
        P.TemplateConfig.from_namespace({"run_name": ""})


def test_config_class_defaults_equal_defaults_yaml():
    """One source of truth: every stage config's class default equals params/defaults.yaml (the bug this
    catches: TrainConfig's meta_lr 1e-4 / 1 epoch against defaults.yaml's 3e-4 / 6, so code that fell back
    to the class, such as the baselines' meta-training recipe, trained with a recipe that predicts no span)."""
    d = P.load_params()
    bad = []
    for stage in P.STAGES:
        cls = P.stage_class(stage)
        for name, f in cls.model_fields.items():
            if name in getattr(cls, "upstream", {}):
                continue  # upstream inputs: a fixture in the class, wired by `run` (documented in defaults.yaml)
            default = f.default_factory() if f.default_factory else f.default
            if name not in d:
                bad.append(f"{stage}.{name} is missing from defaults.yaml")
            elif default != d[name]:
                bad.append(f"{stage}.{name}: class {default!r} != defaults.yaml {d[name]!r}")
    assert not bad, "\n".join(bad)
