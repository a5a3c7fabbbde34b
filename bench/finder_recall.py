"""How many of the requirements a careful reader sees in a task does the finder find?

    python -m bench.finder_recall                       # bench/data/finder_heldout.jsonl
    python -m bench.finder_recall FILE.jsonl --misses   # and list what it missed or added
    python -m bench.finder_recall --kinds               # found of labelled, kind by kind

Each line of the file is one task and what a reader labelled in it, written by
someone who had not read machinery/finder.py:

    {"id": "h4-01", "task": "...", "expect": [{"kind": "max_words", "value": 50}, ...]}

Recall is the share of labelled requirements the finder found with the same kind
and value. An extra is a requirement the finder found that nobody labelled: the
costly mistake, since code then rejects a draft for breaking a rule the task
never set. A miss only means the critic's model judges that part alone, as it
judged everything before code measured anything.

Values match loosely where a reader could write them either way: text ignores
case, surrounding quotes and a final full stop (but ``ends_with`` keeps its
closing mark, as its check does); key lists ignore order; "under 50 words" (in all
or each) may be labelled 50 or 49.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from machinery.finder import requirements_from_task

HELD_OUT = Path(__file__).resolve().parent / "data" / "finder_heldout.jsonl"


def _text(value: Any, keep_mark: bool) -> str:
    text = str(value).strip().strip("\"'“”‘’").strip()
    return (text if keep_mark else text.rstrip(".")).casefold()


def same(kind: str, expected: Any, found: Any) -> bool:
    """Whether a found value is the labelled one, as a reader would judge it."""
    if isinstance(expected, bool) or isinstance(found, bool):
        return bool(expected) == bool(found)
    if isinstance(expected, int) and isinstance(found, int):
        return found == expected or (kind in ("max_words", "item_max_words") and found == expected - 1)
    if isinstance(expected, list) and isinstance(found, list):
        return sorted(_text(v, False) for v in expected) == sorted(_text(v, False) for v in found)
    if isinstance(expected, dict) and isinstance(found, dict):
        columns = expected.get("columns")
        if columns is not None and not same("table", list(columns), list(found.get("columns") or [])):
            return False
        return expected.get("rows") is None or expected.get("rows") == found.get("rows")
    if isinstance(expected, str) and isinstance(found, str):
        return _text(expected, kind == "ends_with") == _text(found, kind == "ends_with")
    return False


def score(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Recall and extras over labelled tasks, with what was missed or added in each."""
    labelled = found_right = 0
    extras: list[tuple[str, str, Any]] = []
    misses: list[tuple[str, str, Any]] = []
    per_kind: Counter[str] = Counter()
    per_kind_found: Counter[str] = Counter()
    for row in rows:
        found = [(r.kind, r.value) for r in requirements_from_task(row["task"])]
        unmatched = list(found)
        for want in row["expect"]:
            labelled += 1
            per_kind[want["kind"]] += 1
            hit = next((f for f in unmatched if f[0] == want["kind"] and same(f[0], want["value"], f[1])), None)
            if hit is None:
                misses.append((row["id"], want["kind"], want["value"]))
                continue
            unmatched.remove(hit)
            found_right += 1
            per_kind_found[want["kind"]] += 1
        extras += [(row["id"], kind, value) for kind, value in unmatched]
    return {
        "tasks": len(rows),
        "labelled": labelled,
        "found": found_right,
        "recall": found_right / labelled if labelled else 1.0,
        "extras": extras,
        "misses": misses,
        "per_kind": {k: (per_kind_found[k], n) for k, n in sorted(per_kind.items())},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path, default=HELD_OUT)
    parser.add_argument("--misses", action="store_true", help="list each miss and extra")
    parser.add_argument("--kinds", action="store_true", help="found of labelled, for each kind")
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in args.file.read_text(encoding="utf-8").splitlines() if line.strip()]
    result = score(rows)
    out = sys.stdout
    out.write(
        f"{result['tasks']} tasks, {result['labelled']} labelled requirements: "
        f"found {result['found']} ({result['recall']:.0%}), "
        f"{len(result['extras'])} found that nobody labelled\n"
    )
    for kind, (hit, total) in result["per_kind"].items() if args.kinds else ():
        out.write(f"  {kind:<15} {hit}/{total}\n")
    if args.misses:
        for task_id, kind, value in result["misses"]:
            out.write(f"missed {task_id}: {kind} {json.dumps(value)}\n")
        for task_id, kind, value in result["extras"]:
            out.write(f"extra  {task_id}: {kind} {json.dumps(value)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
