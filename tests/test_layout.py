"""The house: a chapter that reads alone, machinery beside it, and imports that point one way.

- multi_agent_system.py (the chapter) is at most CHAPTER_MAX_LINES lines; every other file, code or document, at most FILE_MAX_LINES.
- The chapter imports only the leaf modules (LEAVES); a leaf imports only other leaves.
- No import cycle exists among the project's modules, counting imports made only for type hints
  and imports inside functions. The one exception is the chapter's ``if __name__ == "__main__":``
  block, which starts the command line when the file is run as a script.
- No module reaches into another project module's private (``_name``) names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTER_MAX_LINES = 1_000
FILE_MAX_LINES = 700
LEAVES = {
    "machinery.text",
    "machinery.verdicts",
    "machinery.checks",
    "machinery.finder",
    "machinery.plans",
    "machinery.disputes",
    "machinery.repairs",
}
SKIP = {".venv", ".venv-ci", ".git", "logs", "__pycache__", ".hypothesis"}


def project_files() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if not SKIP & set(p.relative_to(ROOT).parts))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in project_files() if p.relative_to(ROOT).parts[0] != "tests"}


def is_main_block(node: ast.stmt) -> bool:
    test = getattr(node, "test", None)
    return (
        isinstance(node, ast.If)
        and isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
    )


def imports_of(path: Path) -> set[str]:
    """Every project module ``path`` imports, anywhere in it (its __main__ block aside)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    body = [node for node in tree.body if not is_main_block(node)]
    found: set[str] = set()
    for node in (n for top in body for n in ast.walk(top)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        found |= {name for name in names if name in MODULES}
    return found - {module_name(path)}


GRAPH = {name: imports_of(path) for name, path in MODULES.items()}


def test_the_chapter_is_short_enough_to_read_in_one_sitting() -> None:
    lines = len((ROOT / "multi_agent_system.py").read_text(encoding="utf-8").splitlines())
    assert lines <= CHAPTER_MAX_LINES


def documents() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.md") if not SKIP & set(p.relative_to(ROOT).parts))


@pytest.mark.parametrize(
    "path", [p for p in project_files() + documents() if p.name != "multi_agent_system.py"], ids=str
)
def test_no_other_file_is_longer_than_the_house_allows(path: Path) -> None:
    assert len(path.read_text(encoding="utf-8").splitlines()) <= FILE_MAX_LINES


def test_the_chapter_imports_only_leaves_and_leaves_import_only_leaves() -> None:
    assert GRAPH["multi_agent_system"] <= LEAVES, GRAPH["multi_agent_system"] - LEAVES
    for leaf in LEAVES:
        assert GRAPH[leaf] <= LEAVES, f"{leaf} imports {GRAPH[leaf] - LEAVES}"


def test_machinery_never_imports_the_stages_bench_or_tools() -> None:
    for name, deps in GRAPH.items():
        if name.startswith("machinery"):
            assert not {d for d in deps if d.split(".")[0] in ("stages", "bench", "tools")}, name


def test_no_import_cycle_anywhere() -> None:
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = "open"
        path.append(name)
        for dep in sorted(GRAPH.get(name, ())):
            if state.get(dep) == "open":
                cycle = [*path[path.index(dep) :], dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        path.pop()
        state[name] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)


def private_reaches(path: Path) -> list[str]:
    """``from ours import _x`` and ``ours._x`` where ``ours`` is another project module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in MODULES:
            found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
            aliases.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names})
        elif isinstance(node, ast.Import):
            aliases.update({a.asname or a.name: a.name for a in node.names if a.name in MODULES})
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and isinstance(node.value, ast.Name)
            and aliases.get(node.value.id) in MODULES
        ):
            found.append(f"{aliases[node.value.id]}.{node.attr}")
    return found


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_reaches_into_another_modules_private_names(name: str) -> None:
    assert private_reaches(MODULES[name]) == []
