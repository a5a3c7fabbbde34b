"""The documents stay true to the code, and to what the programs print.

What is checked, in every document of DOCS:

* Every name in `backticks` exists. ``name()`` must be a def or class (``Class.method()`` a
  method of that class); a bare identifier must be defined, assigned, imported, an argument,
  an attribute or a string literal somewhere in the project's Python files; ``--flag`` must
  be an option of one of the project's argument parsers (unless the command runs a tool from
  outside the project, such as ruff or pytest); a path must exist in the repository, unless it
  is one the programs write or the user keeps (logs/, secure_server.json, .env: what .gitignore
  names) or follows --log-dir, --output or --out. Only text in backticks and commands in
  ```bash blocks are checked, never prose, so the test is strict about names without tripping
  on ordinary words. ALLOWLIST holds the few backticked things that are not code names.
* Every number quoted from a run sits between run markers, and is what its command prints today
  (tools/doc_runs.py runs the commands and rewrites the blocks).
* PROJECT.md's code map is what tools/code_map.py makes from the code: the chapter's sections in
  order, with what each defines, and one row per module of machinery/. Its hand-written column
  names only what its section defines. Its import picture has every module, and no import
  points up. No document points at a line number.
* PROJECT.md's walkthrough is exactly what tools/trace_walkthrough.py makes from a fresh run, and the
  tool replays runs that end without approval too (their best draft is the result).
* Every edge of PROJECT.md's escalation state diagram names a test that exists.
* PROJECT.md's sequence diagram is exactly what ``--diagram`` prints for the recorded run it names.
* examples/README.md has a line for every recorded run in examples/.
* README.md's quickstart runs offline: each command in the section is run with the OpenAI
  variables removed, in a temporary copy of the repository, with ``python`` meaning this
  interpreter. Setup (``pip install``, creating or activating a virtual environment) is not
  run, since it needs the network or changes the environment: it is checked with ``bash -n``
  for syntax, and a ``-r`` requirements file it names must exist. Its one test command is the
  one .ci/run runs. And after the quickstart (and the stage 3 solution, which writes a file)
  has run in a copy, the document checks still pass there.

A document that does not exist is a failure with a message saying so, never a skip.
"""

from __future__ import annotations

import ast
import builtins
import fnmatch
import importlib
import keyword
import os
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from conftest import ROOT, tool

# Every test here checks the documents: deselect them with  python -m pytest -m "not docs"  while you edit code.
pytestmark = pytest.mark.docs

DOCS = tool("doc_runs").DOCS  # the documents, listed once: tools/doc_runs.py rewrites their run blocks
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
    "--researcher-model",  # EXPERIMENTS.md's Researcher experiment: the flag appears once the student adds the role
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


@cache
def written_by_programs() -> tuple[str, ...]:
    """Patterns of .gitignore: what the programs write (logs/, secure_server.json) or the user keeps (.env)."""
    ignore = ROOT / ".gitignore"
    lines = ignore.read_text(encoding="utf-8").splitlines() if ignore.exists() else []
    return tuple(line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#"))


def is_written_by_a_program(token: str) -> bool:
    """A path under logs/, or any path git is told to ignore: it exists only once something has been run."""
    parts = Path(token.rstrip("/")).parts
    return any(fnmatch.fnmatch(part, pattern) for part in parts for pattern in written_by_programs())


def path_problem(token: str, doc_dir: Path) -> str | None:
    token = token.rstrip(".,;:)")
    if token in ALLOWLIST or is_written_by_a_program(token):
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
OUTPUT_FLAGS = {"--log-dir", "--output", "--out"}  # their value is written by the command
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
        if i > 0 and tokens[i - 1] in OUTPUT_FLAGS:
            continue  # a file or folder the command will write: it need not exist yet
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
    if span in ALLOWLIST or not span.strip("-.,:;!?()[]{}<>\"'*/ ") or span.startswith("<!--"):
        return []  # punctuation, or a marker the documents use (an HTML comment)
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


def test_the_code_map_is_what_the_tool_makes_today() -> None:
    code_map = tool("code_map")
    text = read_doc("PROJECT.md")
    fresh = code_map.update(text, (ROOT / "multi_agent_system.py").read_text(encoding="utf-8"))
    assert fresh == text, "PROJECT.md's code map is out of date: run python tools/code_map.py --update"
    assert code_map.PLACEHOLDER not in text, "a row of the code map still says " + code_map.PLACEHOLDER


def test_code_map_names_are_defined_in_their_section() -> None:
    """The hand-written "What is there" column names only what its section defines."""
    code_map = tool("code_map")
    found = code_map.sections((ROOT / "multi_agent_system.py").read_text(encoding="utf-8"))
    described = code_map.descriptions(read_doc("PROJECT.md"))
    problems, named = [], 0
    for section in found:
        for name in re.findall(r"`([A-Za-z_][\w.]*)(?:\(\))?`", described.get(section.title, "")):
            named += 1
            if name not in section.members:
                problems.append(f"{section.title}: `{name}` is not defined in this section")
    assert not problems, "PROJECT.md's code map names things out of place:\n" + "\n".join(problems)
    assert named >= 10, "the code map should name what each section holds"


IMPORTS = re.compile(r"<!-- imports:begin -->\n```text\n(.*?)```\n<!-- imports:end -->", re.S)


def test_the_import_picture_shows_every_module_and_imports_point_down() -> None:
    """PROJECT.md draws the modules in layers, top to bottom: each may import only its own layer or lower ones."""
    code_map = tool("code_map")
    found = IMPORTS.search(read_doc("PROJECT.md"))
    assert found, "PROJECT.md has no import picture between <!-- imports:begin --> and <!-- imports:end -->"
    modules = {m.path.removeprefix("machinery/").removesuffix(".py"): m for m in code_map.modules()}
    names = {*modules, "multi_agent_system"}
    layers: list[set[str]] = []
    for line in found.group(1).splitlines():
        drawn = re.split(r"\s{2,}\(", line)[0]  # a comment in brackets may follow the names
        layer = {w.removeprefix("machinery/").removesuffix(".py") for w in re.findall(r"[\w/.]+", drawn)} & names
        if layer:
            layers.append(layer)
    placed = [name for layer in layers for name in layer]
    assert sorted(placed) == sorted(names), f"each module once in the picture: {sorted(set(names) ^ set(placed))}"
    assert {"multi_agent_system"} in layers, "the chapter should have a layer of its own"
    level = {name: i for i, layer in enumerate(reversed(layers)) for name in layer}
    chapter_imports = code_map.imported_modules(ast.parse((ROOT / "multi_agent_system.py").read_text()))
    imports = {
        name: {"multi_agent_system" if i == "the chapter" else i for i in m.imports} for name, m in modules.items()
    }
    imports["multi_agent_system"] = {i.removeprefix("machinery.") for i in chapter_imports}
    upward = [f"{a} imports {b}" for a, deps in imports.items() for b in deps if level[b] > level[a]]
    assert not upward, "the picture has imports pointing up:\n" + "\n".join(upward)


@pytest.mark.parametrize("doc", DOCS)
def test_no_line_number_pointers(doc: str) -> None:
    """Line numbers move with every edit: the documents point at sections and names instead."""
    pointers = re.findall(r"\bL\d+\b|\blines? \d+\s*[-–]\s*\d+\b", read_doc(doc))
    assert not pointers, f"{doc} points at line numbers: {sorted(set(pointers))}"


def test_walkthrough_is_what_the_trace_gives_today() -> None:
    walkthrough = tool("trace_walkthrough")
    text = read_doc("PROJECT.md")
    assert walkthrough.BEGIN in text and walkthrough.END in text, "PROJECT.md lacks the walkthrough markers"
    documented = text[text.index(walkthrough.BEGIN) : text.index(walkthrough.END) + len(walkthrough.END)]
    fresh = walkthrough.render(walkthrough.read_events(walkthrough.run_demo("escalate", "Write a haiku about agents")))
    assert documented == fresh, (
        "PROJECT.md's walkthrough no longer matches a fresh run: regenerate it with "
        "python tools/trace_walkthrough.py --demo escalate"
    )


@pytest.mark.parametrize(
    "limits",
    [[], ["--max-iterations", "1"], ["--max-tokens", "2500", "--max-plans", "99"]],
    ids=["give_up", "max_iterations", "token_budget"],
)
def test_the_walkthrough_replays_a_run_that_ends_without_approval(tmp_path: Path, limits: list[str]) -> None:
    """Experiment 11 has a student replay their own trace: the replay lands where the run did, best draft included."""
    from io import StringIO

    from rich.console import Console

    from machinery import cli

    walkthrough = tool("trace_walkthrough")
    argv = ["Write a haiku about agents", "--demo-scenario", "exhaust", *limits, "--quiet", "--log-dir", str(tmp_path)]
    cli.main(argv, console=Console(file=StringIO()))
    (trace,) = tmp_path.glob("*.jsonl")
    text = walkthrough.render(walkthrough.read_events(trace))  # raises when the replay disagrees with the end event
    assert "the best draft is the result" in text and "| `best` |" in text


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


TEST_COMMAND = re.compile(r"^python3? -m pytest\b")


def quickstart_runs() -> list[str]:
    """The parts of the quickstart's commands a test can run: not the setup (network, environment), not the tests."""
    parts = [part.strip() for command in quickstart_commands() for part in command.split("&&")]
    return [part for part in parts if part and not SETUP.search(part) and not TEST_COMMAND.match(part)]


def test_quickstart_setup_lines_are_valid_shell() -> None:
    setup = [c for c in quickstart_commands() if SETUP.search(c)]
    assert setup, "the quickstart should say how to set up (a virtual environment, pip install)"
    for command in setup:
        check = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True)
        assert check.returncode == 0, f"not valid shell: {command}\n{check.stderr}"
        for requirements in re.findall(r"-r\s+(\S+)", command):
            assert (ROOT / requirements).exists(), f"{command}: {requirements} does not exist"


def test_the_readme_test_command_is_what_ci_runs() -> None:
    tests = [c for c in quickstart_commands() if TEST_COMMAND.match(c)]
    assert len(tests) == 1, f"the quickstart should give one command that runs the tests, not {tests}"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert tests[0] in ci, f".ci/run does not run the README's test command, {tests[0]!r}, as a line of its own"
    assert f"`{tests[0]}`" in read_doc("README.md"), "the README should name its test command where it explains it"


def run_quickstart(copy: Path, env: dict[str, str]) -> None:
    runnable = quickstart_runs()
    assert runnable, "the quickstart has no command to run besides setup and tests"
    for command in runnable:
        done = subprocess.run(["bash", "-c", command], cwd=copy, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (
            f"quickstart command failed ({done.returncode}): {command}\n{done.stdout}\n{done.stderr}"
        )


def test_quickstart_commands_run_offline(tmp_path: Path) -> None:
    doc_runs = tool("doc_runs")
    copy = doc_runs.copy_repository(tmp_path)
    run_quickstart(copy, doc_runs.offline_environment(tmp_path / "bin"))


INSIDE_THE_COPY = "DOCS_AFTER_QUICKSTART"  # set in the copy below: that run does not start another


@pytest.mark.skipif(bool(os.environ.get(INSIDE_THE_COPY)), reason="this is the copy the test made")
def test_the_docs_tests_pass_after_the_quickstart_has_run(tmp_path: Path) -> None:
    """Files the programs write (logs/, secure_server.json) never make a document check fail."""
    doc_runs = tool("doc_runs")
    copy = doc_runs.copy_repository(tmp_path)
    env = doc_runs.offline_environment(tmp_path / "bin")
    run_quickstart(copy, env)
    for writer in ("python -m stages.stage3.activity.solution_workflow",):  # it writes secure_server.json here
        subprocess.run(["bash", "-c", writer], cwd=copy, env=env, capture_output=True, timeout=120, check=True)
    assert (copy / "logs").is_dir() and (copy / "secure_server.json").exists()
    suite = ["-m", "pytest", "-q", "-m", "docs", "-p", "no:cacheprovider", "tests/test_docs.py"]
    done = subprocess.run(
        [sys.executable, *suite, "-k", "not run_blocks"],  # run blocks copy the repository without logs/ anyway
        cwd=copy,
        env={**env, INSIDE_THE_COPY: "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, "after the quickstart, the docs tests fail:\n" + done.stdout[-4000:]


# -- numbers quoted from runs --------------------------------------------------------------


@pytest.mark.parametrize("doc", DOCS)
def test_run_blocks_are_what_their_commands_print_today(doc: str) -> None:
    """Every number a document quotes from a run sits in a block that tools/doc_runs.py fills from the run."""
    doc_runs = tool("doc_runs")
    text = read_doc(doc)
    results = doc_runs.run_all(doc_runs.commands_of({doc: text}))
    stale = [(block.commands()[0][1], fresh) for block, fresh in doc_runs.stale_blocks(doc, text, results)]
    assert not stale, (
        f"{doc} quotes runs that now print something else (python tools/doc_runs.py --update {doc}):\n"
        + "\n".join(f"{command}\n{fresh}" for command, fresh in stale)
    )
