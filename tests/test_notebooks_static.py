"""Notebook hygiene: stripped, one parameters cell whose names are the config's fields, in sync with .py twins."""

import ast
import json

import pytest

from metaie_utils import nbsync
from metaie_utils.core.params import STAGES, TemplateConfig, stage_class
from metaie_utils.core.paths import NOTEBOOKS_DIR

pytestmark = pytest.mark.unit
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


def _cells(nb_path):
    return json.loads(nb_path.read_text())["cells"]


def _param_names(cell_source: str) -> list[str]:
    names = []
    for node in ast.parse(cell_source).body:
        assert isinstance(node, (ast.Assign, ast.AnnAssign)), f"parameters cell holds only assignments, got {ast.dump(node)[:60]}"
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for t in targets:
            names.append(t.id)
        ast.literal_eval(node.value)  # flat literals only: nothing computed
    return names


def test_every_stage_has_a_notebook():
    have = {p.stem for p in NOTEBOOKS}
    assert set(STAGES) <= have, f"missing notebooks: {sorted(set(STAGES) - have)}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_stripped_and_one_parameters_cell(nb):
    cells = _cells(nb)
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{nb.name}: {len(tagged)} parameters cells"
    for c in cells:
        if c["cell_type"] == "code":
            assert not c.get("outputs") and c.get("execution_count") is None, f"{nb.name} has outputs"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_match_config_fields(nb):
    cls = TemplateConfig if nb.stem == "00_template" else stage_class(nb.stem)
    cell = next(c for c in _cells(nb) if "parameters" in c.get("metadata", {}).get("tags", []))
    names = _param_names("".join(cell["source"]))
    assert len(names) == len(set(names)), f"duplicate parameter in {nb.name}"
    assert set(names) == set(cls.model_fields), (
        f"{nb.name}: only in notebook {sorted(set(names) - set(cls.model_fields))}, "
        f"only in {cls.__name__} {sorted(set(cls.model_fields) - set(names))}"
    )
    # the notebook's defaults are valid config values
    ns = {}
    exec("".join(cell["source"]), {}, ns)
    cls(**ns)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_parses_every_parameter(nb, caplog):
    """papermill must read every parameter line (a '=' inside a comment makes it skip the line and warn)."""
    import papermill

    cls = TemplateConfig if nb.stem == "00_template" else stage_class(nb.stem)
    with caplog.at_level("WARNING"):
        names = set(papermill.inspect_notebook(str(nb)))
    assert not [r.getMessage() for r in caplog.records if "Unable to parse" in r.getMessage()]
    assert names == set(cls.model_fields)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_colab_badge_and_opt_in_install(nb):
    text = nb.read_text()
    assert "colab-badge.svg" in text and f"notebooks/{nb.name}" in text
    assert "INSTALL = False" in text


def test_ipynb_in_sync_with_py_twins():
    assert nbsync.sync(check=True) == [], "run `make notebooks` to regenerate the .ipynb files"
    assert {p.stem for p in NOTEBOOKS} == {p.stem for p in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.py")}


@pytest.mark.parametrize("nb", [NOTEBOOKS_DIR / f"{s}.ipynb" for s in STAGES], ids=lambda p: p.stem)
def test_parameter_values_equal_the_defaults_or_the_standalone_table(nb):
    """Values, not just names: a notebook opened alone runs params/defaults.yaml (which the config classes
    equal), except the smaller standalone budgets of the one table params.STANDALONE."""
    from metaie_utils.core.params import STANDALONE

    cell = next(c for c in _cells(nb) if "parameters" in c.get("metadata", {}).get("tags", []))
    src = "".join(cell["source"])
    values = {n.targets[0].id: ast.literal_eval(n.value) for n in ast.parse(src).body}
    cls = stage_class(nb.stem)
    table = STANDALONE.get(nb.stem, {})
    assert set(table) <= set(values), f"{nb.stem}: STANDALONE names unknown parameters {set(table) - set(values)}"
    for name, v in values.items():
        f = cls.model_fields[name]
        want = table[name] if name in table else (f.default_factory() if f.default_factory else f.default)
        assert v == want, (f"{nb.stem}: parameter {name} = {v!r} in the notebook, but {want!r} in "
                           f"{'params.STANDALONE' if name in table else 'the config class / params/defaults.yaml'}")


def test_one_place_names_the_repository(tmp_path):
    """pyproject's [project.urls] Repository is what every badge and install cell names; --repo moves them all."""
    import shutil

    from metaie_utils.core.paths import REPO_ROOT

    assert nbsync.repo_mismatches() == []
    uses = nbsync.repo_mismatches(slug="someone/else")
    assert len(uses) >= 2 * len(list(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.py")))  # a badge and a clone per notebook, both twins
    (tmp_path / "notebooks").mkdir()
    for f in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.py"):
        shutil.copy(f, tmp_path / "notebooks" / f.name)
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / f, tmp_path / f)
    nbsync.set_repo("https://github.com/someone/fork", root=tmp_path)
    assert nbsync.repo_slug(tmp_path / "pyproject.toml") == "someone/fork"
    assert nbsync.repo_mismatches(tmp_path / "notebooks", "someone/fork") == []
    assert "metaie-project/metaie" not in (tmp_path / "notebooks" / "05_fewshot_eval.ipynb").read_text()


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_figure_is_shown_twice(nb):
    """The inline backend shows every open figure at the end of its cell; a cell that also returns the figure
    as its last expression shows it twice (seen in JupyterLab with Run All)."""
    for cell in _cells(nb):
        if cell.get("cell_type") != "code":
            continue
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        lines = [ln for ln in src.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if lines and lines[-1].strip() in ("fig", "plt.gcf()", "g.figure", "ax.figure"):
            raise AssertionError(f"{nb.name}: a cell both draws and returns its figure (shown twice): {src[:120]!r}")
