"""The package's layers: imports point one way, and there is no import cycle (function-level imports included).

An AST walk over every module of ``metaie_utils`` collects every ``import`` / ``from ... import`` statement,
wherever it is (module level, inside functions, under ``if TYPE_CHECKING``), resolves relative imports, and
checks two things:

1. the module graph has no cycle (a strongly connected component of more than one module);
2. every import goes to the same or a lower layer (see LAYERS; docs/ARCHITECTURE.md draws them), and a stage
   never imports another stage.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PKG = Path(__file__).resolve().parents[1] / "metaie_utils"

#: prefix -> (rank, what it may import besides lower ranks' modules)
LAYERS: list[tuple[str, int]] = [
    ("metaie_utils.core", 0),
    ("metaie_utils.models", 1),
    ("metaie_utils.llm", 1),
    ("metaie_utils.tasks", 1),
    ("metaie_utils.plots", 1),
    ("metaie_utils.stages", 2),
    ("metaie_utils.pipeline", 3),
    ("metaie_utils.summary", 3),
    ("metaie_utils.finetune", 3),
    ("metaie_utils.nbsync", 3),
    ("metaie_utils.cli", 4),
    ("metaie_utils.__main__", 4),
    ("metaie_utils", 4),  # the package __init__ (lazy top-level exports)
]


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Package modules that ``name`` imports anywhere in its source."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()

    def add(mod: str, names: list[str]) -> None:
        rest = False
        for n in names:  # `from pkg import submodule` imports the submodule (and runs pkg's __init__)
            if f"{mod}.{n}" in known:
                out.add(f"{mod}.{n}")
            else:
                rest = True
        if mod in known and rest:  # (like every import, a submodule's import also runs its parents' __init__:
            out.add(mod)          #  that implicit edge is left out for all imports alike)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "metaie_utils":
                    parts = a.name.split(".")
                    while parts and ".".join(parts) not in known:
                        parts.pop()
                    if parts:
                        out.add(".".join(parts))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "metaie_utils":
                continue
            add(mod, [a.name for a in node.names])
    out.discard(name)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imports_of(m, p, known) for m, p in mods.items()}


def rank(mod: str) -> int:
    for prefix, r in LAYERS:
        if mod == prefix or mod.startswith(prefix + "."):
            return r
    raise AssertionError(f"{mod} is in no layer: add it to LAYERS in tests/test_architecture.py and to docs/ARCHITECTURE.md")


def stage_of(mod: str) -> str | None:
    parts = mod.split(".")
    return ".".join(parts[:3]) if len(parts) >= 3 and parts[1] == "stages" else None


def sibling_of(mod: str) -> str | None:
    parts = mod.split(".")
    return parts[1] if len(parts) >= 2 and rank(mod) == 1 else None


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def layer_violations(g: dict[str, set[str]]) -> list[str]:
    bad = []
    for m, deps in sorted(g.items()):
        for d in sorted(deps):
            if m == "metaie_utils" or d == "metaie_utils":
                if d == "metaie_utils" and m != "metaie_utils":
                    bad.append(f"{m} imports the package root (import the module that defines the name)")
                continue
            if rank(d) > rank(m):
                bad.append(f"{m} (layer {rank(m)}) imports {d} (layer {rank(d)})")
            elif rank(d) == rank(m) == 1 and sibling_of(d) != sibling_of(m):
                bad.append(f"{m} imports its sibling layer {d} (models, llm, tasks and plots depend on core only)")
            elif rank(m) == 2 and stage_of(d) is not None and stage_of(d) != stage_of(m):
                bad.append(f"stage {m} imports another stage, {d} (stages are leaves: move shared code down)")
            elif rank(d) == rank(m) and rank(m) >= 3 and m != d and m != "metaie_utils.__main__":
                bad.append(f"{m} imports {d} of the same orchestration layer")
    return bad


def test_the_graph_sees_function_level_imports(tmp_path):
    # the walker must see an import hidden inside a function, or the cycle test below proves nothing
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from metaie_utils.core import paths\n    from .io import read_jsonl\n")
    deps = imports_of("metaie_utils.core.x", src, {"metaie_utils.core.paths", "metaie_utils.core.io"})
    assert deps == {"metaie_utils.core.paths", "metaie_utils.core.io"}


def test_cycle_finder_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    found = cycles(graph())
    assert not found, "import cycles (function-level imports included):\n" + "\n".join(" -> ".join(c) for c in found)


def test_imports_point_down_the_layers():
    bad = layer_violations(graph())
    assert not bad, "layer violations:\n" + "\n".join(bad)


def test_every_module_has_a_layer():
    for m in modules():
        rank(m)


#: modules allowed to rename files themselves: core.io (the atomic writers), core.assets (downloads, renamed only
#: after their sha256 is checked) and models.generative (a whole checkpoint folder made by mkdtemp, a unique name).
RENAMERS = {"metaie_utils.core.io", "metaie_utils.core.assets", "metaie_utils.models.generative"}


def renames_in(path: Path) -> list[str]:
    """``os.replace``/``os.rename`` calls and one-argument ``x.replace(y)``/``x.rename(y)`` (Path's, not str's)."""
    out = []
    for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in ("replace", "rename")):
            continue
        on_os = isinstance(n.func.value, ast.Name) and n.func.value.id == "os"
        if on_os or (len(n.args) == 1 and not n.keywords):
            out.append(f"{path.name}:{n.lineno}: {ast.unparse(n)}")
    return out


def test_renames_in_finds_a_planted_tmp_rename(tmp_path):
    src = tmp_path / "x.py"
    src.write_text("import os\ntmp.replace(path)\nos.replace(a, b)\ns = 'a'.replace('a', 'b')\n")
    assert [r.split(": ", 1)[1] for r in renames_in(src)] == ["tmp.replace(path)", "os.replace(a, b)"]


def test_every_file_write_that_renames_goes_through_core_io():
    """A hand-named tmp file (``x.tmp`` then a rename) is safe only while one process writes ``x``; session 20's
    flaky CI failure was two few-shot workers sharing one. Every writer goes through ``core.io.atomic_write_*``
    (a unique tmp per call, fsync'ed), so that this holds by construction rather than by the current call graph."""
    bad = [r for m, p in modules().items() if m not in RENAMERS for r in renames_in(p)]
    assert not bad, "write through metaie_utils.core.io.atomic_write_text/bytes instead:\n" + "\n".join(bad)
