"""Live benchmark: on a real model, does the loop satisfy tasks it was not tuned for, and beat one plain call?

The 32 tasks in bench/live_task_set.py (two or more constraints in most) each have
a checker written independently of the kit. The runner runs the loop on every
task as a subprocess of a checkout (``--repo``), reads ``result`` from its
``--json`` output (the approved draft, or the draft it kept) and checks it.

Modes:
  (default)   the loop only
  --compare   the loop with ``--compare``: one plain call to the worker's model
              first, so each task gives a loop row and a single-call row
  --single    one plain call per task, made here with the openai SDK (the task
              alone as the user message, as --compare does): for checkouts that
              have no --compare

This talks to a real model and is slow: run it by hand, never in CI. From the
repository root, with the local server (it prints its base URL):

    OPENAI_BASE_URL=$(../shared/tools/local_llm.sh) OPENAI_API_KEY=local \\
    OPENAI_MODEL=qwen2.5-coder-1.5b-instruct \\
        python bench/live_tasks.py --repo . --compare --out bench/results/live.jsonl

Options: --only ID,ID; --tasks heldout runs the 16 tasks of bench/heldout_task_set.py
instead; --out FILE.jsonl (one JSON line per task and mode,
appended); --timeout S per task (default 1200; a timeout counts as not
satisfied, stop reason "runner_timeout"); --log-dir DIR for the traces;
--jobs N tasks at once (default 1; the local server serves two at a time);
--table FILE.jsonl prints the table of recorded rows and exits; --totals FILE.jsonl ...
(with --mode loop or single) prints their totals as JSON and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/live_tasks.py` as well as `python -m bench.live_tasks`
    sys.path.insert(0, str(ROOT))

from bench.live_task_set import TASKS

KEPT = ("stop_reason", "stop_detail", "calls", "total_tokens", "iterations", "plans", "trace", "approved")


def parse_summary(stdout: str) -> dict[str, Any]:
    """The JSON object printed by --json; lines before the first '{' line are skipped."""
    lines = stdout.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("{"):
            value, _ = json.JSONDecoder().raw_decode("".join(lines[i:]))
            return value
    raise ValueError("no JSON object in the output")


def run_loop(task: dict[str, Any], repo: Path, log_dir: Path, timeout: float, compare: bool) -> list[dict[str, Any]]:
    """The loop's row (and, with --compare, the plain call's row) for one task."""
    cmd = [sys.executable, str(repo / "multi_agent_system.py"), task["task"], "--json", "--log-dir", str(log_dir)]
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [*cmd, *(["--compare"] if compare else [])],
            cwd=repo,
            env=dict(os.environ),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        summary = parse_summary(proc.stdout)
    except subprocess.TimeoutExpired:
        return [{"mode": "loop", "result": None, "stop_reason": "runner_timeout", "seconds": timeout}]
    except ValueError as err:
        tail = (proc.stderr or proc.stdout).strip()[-300:]
        detail = f"exit {proc.returncode}: {err}: {tail}"
        return [{"mode": "loop", "result": None, "stop_reason": "runner_error", "stop_detail": detail}]
    seconds = round(time.monotonic() - started, 1)
    rows = [{"mode": "loop", "result": summary.get("result"), "seconds": seconds, **{k: summary.get(k) for k in KEPT}}]
    rows[0]["best"] = summary.get("best")
    single = (summary.get("compare") or {}).get("single")
    if single is not None:
        rows.append(
            {
                "mode": "single",
                "result": single.get("result"),
                "approved": None,
                "stop_reason": "error" if single.get("result") is None else "one call",
                "calls": single.get("calls"),
                "total_tokens": single.get("tokens"),
                "seconds": single.get("seconds"),
            }
        )
        rows[0]["seconds"] = round(seconds - (single.get("seconds") or 0.0), 1)
    return rows


def run_single(task: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
    """One plain call, as --compare sends it: the task alone, the worker's completion cap. Its answer is checked
    as it came back; --compare's is cleaned and, since 8dcc3ca, cut to a count as the worker's drafts are."""
    from openai import OpenAI

    client = OpenAI(
        base_url=os.environ.get("OPENAI_BASE_URL") or None,
        api_key=os.environ.get("OPENAI_API_KEY") or "not-needed",  # local servers accept any key
        timeout=timeout,
        max_retries=0,
    )
    started = time.monotonic()
    try:
        reply = client.chat.completions.create(
            model=os.environ.get("WORKER_MODEL") or os.environ.get("OPENAI_MODEL") or "gpt-4o-mini",
            messages=[{"role": "user", "content": task["task"]}],
            max_tokens=1200,
        )
    except Exception as err:  # any failure is one row of the table, not a crash
        return [{"mode": "single", "result": None, "stop_reason": "api_error", "stop_detail": f"{err}"[:300]}]
    return [
        {
            "mode": "single",
            "result": reply.choices[0].message.content,
            "approved": None,
            "stop_reason": "one call",
            "calls": 1,
            "total_tokens": reply.usage.total_tokens if reply.usage else None,
            "seconds": round(time.monotonic() - started, 1),
        }
    ]


def checked(task: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    text = row.get("result") or ""
    ok, why = task["check"](text) if text.strip() else (False, "no output")
    approved = row.get("approved")
    extra = {"approved_but_failing": bool(approved) and not ok} if row["mode"] == "loop" else {}
    return {"task": task["id"], "satisfied": ok, "why": why, **row, **extra}


def print_table(rows: list[dict[str, Any]]) -> None:
    """One line per task: satisfied, approved, calls and tokens for the loop and for the plain call."""
    by_task: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        by_task.setdefault(r["task"], {})[r["mode"]] = r
    mark = {True: "yes", False: "no", None: "-"}
    print(
        f"{'task':<5} {'loop: met':>9} {'approved':>8} {'calls':>5} {'tokens':>7}   {'single: met':>11} {'tokens':>7}"
    )
    for task_id, modes in by_task.items():
        loop, single = modes.get("loop", {}), modes.get("single", {})
        print(
            f"{task_id:<5} {mark[loop.get('satisfied')]:>9} {mark[loop.get('approved')]:>8} "
            f"{loop.get('calls') or '-':>5} {loop.get('total_tokens') or '-':>7}   "
            f"{mark[single.get('satisfied')]:>11} {single.get('total_tokens') or '-':>7}"
        )
    for mode in ("loop", "single"):
        got = [r for r in rows if r["mode"] == mode]
        if got:
            print(
                f"{mode}: satisfied {sum(r['satisfied'] for r in got)}/{len(got)}"
                + (f", approved {sum(bool(r.get('approved')) for r in got)}" if mode == "loop" else "")
                + (
                    f", approved but failing {sum(r.get('approved_but_failing', False) for r in got)}"
                    if mode == "loop"
                    else ""
                )
                + f", calls {sum(r.get('calls') or 0 for r in got)}, tokens {sum(r.get('total_tokens') or 0 for r in got):,}"
            )


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Recorded rows in one line, as JSON: what bench/README.md's tables of live runs show (read from the files)."""
    return {
        "tasks": len(rows),
        "satisfied": f"{sum(bool(r['satisfied']) for r in rows)}/{len(rows)}",
        "approved_but_failing": sum(bool(r.get("approved_but_failing")) for r in rows),
        "calls": sum(r.get("calls") or 0 for r in rows),
        "total_tokens": sum(r.get("total_tokens") or 0 for r in rows),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--repo", type=Path, default=ROOT, help="folder holding multi_agent_system.py (default: this one)")
    p.add_argument("--only", help="comma-separated task ids")
    p.add_argument(
        "--tasks", choices=("live", "heldout"), default="live", help="the 32 tasks (default), or the 16 held out"
    )
    shape = p.add_mutually_exclusive_group()
    shape.add_argument("--compare", action="store_true", help="run the loop with --compare: loop and single rows")
    shape.add_argument("--single", action="store_true", help="one plain call per task, made here")
    p.add_argument("--out", type=Path, help="append one JSON line per task and mode here")
    p.add_argument("--timeout", type=float, default=1200, help="seconds per task (default 1200)")
    p.add_argument("--log-dir", type=Path, help="where the loop writes traces (default: a new temp dir)")
    p.add_argument("--jobs", type=int, default=1, help="tasks at once (default 1)")
    p.add_argument("--table", type=Path, help="print the table of the rows recorded in this file, and exit")
    p.add_argument("--totals", type=Path, nargs="+", metavar="FILE", help="print the totals of recorded rows as JSON")
    p.add_argument("--mode", choices=("loop", "single"), help="with --totals: only the rows of this mode")
    args = p.parse_args(argv)
    if args.totals:
        texts = [path.read_text(encoding="utf-8") for path in args.totals]
        rows = [json.loads(line) for text in texts for line in text.splitlines() if line.strip()]
        print(json.dumps(totals([r for r in rows if args.mode in (None, r.get("mode"))])))
        return 0
    if args.table:
        print_table([json.loads(line) for line in args.table.read_text().splitlines() if line.strip()])
        return 0
    tasks = TASKS
    if args.tasks == "heldout":  # written after the repairs, by a helper who had not read them (or the finder)
        from bench.heldout_task_set import TASKS as tasks
    if args.only:
        wanted = {t.strip() for t in args.only.split(",") if t.strip()}
        tasks = [t for t in tasks if t["id"] in wanted]
    repo, log_dir = args.repo.resolve(), (args.log_dir or Path(tempfile.mkdtemp(prefix="live_tasks_"))).resolve()
    if not (os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_KEY")):
        p.error("this calls a real model: set OPENAI_BASE_URL (and OPENAI_MODEL) or OPENAI_API_KEY")
    print(f"{len(tasks)} tasks, repo {repo}, model {os.environ.get('OPENAI_MODEL')}, traces in {log_dir}", flush=True)

    def one(task: dict[str, Any]) -> list[dict[str, Any]]:
        runs = (
            run_single(task, args.timeout) if args.single else run_loop(task, repo, log_dir, args.timeout, args.compare)
        )
        rows = [checked(task, row) for row in runs]
        for row in rows:
            print(
                f"[{task['id']} {row['mode']}] met={row['satisfied']} approved={row.get('approved')} "
                f"calls={row.get('calls')} tokens={row.get('total_tokens')} {row['why']}",
                flush=True,
            )
            if args.out:
                with args.out.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
        return rows

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = [row for rows in pool.map(one, tasks) for row in rows]
    print()
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
