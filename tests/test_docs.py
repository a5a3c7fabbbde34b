"""The documents stay true to the code.

What is checked, in README.md, CONCEPTS.md, PROJECT.md, stages/stage3/README.md and its EXERCISE.md:

* Every name in `backticks` exists. ``name()`` must be a def or class (``Class.method()`` a
  method of that class); a bare identifier must be defined, assigned, imported, an argument,
  an attribute or a string literal somewhere in the project's Python files; ``--flag`` must
  be an option of one of the project's argument parsers (unless the command runs a tool from
  outside the project, such as ruff or pytest); a path must exist in the repository.
  Only text in backticks and commands in ```bash blocks are checked, never prose, so the test
  is strict about names without tripping on ordinary words. ALLOWLIST holds the few
  backticked things that are not code names.
* PROJECT.md's code map names sections and definitions, never line numbers: its rows are the
  chapter file's sections (the part banners and the ``# -- Title --`` banners), all of them and
  in the file's order; every name a row gives is defined in that section; and its "Defined here"
  column lists every public def and class of the section. No document points at a line number.
* PROJECT.md's walkthrough is exactly what tools/trace_walkthrough.py makes from a fresh run.
* Every edge of PROJECT.md's escalation state diagram names a test that exists.
* PROJECT.md's sequence diagram is exactly what ``--diagram`` prints for the recorded run it names.
* examples/README.md has a line for every recorded run in examples/.
* README.md's quickstart runs offline: each command in the section is run with the OpenAI
  variables removed, in a temporary copy of the repository, with ``python`` meaning this
  interpreter. Setup lines (``pip install``, creating or activating a virtual environment)
  are not run, since they need the network or change the environment: they are checked with
  ``bash -n`` for syntax, and a ``-r`` requirements file they name must exist.

A document that does not exist is a failure with a message saying so, never a skip.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import keyword
import os
import re
import shlex
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

# Every test here checks the documents: deselect them with  python -m pytest -m "not docs"  while you edit code.
pytestmark = pytest.mark.docs

ROOT = Path(__file__).resolve().parent.parent
DOCS = [
    "README.md",
    "CONCEPTS.md",
    "PROJECT.md",
    "stages/stage3/README.md",
    "stages/stage3/activity/EXERCISE.md",
    "stages/variants/README.md",
    "examples/README.md",
]
SKIP_DIRS = {".git", ".venv", ".venv-ci", "logs", "__pycache__", ".pytest_cache", "node_modules"}

# Backticked text that is not a name in the code, each with the reason.
ALLOWLIST = {
    "llama-server",  # llama.cpp's server program (README's server table)
    "logs/",  # made by the first run; ignored by git
    "logs/<run id>.jsonl",  # a placeholder for a trace file
    ".env",  # the user's own copy of .env.example; ignored by git
    "secure_server.json",  # written by the stage 3 activity when it is run; ignored by git
    "transfer_to_research",  # handoff tool names, built from HANDOFF_PREFIX + the agent's name
    "transfer_to_planner",
    "transfer_to_<name>",
    "--researcher-model",  # PROJECT.md's Researcher experiment: the flag appears once the student adds the role
    "RESEARCHER_MODEL",  # likewise, the variable that flag reads
}
EXTENSIONS = (".py", ".md", ".txt", ".json", ".jsonl", ".ini", ".toml", ".cfg", ".sh", ".example", ".yml", ".yaml")


# -- what exists ---------------------------------------------------------------------------


def python_files() -> list[Path]:
    found = []
    for path in ROOT.rglob("*.py"):
        if not SKIP_DIRS.intersection(path.relative_to(ROOT).parts):
            found.append(path)
    return sorted(found)


@cache
def code_index() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(callables, qualified methods "Class.method", every known name) across the project."""
    callables: set[str] = set()
    qualified: set[str] = set()
    names: set[str] = set()
    for path in python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names.add(path.stem)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                callables.add(node.name)
                names.add(node.name)
                if isinstance(node, ast.ClassDef):
                    for item in node.body:
                        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                            qualified.add(f"{node.name}.{item.name}")
                        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                            qualified.add(f"{node.name}.{item.target.id}")
            elif isinstance(node, (ast.arg, ast.keyword)) and node.arg:
                names.add(node.arg)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    names.update(alias.name.split("."))
                    if alias.asname:
                        names.add(alias.asname)
                if isinstance(node, ast.ImportFrom) and node.module:
                    names.update(node.module.split("."))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) < 80:
                names.add(node.value)
    names.update(dir(builtins), keyword.kwlist)  # `str`, `None`, `finally`: Python's own names
    env_example = ROOT / ".env.example"
    if env_example.exists():
        names.update(re.findall(r"^([A-Z][A-Z0-9_]*)=", env_example.read_text(), re.M))
    return frozenset(callables), frozenset(qualified), frozenset(names)


@cache
def known_flags() -> frozenset[str]:
    """Option strings of every argument parser: built for real where a build_parser() exists,
    read from add_argument() literals elsewhere."""
    flags: set[str] = set()
    for path in python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
                flags.update(a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("-"))
        top = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        if "build_parser" in top and "tests" not in path.relative_to(ROOT).parts:
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            parser = importlib.import_module(module).build_parser()
            for action in parser._actions:
                flags.update(action.option_strings)
    return frozenset(flags)


def read_doc(name: str) -> str:
    path = ROOT / name
    assert path.exists(), (
        f"{name} does not exist. The documents link to it, so it must be written "
        f"(or the links removed) before this test can pass."
    )
    return path.read_text(encoding="utf-8")


FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.S | re.M)


def split_fences(text: str) -> tuple[str, list[tuple[str, str]]]:
    """(the text without fenced blocks, [(language, body)])."""
    blocks = [(m.group(1).strip(), m.group(2)) for m in FENCE.finditer(text)]
    return FENCE.sub("", text), blocks


def spans(text: str) -> list[str]:
    prose, _ = split_fences(text)
    return [s.strip() for s in re.findall(r"`([^`\n]+)`", prose)]


# -- checking one backticked thing ---------------------------------------------------------


def looks_like_path(token: str) -> bool:
    if token.startswith(("/", "-", "~")) or "://" in token or "<" in token or ">" in token or "=" in token:
        return False
    if token.endswith(EXTENSIONS):
        return True
    first = token.split("/")[0]
    return "/" in token and bool(first) and (ROOT / first).exists()


def path_problem(token: str, doc_dir: Path) -> str | None:
    token = token.rstrip(".,;:)")
    if token in ALLOWLIST:
        return None
    for base in (ROOT, doc_dir):
        if any(base.glob(token.rstrip("/"))) if "*" in token else (base / token.rstrip("/")).exists():
            return None
    return f"file or folder {token!r} does not exist"


def flag_problem(token: str) -> str | None:
    flag = token.split("=")[0].rstrip(".,;:)")
    return None if flag in known_flags() else f"flag {flag!r} is not an option of any parser"


def module_problem(module: str) -> str | None:
    base = ROOT.joinpath(*module.split("."))
    return (
        None
        if base.with_suffix(".py").exists() or (base / "__init__.py").exists()
        else f"module {module!r} does not exist"
    )


def callable_problem(name: str) -> str | None:
    callables, qualified, names = code_index()
    if "." in name:
        head, _, last = name.rpartition(".")
        if name in qualified or (head in names and last in callables):
            return None
        return f"{name}() is not a method or function in the code"
    return None if name in callables else f"{name}() is not defined anywhere in the code"


# Programs that are not the project's: their flags are theirs (ruff format --check, pytest --doctest-modules).
EXTERNAL_PROGRAMS = {"ruff", "mypy", "pytest", "pip", "pip3", "git", "venv"}


def runs_external_program(tokens: list[str]) -> bool:
    """Whether a command (one segment of a pipeline) runs a tool from outside the project."""
    words = [t for t in tokens if not re.fullmatch(r"[A-Z][A-Z0-9_]*=.*", t)]  # VAR=value prefixes
    if words[:2] in (["python", "-m"], ["python3", "-m"]):
        words = words[2:]
    return bool(words) and words[0] in EXTERNAL_PROGRAMS


def command_problems(line: str, doc_dir: Path) -> list[str]:
    """Flags, modules and repository paths in a shell command or a phrase with spaces.

    Flags are checked against the project's parsers, except in a command that runs an external tool."""
    problems = []
    for segment in re.split(r"\|\||&&|[|;]", line):
        problems += segment_problems(segment, doc_dir)
    return problems


def segment_problems(segment: str, doc_dir: Path) -> list[str]:
    try:
        tokens = shlex.split(segment, comments=True)
    except ValueError:
        tokens = segment.split()
    external = runs_external_program(tokens)
    problems = []
    for i, token in enumerate(tokens):
        if token.startswith("--") and len(token) > 2:
            if not external:
                problems.append(flag_problem(token))
        elif i > 0 and tokens[i - 1] == "-m" and "." in token:
            problems.append(module_problem(token))
        elif looks_like_path(token):
            problems.append(path_problem(token, doc_dir))
    return [p for p in problems if p]


def span_problems(span: str, doc_dir: Path) -> list[str]:
    _, _, names = code_index()
    if span in ALLOWLIST or not span.strip("-.,:;!?()[]{}<>\"'*/ "):
        return []
    if "://" in span and " " not in span:
        return []  # an address, not a name
    if re.search(r"\s", span):
        return command_problems(span, doc_dir)
    if re.fullmatch(r"-{1,2}[A-Za-z][\w-]*", span):
        return [p for p in [flag_problem(span)] if p]
    if m := re.fullmatch(r"([A-Z][A-Z0-9_]*)=.*", span):
        return [] if m.group(1) in names else [f"variable {m.group(1)!r} is not read anywhere in the code"]
    if m := re.fullmatch(r"([A-Za-z_][\w.]*)\(.*\)", span):
        return [p for p in [callable_problem(m.group(1))] if p]
    if m := re.fullmatch(r"\w+\[[\"'](\w+)[\"']\]", span):
        return [] if m.group(1) in names else [f"key {m.group(1)!r} is not in the code"]
    if looks_like_path(span):
        return [p for p in [path_problem(span, doc_dir)] if p]
    if re.fullmatch(r"[A-Za-z_][\w.-]*", span):
        if span in names or (span.split(".")[-1] in names and span.split(".")[0] in names):
            return []
        return [f"{span!r} is not a name in the code"]
    return []  # punctuation, numbers, JSON fragments, quoted text


@pytest.mark.parametrize("doc", DOCS)
def test_every_backticked_name_flag_and_path_exists(doc: str) -> None:
    text = read_doc(doc)
    doc_dir = (ROOT / doc).parent
    problems = []
    for span in spans(text):
        problems += [f"`{span}`: {p}" for p in span_problems(span, doc_dir)]
    for language, body in split_fences(text)[1]:
        if language in ("bash", "sh", "shell", "console"):
            for line in body.splitlines():
                problems += [f"```bash {line.strip()!r}: {p}" for p in command_problems(line, doc_dir)]
    assert not problems, f"{doc} names things that do not exist:\n" + "\n".join(sorted(set(problems)))


# -- PROJECT.md: code map, walkthrough, state diagram --------------------------------------

PART_BANNER = re.compile(r"^# (PART \d+\b.*?)\s*$")
SECTION_BANNER = re.compile(r"^# -- (.+?)\s*-*\s*$")
CODE_MAP_ROW = re.compile(r"^\| (Part \d+) \| ([^|]+?) \| (.*) \| (.*) \|$", re.M)


def file_sections() -> list[tuple[str, str, set[str], list[str]]]:
    """(part, title, names defined there, public defs and classes) for each section of the chapter, in order.

    A section starts at a part banner (# PART 1 · ...) or a section banner (# -- Title: ... --) and
    runs to the next one; its title is the banner's text up to the first colon or full stop."""
    source = (ROOT / "multi_agent_system.py").read_text(encoding="utf-8")
    starts: list[tuple[int, str, str]] = []
    part = ""
    for number, line in enumerate(source.splitlines(), 1):
        if m := PART_BANNER.match(line):
            part = "Part " + m.group(1).split()[1]
            starts.append((number, part, m.group(1)))
        elif m := SECTION_BANNER.match(line):
            starts.append((number, part, re.split(r":\s|\.\s", m.group(1), maxsplit=1)[0].strip().rstrip(":.")))
    assert starts, "multi_agent_system.py has no section banners"
    members: list[set[str]] = [set() for _ in starts]
    public: list[list[str]] = [[] for _ in starts]
    for node in ast.parse(source).body:
        index = max((i for i, (first, _, _) in enumerate(starts) if first <= node.lineno), default=None)
        if index is None:
            continue  # the docstring and imports, before the first banner
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            members[index].add(node.name)
            if not node.name.startswith("_"):
                public[index].append(node.name)
            if isinstance(node, ast.ClassDef):
                members[index].update(
                    f"{node.name}.{item.name}"
                    for item in node.body
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
                )
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            members[index].update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return [(part, title, members[i], public[i]) for i, (_, part, title) in enumerate(starts)]


def code_map_rows() -> list[tuple[str, str, str, str]]:
    """(part, section title, what is there, defined here) for each row of PROJECT.md's code map."""
    text = read_doc("PROJECT.md")
    section = text.split("## 6. Code map", 1)
    assert len(section) == 2, "PROJECT.md has no '## 6. Code map' section"
    rows = CODE_MAP_ROW.findall(section[1].split("\n## ", 1)[0])
    assert rows, "the code map table has no rows of the form | Part n | Section | What is there | Defined here |"
    return [(part, title.strip(), what, defined) for part, title, what, defined in rows]


def test_code_map_names_every_section_in_file_order() -> None:
    actual = [(part, title) for part, title, _, _ in file_sections()]
    documented = [(part, title) for part, title, _, _ in code_map_rows()]
    expected = "\n".join(f"| {part} | {title} |" for part, title in actual)
    missing = [title for _, title in documented if title not in {t for _, t in actual}]
    assert not missing, f"PROJECT.md's code map names sections the file does not have: {missing}"
    assert documented == actual, (
        "PROJECT.md's code map does not list the file's sections in order "
        "(run python tools/code_map.py --update). The sections are:\n" + expected
    )


def test_code_map_names_are_defined_in_their_section() -> None:
    sections = {title: (members, public) for _, title, members, public in file_sections()}
    problems = []
    named = 0
    for _, title, what, defined in code_map_rows():
        members, public = sections[title]
        for name, call in re.findall(r"`([A-Za-z_][\w.]*)(\(\))?`", what + " " + defined):
            named += 1
            if name not in members:
                problems.append(f"{title}: `{name}{call}` is not defined in this section")
        listed = set(re.findall(r"`([A-Za-z_][\w.]*)(?:\(\))?`", defined))
        unlisted = [name for name in public if name not in listed]
        if unlisted:
            problems.append(f"{title}: 'Defined here' leaves out {', '.join(unlisted)}")
    assert not problems, "PROJECT.md's code map is out of date (run python tools/code_map.py --update):\n" + "\n".join(
        problems
    )
    assert named >= 20, "the code map should name what each section defines"


@pytest.mark.parametrize("doc", DOCS)
def test_no_line_number_pointers(doc: str) -> None:
    """Line numbers move with every edit: the documents point at sections and names instead."""
    pointers = re.findall(r"\bL\d+\b|\blines? \d+\s*[-–]\s*\d+\b", read_doc(doc))
    assert not pointers, f"{doc} points at line numbers: {sorted(set(pointers))}"


def test_walkthrough_is_what_the_trace_gives_today() -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        walkthrough = importlib.import_module("trace_walkthrough")
    finally:
        sys.path.remove(str(ROOT / "tools"))
    text = read_doc("PROJECT.md")
    assert walkthrough.BEGIN in text and walkthrough.END in text, "PROJECT.md lacks the walkthrough markers"
    documented = text[text.index(walkthrough.BEGIN) : text.index(walkthrough.END) + len(walkthrough.END)]
    fresh = walkthrough.render(walkthrough.read_events(walkthrough.run_demo("escalate", "Write a haiku about agents")))
    assert documented == fresh, (
        "PROJECT.md's walkthrough no longer matches a fresh run: regenerate it with "
        "python tools/trace_walkthrough.py --demo escalate"
    )


DIAGRAM = re.compile(r"<!-- diagram:begin (\S+) -->\n```mermaid\n(.*?)```\n<!-- diagram:end -->", re.S)


def test_the_sequence_diagram_is_what_the_recorded_run_gives() -> None:
    from machinery.replay import mermaid_diagram, read_trace

    found = DIAGRAM.findall(read_doc("PROJECT.md"))
    assert found, "PROJECT.md has no sequence diagram between <!-- diagram:begin TRACE --> and <!-- diagram:end -->"
    for trace, documented in found:
        fresh = mermaid_diagram(read_trace(ROOT / trace))
        assert documented.rstrip("\n") == fresh, (
            f"PROJECT.md's diagram of {trace} is out of date: paste the output of "
            f"python multi_agent_system.py --diagram {trace}"
        )


def test_every_recorded_example_has_a_readme_line() -> None:
    text = read_doc("examples/README.md")
    missing = [p.name for p in sorted((ROOT / "examples").glob("*.jsonl")) if f"`{p.name}`" not in text]
    assert not missing, f"examples/README.md does not describe {missing}"


def test_every_escalation_edge_names_a_real_test() -> None:
    callables, _, _ = code_index()
    tests = {name for name in callables if name.startswith("test_")}
    text = read_doc("PROJECT.md")
    diagrams = [body for language, body in split_fences(text)[1] if language == "mermaid" and "stateDiagram" in body]
    assert diagrams, "PROJECT.md has no Mermaid state diagram of the escalation ladder"
    edges = [line.strip() for body in diagrams for line in body.splitlines() if "-->" in line]
    assert len(edges) >= 8
    for edge in edges:
        named = re.findall(r"\btest_\w+", edge)
        assert named, f"edge without a test: {edge}"
        for name in named:
            assert name in tests, f"edge names {name}, which is not a test in tests/: {edge}"


# -- README.md: the quickstart runs offline ------------------------------------------------

SETUP = re.compile(
    r"(^|\s|&&\s*)(pip3? install|python3? -m pip install|python3? -m venv|\.\s+\S*activate|source\s+\S*activate)"
)


def quickstart_commands() -> list[str]:
    text = read_doc("README.md")
    match = re.search(r"^## Quickstart\s*$(.*?)(?=^## )", text, re.S | re.M | re.I)
    assert match, "README.md has no '## Quickstart' section"
    section = match.group(1)
    commands = []
    for language, body in split_fences(section)[1]:
        if language in ("bash", "sh", "shell", ""):
            commands += [
                line.strip() for line in body.splitlines() if line.strip() and not line.strip().startswith("#")
            ]
    commands += [s for s in spans(section) if re.match(r"(python3?|pip3?|bash|\.)\s", s)]
    assert commands, "the quickstart section has no commands"
    return commands


def test_quickstart_setup_lines_are_valid_shell() -> None:
    setup = [c for c in quickstart_commands() if SETUP.search(c)]
    for command in setup:
        check = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True)
        assert check.returncode == 0, f"not valid shell: {command}\n{check.stderr}"
        for requirements in re.findall(r"-r\s+(\S+)", command):
            assert (ROOT / requirements).exists(), f"{command}: {requirements} does not exist"


def test_quickstart_commands_run_offline(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(*SKIP_DIRS, "*.pyc"))
    shim = tmp_path / "bin"
    shim.mkdir()
    for name in ("python", "python3"):
        (shim / name).write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        (shim / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_") and not k.endswith("_MODEL")}
    env["PATH"] = f"{shim}{os.pathsep}{env.get('PATH', '')}"
    runnable = [c for c in quickstart_commands() if not SETUP.search(c)]
    assert runnable, "the quickstart has no command to run besides setup"
    for command in runnable:
        done = subprocess.run(["bash", "-c", command], cwd=copy, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (
            f"quickstart command failed ({done.returncode}): {command}\n{done.stdout}\n{done.stderr}"
        )
