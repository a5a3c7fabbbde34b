"""Run the commands the documents quote, and keep what they print in the documents.

A number a document quotes from a run (tokens, calls, iterations, rounds, a
stop reason's detail) is written between two markers, under the command that
produced it, so that a test can run the command again and compare. Two kinds
of block exist. The output of one command, as it looks at 80 columns:

    <!-- run: python multi_agent_system.py "Write a haiku about agents" -->
    ```text
    ...what the command printed...
    ```
    <!-- /run -->

and a table of what some runs report with ``--json``, one row per command,
one column per field of the JSON (``exit`` is the command's exit code; a field
that holds a list is shown as its length, a token count as total (prompt +
completion), seconds as whole seconds); ``field:Heading_words`` names a
column's heading:

    <!-- runs: stop_reason calls iterations plans tokens
    [approve] python multi_agent_system.py "Write a haiku about agents" --demo-scenario approve --json
    [revise] python multi_agent_system.py "Write a haiku about agents" --demo-scenario revise --json
    -->
    | Run | Stop reason | Calls | Iterations | Plans | Tokens (prompt + completion) |
    ...
    <!-- /runs -->

A ``[label]`` before a command makes a first column, "Run". Each command runs
in bash, offline, in a fresh copy of the repository (no OPENAI_ variables, no
.env, no logs/), with ``python`` meaning the interpreter running this tool and
``COLUMNS=80``. A command may change its copy first, for an experiment that
edits the code: ``python tools/doc_runs.py edit FILE OLD NEW`` replaces the one
place OLD appears in FILE, and fails if OLD is not there exactly once, so an
experiment whose edit no longer applies says so instead of quietly measuring
the unedited code.

    python tools/doc_runs.py                    # check every document: exit 1, with the differences, if one is stale
    python tools/doc_runs.py --update           # run every command again and rewrite the blocks
    python tools/doc_runs.py --update PROJECT.md   # only this document

Run ids are written as RUN_ID, so a block changes only when the output does;
seconds are compared as "#.#", since a loaded machine takes longer.
tests/test_docs.py fails while a block differs from what its command prints.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS = [
    "README.md",
    "CONCEPTS.md",
    "CONCEPTS-2.md",
    "PROJECT.md",
    "EXPERIMENTS.md",
    "stages/stage3/README.md",
    "stages/stage3/activity/EXERCISE.md",
    "stages/variants/README.md",
    "examples/README.md",
    "bench/README.md",
]
# __pycache__ is copied: the copies keep the files' times, so Python need not compile them again.
NOT_COPIED = (".git", ".venv", ".venv-ci", "logs", ".pytest_cache", ".hypothesis", ".env", "secure_server.json")
RUN_ID = "20261202-070151-cd25863c5965"  # every run id in a block is written as this one
COMMAND_TIMEOUT_S = 180
BLOCK = re.compile(  # the markers begin lines; the opening one ends at the first "-->"
    r"^<!-- (?P<kind>runs?): (?P<spec>(?:(?!-->).)*?)-->\n(?P<body>.*?)^<!-- /(?P=kind) -->",
    re.S | re.M,
)
HEADINGS = {
    "exit": "Exit",
    "stop_reason": "Stop reason",
    "stop_detail": "Detail",
    "detail": "Detail",
    "tokens": "Tokens (prompt + completion)",
    "total_tokens": "Tokens",
}


@dataclass
class Block:
    kind: str  # "run" or "runs"
    spec: str  # what the opening marker says
    body: str  # what is between the markers now
    start: int  # where the body starts and ends in the document
    end: int

    def commands(self) -> list[tuple[str, str]]:
        """(label, command) for each command of the block; the label is "" when none is given."""
        if self.kind == "run":
            return [("", self.spec.strip())]
        lines = [line.strip() for line in self.spec.splitlines()[1:] if line.strip()]
        return [
            (m.group(1), m.group(2)) if (m := re.match(r"\[([^\]]+)\]\s+(.*)", line)) else ("", line) for line in lines
        ]

    def columns(self) -> list[str]:
        return self.spec.splitlines()[0].split()


def blocks(text: str) -> list[Block]:
    return [Block(m["kind"], m["spec"], m["body"], m.start("body"), m.end("body")) for m in BLOCK.finditer(text)]


# -- running a command in a copy of the repository ---------------------------------------


def copy_repository(where: Path) -> Path:
    copy = where / "repo"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(*NOT_COPIED))
    shim = where / "bin"
    shim.mkdir()
    for name in ("python", "python3"):
        (shim / name).write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        (shim / name).chmod(0o755)
    return copy


def offline_environment(shim: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_") and not k.endswith("_MODEL")}
    env = {k: v for k, v in env.items() if not k.startswith(("PYTEST_", "COV_"))}
    env.update(PATH=f"{shim}{os.pathsep}{env.get('PATH', '')}", COLUMNS="80", LINES="50", TERM="dumb")
    env.pop("FORCE_COLOR", None)
    env["NO_COLOR"] = "1"
    return env


@dataclass
class Ran:
    command: str
    code: int
    stdout: str
    stderr: str


def run(command: str) -> Ran:
    """One command, in bash, in a fresh copy of the repository."""
    with tempfile.TemporaryDirectory(prefix="doc-run-") as tmp:
        copy = copy_repository(Path(tmp))
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=copy,
            env=offline_environment(Path(tmp) / "bin"),
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
        out = done.stdout.replace(f"{copy}/", "").replace(str(copy), ".").replace(tmp, "/tmp")
        return Ran(command, done.returncode, out, done.stderr)


def run_all(commands: list[str]) -> dict[str, Ran]:
    unique = sorted(set(commands))
    with ThreadPoolExecutor(max_workers=min(4, 2 * (os.cpu_count() or 1))) as pool:
        return dict(zip(unique, pool.map(run, unique), strict=True))


# -- what a block should hold -----------------------------------------------------------


class BlockError(Exception):
    """A command failed in a way no document should show (a traceback, JSON that is not there)."""


def normal_ids(text: str) -> str:
    return re.sub(r"\b\d{8}-\d{6}-[0-9a-f]{12}\b", RUN_ID, text)


def output_body(block: Block, ran: Ran) -> str:
    if "Traceback (most recent call last)" in ran.stdout + ran.stderr:
        raise BlockError(f"{ran.command!r} crashed:\n{ran.stderr[-2000:]}")
    text = "\n".join(line.rstrip() for line in normal_ids(ran.stdout).rstrip("\n").splitlines()) + "\n"
    fence = re.match(r"(```[^\n]*)\n", block.body)
    return f"{fence.group(1)}\n{text}```\n" if fence else text


def cell(field: str, ran: Ran, summary: dict[str, Any]) -> str:
    if field == "exit":
        return str(ran.code)
    value: Any = summary
    for key in field.split("."):
        if not isinstance(value, dict) or key not in value:
            raise BlockError(f"{ran.command!r}: its JSON has no {field!r}")
        value = value[key]
    if isinstance(value, dict) and {"total", "prompt", "completion"} <= value.keys():  # a token count
        return f"{value['total']:,} ({value['prompt']:,} + {value['completion']:,})"
    if isinstance(value, list):
        value = len(value)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if field.endswith("seconds") else f"{value:g}"
    if field == "stop_reason":
        return f"`{value}`"
    return str(value).replace("|", "\\|")


def table_body(block: Block, results: dict[str, Ran]) -> str:
    commands = block.commands()
    labelled = any(label for label, _ in commands)
    fields = [column.split(":")[0] for column in block.columns()]
    headings = [
        column.split(":", 1)[1].replace("_", " ")
        if ":" in column
        else HEADINGS.get(column, column.replace("_", " ").capitalize())
        for column in block.columns()
    ]
    rows = [(["Run"] if labelled else []) + headings]
    for label, command in commands:
        ran = results[command]
        try:
            summary = json.loads(ran.stdout)
        except json.JSONDecodeError:
            raise BlockError(
                f"{command!r} printed no JSON (exit {ran.code}):\n{ran.stdout[-1000:]}{ran.stderr[-1000:]}"
            ) from None
        rows.append(([label] if labelled else []) + [cell(field, ran, summary) for field in fields])
    lines = [f"| {' | '.join(row)} |" for row in rows]
    lines.insert(1, "|" + " --- |" * len(rows[0]))
    return "\n".join(lines) + "\n"


def fresh_body(block: Block, results: dict[str, Ran]) -> str:
    if block.kind == "run":
        return output_body(block, results[block.commands()[0][1]])
    return table_body(block, results)


def comparable(text: str) -> str:
    """Seconds depend on the machine: they are compared as #.#. Spaces at the ends of lines are not compared."""
    lines = (line.rstrip() for line in normal_ids(text).splitlines())
    return re.sub(r"\d+\.\d(?=s\b| │)", "#.#", "\n".join(lines))


# -- documents ----------------------------------------------------------------------------


def stale_blocks(name: str, text: str, results: dict[str, Ran]) -> Iterator[tuple[Block, str]]:
    """(block, what it should hold) for every block of a document that differs from a fresh run."""
    for block in blocks(text):
        fresh = fresh_body(block, results)
        if comparable(fresh) != comparable(block.body):
            yield block, fresh


def commands_of(texts: dict[str, str]) -> list[str]:
    return [command for text in texts.values() for block in blocks(text) for _, command in block.commands()]


def updated(text: str, results: dict[str, Ran]) -> str:
    for block in reversed(blocks(text)):
        fresh = fresh_body(block, results)
        if comparable(fresh) != comparable(block.body):
            text = text[: block.start] + fresh + text[block.end :]
    return text


def edit(path: str, old: str, new: str) -> int:
    """Replace the one place ``old`` appears in a file of the copy; fail if it is not there exactly once."""
    target = Path(path)
    text = target.read_text(encoding="utf-8")
    if text.count(old) != 1:
        print(f"edit: {old!r} appears {text.count(old)} times in {path}, not once", file=sys.stderr)
        return 1
    target.write_text(text.replace(old, new), encoding="utf-8")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["edit"] and len(argv) == 4:
        return edit(*argv[1:])
    update = "--update" in argv
    names = [a for a in argv if a != "--update"] or DOCS
    texts = {name: (ROOT / name).read_text(encoding="utf-8") for name in names}
    results = run_all(commands_of(texts))
    stale = 0
    for name, text in texts.items():
        if update:
            fresh = updated(text, results)
            if fresh != text:
                (ROOT / name).write_text(fresh, encoding="utf-8")
                print(f"updated {name}")
            continue
        for block, fresh in stale_blocks(name, text, results):
            stale += 1
            print(f"{name}: the block of {block.commands()[0][1]!r} is stale; today it reads:\n{fresh}")
    if stale:
        print(f"{stale} block(s) out of date: python tools/doc_runs.py --update")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
