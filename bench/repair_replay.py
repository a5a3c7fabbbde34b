"""How many drafts that code rejected would code's cuts have mended? Replayed from the traces of live runs.

    python -m bench.repair_replay bench/results/2026-12-07-*-32-tasks*.jsonl

Each results file (from bench/live_tasks.py) names the trace of every loop row. For every draft the worker
wrote in those traces, this measures it against the task's requirements (the trace's ``start`` event), and
for each that failed one, asks ``repaired()`` for a cut: does the cut pass every requirement, and does the
task's own independent checker (bench/live_task_set.py or bench/heldout_task_set.py) pass it too? No model is
called. A trace that is gone (traces live in the runner's --log-dir, outside the repository), or that code
already cut drafts in (its drafts are recorded cut), is counted and skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.heldout_task_set import TASKS as HELDOUT
from bench.live_task_set import TASKS
from machinery.checks import Requirement, measure
from machinery.repairs import MENDED, repaired


def replay(results: list[Path]) -> Counter[str]:
    check = {t["id"]: t["check"] for t in [*TASKS, *HELDOUT]}
    seen: set[str] = set()
    counts: Counter[str] = Counter()
    for path in results:
        for line in path.read_text(encoding="utf-8").splitlines():
            row: dict[str, Any] = json.loads(line) if line.strip() else {}
            trace = row.get("trace")
            if row.get("mode") != "loop" or not trace or trace in seen or row.get("task") not in check:
                continue
            seen.add(trace)
            if not Path(trace).exists():
                counts["traces missing"] += 1
                continue
            events = [json.loads(e) for e in Path(trace).read_text(encoding="utf-8").splitlines() if e.strip()]
            if any(e["event"] == "warning" and e.get("message", "").startswith(MENDED) for e in events):
                counts["traces skipped: code cut drafts in them already"] += 1
                continue
            start = next(e for e in events if e["event"] == "start")
            needs = [Requirement(r["kind"], r["value"], r["quote"]) for r in start["requirements"]]
            counts["traces"] += 1
            for e in events:
                if e["event"] != "step" or e.get("role") != "worker" or not e.get("body"):
                    continue
                counts["drafts"] += 1
                if all(measure(e["body"], r)[0] for r in needs):
                    continue
                counts["drafts code rejected"] += 1
                fix = repaired(e["body"], needs)
                if fix is None:
                    continue
                counts["cut"] += 1
                if all(measure(fix.draft, r)[0] for r in needs):
                    counts["cut, and every requirement check passed"] += 1
                    counts["...and the task's own checker passed"] += bool(check[row["task"]](fix.draft)[0])
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("results", type=Path, nargs="+", help="results files of bench/live_tasks.py")
    counts = replay(p.parse_args(argv).results)
    for name, n in counts.items():
        print(f"{name}: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
