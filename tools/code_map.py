"""Print the sections of multi_agent_system.py with their line ranges, for PROJECT.md's code map.

    python tools/code_map.py                    # sections only
    python tools/code_map.py orchestrate LLM.complete   # and where these are defined
    python tools/code_map.py --update           # rewrite PROJECT.md's ranges and L<line> pointers

A section starts at its banner (a line of dashes), whose next line is the
section's title comment, and runs to the line before the next banner.
tests/test_docs.py checks PROJECT.md's code map against the file the same way,
so after the chapter file changes, run it with --update.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "multi_agent_system.py"
BANNER = re.compile(r"^# -{20,}$")


def sections(lines: list[str]) -> list[tuple[str, int, int]]:
    """(title, first line, last line), 1-based; the part before the first banner is "Docstring and imports"."""
    starts = [
        i + 1
        for i, line in enumerate(lines[:-1])
        if BANNER.match(line) and lines[i + 1].startswith("# ") and not BANNER.match(lines[i + 1])
    ]
    titles = [re.split(r"[:.]", lines[s][2:], maxsplit=1)[0].strip() for s in starts]
    bounds = [1, *starts]
    names = ["Docstring and imports", *titles]
    ends = [s - 1 for s in starts] + [len(lines)]
    return list(zip(names, bounds, ends, strict=False))


def definitions(source: str) -> dict[str, int]:
    """Every def and class, as name or Class.method, with its line."""
    found: dict[str, int] = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            found[node.name] = node.lineno
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    found[f"{node.name}.{item.name}"] = item.lineno
    return found


DOC = SOURCE.parent / "PROJECT.md"


def update(doc: str, source: str) -> str:
    """PROJECT.md with every code-map range and every `name()` L<line> pointer made current."""
    ranges = {title: (first, last) for title, first, last in sections(source.splitlines())}
    defs = definitions(source)

    def row(match: re.Match[str]) -> str:
        title = match.group(2)
        if title not in ranges:
            return match.group(0)
        first, last = ranges[title]
        return f"{match.group(1)}{title} | {first}–{last} |"

    def pointer(match: re.Match[str]) -> str:
        name = match.group(2)
        return f"{match.group(1)} L{defs[name]}" if name in defs else match.group(0)

    doc = re.sub(r"^(\| \d+ \| )([^|]+?) \| \d+–\d+ \|", row, doc, flags=re.M)
    return re.sub(r"(`([A-Za-z_][\w.]*)(?:\(\))?`) L\d+", pointer, doc)


def main(argv: list[str]) -> int:
    text = SOURCE.read_text(encoding="utf-8")
    if argv == ["--update"]:
        DOC.write_text(update(DOC.read_text(encoding="utf-8"), text), encoding="utf-8")
        print(f"updated {DOC.name}")
        return 0
    for title, first, last in sections(text.splitlines()):
        print(f"{title}: {first}–{last}")
    defs = definitions(text)
    for name in argv:
        print(f"`{name}()` L{defs[name]}" if name in defs else f"{name}: not defined")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
