"""Live benchmark: do runs on a real model satisfy each task's checkable constraints?

Each task below states its constraints plainly (word limits, exact counts, JSON
shape, a Python function, a haiku's three lines, phrases to include or avoid),
and has a checker in plain Python that reads the final text and lists what is
wrong. The runner runs the Planner/Worker/Critic loop on every task as a
subprocess and checks ``result`` (the last draft, approved or not), so it can
count how often the loop approves work that does not meet the task.
``--single`` makes one plain chat call per task instead: the baseline the loop
has to beat.

This talks to a real model and is slow: run it by hand, never in CI. From the
repository root, with the local server (it prints its base URL):

    OPENAI_BASE_URL=$(../shared/tools/local_llm.sh) OPENAI_API_KEY=local \\
    OPENAI_MODEL=qwen2.5-coder-1.5b-instruct \\
        python bench/live_tasks.py --repo . --out live.jsonl

    # the single-call baseline, same tasks
    ... python bench/live_tasks.py --repo . --single --out live_single.jsonl

    # a couple of tasks only
    ... python bench/live_tasks.py --repo . --only haiku,words40

Options: --repo DIR (the checkout whose multi_agent_system.py is run),
--only ID,ID, --single, --out FILE.jsonl (one JSON line per task, appended),
--totals FILE.jsonl ... (print the totals of results files as JSON, and run nothing),
--timeout S (per task, default 900; a timeout counts as not satisfied with
stop_reason "runner_timeout"), --log-dir DIR (traces; default a new temp dir).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def lines_of(text: str) -> list[str]:
    return [line.strip() for line in text.strip().splitlines() if line.strip()]


def word_count(text: str) -> int:
    return len(text.split())


def sentence_count(text: str) -> int:
    """Runs of . ! ? before a space or the end; unpunctuated trailing text counts as one more."""
    text = text.strip()
    ends = len(re.findall(r"[.!?]+[\"')\]]*(?=\s|$)", text))
    return ends + (1 if text and not re.search(r"[.!?][\"')\]]*$", text) else 0)


def fenced(text: str, *langs: str) -> str:
    """The body of the first ```lang fence (or any fence), else the whole text."""
    for lang in (*langs, ""):
        match = re.search(rf"```{lang}[^\n]*\n(.*?)```", text, re.S)
        if match:
            return match.group(1)
    return text


def within_words(low: int, high: int) -> Callable[[str], list[str]]:
    def check(text: str) -> list[str]:
        n = word_count(text)
        return [] if low <= n <= high else [f"{n} words, wanted {low}-{high}"]

    return check


def check_bullets5(text: str) -> list[str]:
    bullets = [line for line in lines_of(text) if re.match(r"^[-*•]\s+\S", line)]
    others = [line for line in lines_of(text) if line not in bullets]
    fails = [] if len(bullets) == 5 else [f"{len(bullets)} bullet points, wanted 5"]
    return fails + ([f"{len(others)} non-bullet lines (e.g. {others[0][:40]!r})"] if others else [])


def check_steps3(text: str) -> list[str]:
    numbers = [int(m.group(1)) for line in lines_of(text) if (m := re.match(r"^\**(\d+)[.)]", line))]
    return [] if numbers == [1, 2, 3] else [f"numbered steps {numbers}, wanted [1, 2, 3]"]


def check_json3(text: str) -> list[str]:
    try:
        data = json.loads(fenced(text, "json").strip())
    except ValueError as err:
        return [f"not valid JSON: {err}"]
    if not isinstance(data, list) or len(data) != 3:
        return [
            f"wanted a JSON array of 3 items, got {type(data).__name__} of {len(data) if isinstance(data, (list, dict)) else '?'}"
        ]
    fails = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or set(item) != {"name", "year"}:
            fails.append(
                f"item {i} keys {sorted(item) if isinstance(item, dict) else type(item).__name__}, wanted name and year"
            )
        elif not isinstance(item["year"], int) or isinstance(item["year"], bool):
            fails.append(f"item {i} year {item['year']!r} is not an integer")
    return fails


def check_pyfunc(text: str) -> list[str]:
    try:
        tree = ast.parse(fenced(text, "python", "py"))
    except SyntaxError as err:
        return [f"code does not parse: {err.msg} (line {err.lineno})"]
    names = [node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
    return [] if "is_palindrome" in names else [f"no function is_palindrome (found {names})"]


def check_haiku(text: str) -> list[str]:
    n = len(lines_of(text))
    return [] if n == 3 else [f"{n} non-empty lines, wanted 3"]


def check_phrases(text: str) -> list[str]:
    fails = [] if "deep blue" in text.lower() else ["missing the phrase 'deep blue'"]
    if re.search(r"\bwater\b", text, re.I):
        fails.append("uses the word 'water'")
    n = sentence_count(text)
    return fails + ([] if n == 1 else [f"{n} sentences, wanted 1"])


def check_coffee(text: str) -> list[str]:
    rows = lines_of(text)
    fails = [] if len(rows) == 4 else [f"{len(rows)} non-empty lines, wanted 4"]
    bad = [row for row in rows if not re.sub(r"^[^A-Za-z]+", "", row).lower().startswith("c")]
    return fails + ([f"{len(bad)} lines do not start with C (e.g. {bad[0][:40]!r})"] if bad else [])


def check_fruits(text: str) -> list[str]:
    rows = lines_of(text)
    fails = [] if len(rows) == 3 else [f"{len(rows)} non-empty lines, wanted 3"]
    if any(row != row.upper() for row in rows):
        fails.append("not all in capital letters")
    if any(re.match(r"^(\d+[.)]|[-*•])", row) for row in rows):
        fails.append("lines are numbered or bulleted")
    return fails


def check_recursion(text: str) -> list[str]:
    n = sentence_count(text)
    return [] if n == 2 else [f"{n} sentences, wanted 2"]


def check_name(text: str) -> list[str]:
    rows = lines_of(text)
    fails = [] if len(rows) == 1 else [f"{len(rows)} non-empty lines, wanted 1"]
    if word_count(text) > 5:
        fails.append(f"{word_count(text)} words, wanted at most 5")
    return fails + (["contains quotation marks"] if re.search("[\"'“”‘’]", text) else [])


@dataclass(frozen=True)
class Task:
    id: str
    text: str
    check: Callable[[str], list[str]]


TASKS = [
    Task("words40", "Explain what a Python list comprehension is in at most 40 words.", within_words(1, 40)),
    Task("about120", "Write one paragraph of about 120 words on why unit tests are useful.", within_words(96, 144)),
    Task(
        "bullets5",
        "Give exactly 5 bullet points of tips for writing readable code. Start each bullet with '- ' and write nothing else.",
        check_bullets5,
    ),
    Task(
        "steps3", "Write exactly 3 numbered steps (1., 2., 3.) for making a cup of tea, and nothing else.", check_steps3
    ),
    Task(
        "json3",
        "Return a JSON array of 3 objects with keys name and year: three programming languages and the year each first appeared, with year as an integer. Output only the JSON.",
        check_json3,
    ),
    Task(
        "pyfunc",
        "Write a Python function named is_palindrome(s) that returns True if the string s reads the same backwards, ignoring case. Return only the code.",
        check_pyfunc,
    ),
    Task("haiku", "Write a haiku about autumn rain: exactly 3 lines, no title, nothing else.", check_haiku),
    Task(
        "phrases",
        "Write one sentence about the ocean that includes the exact phrase 'deep blue' and does not use the word 'water'.",
        check_phrases,
    ),
    Task(
        "coffee4",
        "Write a poem about coffee of exactly 4 lines, where every line starts with the letter C.",
        check_coffee,
    ),
    Task(
        "fruits",
        "Name 3 fruits, one per line, in ALL CAPITAL LETTERS, with no numbering and nothing else.",
        check_fruits,
    ),
    Task("recursion2", "Explain what recursion is in exactly 2 sentences.", check_recursion),
    Task(
        "name5",
        "Suggest a name for a smart water bottle: one line of at most 5 words, without quotation marks.",
        check_name,
    ),
]


def parse_summary(stdout: str) -> dict:
    """The JSON object printed by --json; lines before the first '{' line are skipped."""
    lines = stdout.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("{"):
            value, _ = json.JSONDecoder().raw_decode("".join(lines[i:]))
            return value
    raise ValueError("no JSON object in the output")


def run_loop(task: Task, repo: Path, log_dir: Path, timeout: float) -> dict:
    cmd = [sys.executable, str(repo / "multi_agent_system.py"), task.text, "--json", "--log-dir", str(log_dir)]
    try:
        proc = subprocess.run(cmd, cwd=repo, env=dict(os.environ), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"result": None, "approved": False, "stop_reason": "runner_timeout", "calls": None, "total_tokens": None}
    try:
        summary = parse_summary(proc.stdout)
    except ValueError as err:
        tail = (proc.stderr or proc.stdout).strip()[-300:]
        return {
            "result": None,
            "approved": False,
            "stop_reason": "runner_error",
            "calls": None,
            "total_tokens": None,
            "stop_detail": f"exit {proc.returncode}: {err}: {tail}",
        }
    keys = ("result", "approved", "stop_reason", "stop_detail", "calls", "total_tokens", "iterations", "plans", "trace")
    return {key: summary.get(key) for key in keys}


def run_single(task: Task, timeout: float) -> dict:
    from openai import OpenAI

    base_url = os.environ.get("OPENAI_BASE_URL") or None
    api_key = os.environ.get("OPENAI_API_KEY") or "not-needed"  # local servers accept any key
    try:
        client = OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)
        reply = client.chat.completions.create(
            model=os.environ.get("OPENAI_MODEL") or "gpt-4o-mini",
            messages=[
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": task.text},
            ],
            max_tokens=1200,
        )
    except Exception as err:  # any failure is one row of the table, not a crash
        stop = (
            "runner_timeout"
            if "timed out" in str(err).lower() or "timeout" in type(err).__name__.lower()
            else "api_error"
        )
        return {
            "result": None,
            "approved": None,
            "stop_reason": stop,
            "calls": 1,
            "total_tokens": None,
            "stop_detail": f"{type(err).__name__}: {err}",
        }
    usage = reply.usage.total_tokens if reply.usage else None
    return {
        "result": reply.choices[0].message.content,
        "approved": None,
        "stop_reason": reply.choices[0].finish_reason,
        "calls": 1,
        "total_tokens": usage,
    }


def print_table(rows: list[dict]) -> None:
    head = f"{'task':<11} {'sat':<4} {'appr':<5} {'ABF':<4} {'stop_reason':<18} {'calls':>5} {'tokens':>7} {'secs':>7}  failures"
    print(head)
    print("-" * len(head))
    mark = {True: "yes", False: "no", None: "-"}
    for r in rows:
        fails = "; ".join(r["failures"])[:70]
        print(
            f"{r['task']:<11} {mark[r['satisfied']]:<4} {mark[r['approved']]:<5} "
            f"{mark[r['approved_but_failing']]:<4} {str(r['stop_reason'])[:18]:<18} "
            f"{r['calls'] if r['calls'] is not None else '-':>5} "
            f"{r['total_tokens'] if r['total_tokens'] is not None else '-':>7} {r['seconds']:>7.1f}  {fails}"
        )
    print("-" * len(head))
    if all(r["approved"] is None for r in rows):  # --single: no critic, so approval does not apply
        approvals = "approved n/a, approved but failing n/a"
    else:
        approvals = (
            f"approved {sum(bool(r['approved']) for r in rows)}, "
            f"approved but failing {sum(bool(r['approved_but_failing']) for r in rows)}"
        )
    print(
        f"satisfied {sum(r['satisfied'] for r in rows)}/{len(rows)}, {approvals}, "
        f"calls {sum(r['calls'] or 0 for r in rows)}, "
        f"tokens {sum(r['total_tokens'] or 0 for r in rows)}, "
        f"seconds {sum(r['seconds'] for r in rows):.1f}"
    )


def totals(rows: list[dict]) -> dict:
    """A results file in one line: what bench/README.md's table of live runs shows."""
    return {
        "tasks": len(rows),
        "satisfied": f"{sum(bool(r['satisfied']) for r in rows)}/{len(rows)}",
        "approved_but_failing": sum(bool(r["approved_but_failing"]) for r in rows),
        "calls": sum(r["calls"] or 0 for r in rows),
        "total_tokens": sum(r["total_tokens"] or 0 for r in rows),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repo", type=Path, help="folder holding multi_agent_system.py (needed to run tasks)")
    p.add_argument("--totals", type=Path, nargs="+", metavar="FILE", help="print the totals of results files as JSON")
    p.add_argument("--only", help="comma-separated task ids")
    p.add_argument("--single", action="store_true", help="one plain chat call per task (the baseline)")
    p.add_argument("--out", type=Path, help="append one JSON line per task here")
    p.add_argument("--timeout", type=float, default=900, help="seconds per task (default 900)")
    p.add_argument("--log-dir", type=Path, help="where the loop writes traces (default: a new temp dir)")
    args = p.parse_args(argv)
    if args.totals:
        texts = [path.read_text(encoding="utf-8") for path in args.totals]
        rows = [json.loads(line) for text in texts for line in text.splitlines() if line.strip()]
        print(json.dumps(totals(rows)))
        return 0
    if args.repo is None:
        p.error("--repo is needed to run the tasks")
    tasks = TASKS
    if args.only:
        wanted = [t.strip() for t in args.only.split(",") if t.strip()]
        unknown = sorted(set(wanted) - {t.id for t in TASKS})
        if unknown:
            p.error(f"unknown task ids {unknown}; known: {', '.join(t.id for t in TASKS)}")
        tasks = [t for t in TASKS if t.id in wanted]
    repo = args.repo.resolve()
    if not args.single and not (repo / "multi_agent_system.py").is_file():
        p.error(f"{repo} has no multi_agent_system.py")
    if args.single and not (os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_KEY")):
        p.error("--single calls a real model: set OPENAI_BASE_URL (and OPENAI_MODEL) or OPENAI_API_KEY")
    log_dir = (args.log_dir or Path(tempfile.mkdtemp(prefix="live_tasks_"))).resolve()
    mode = "single" if args.single else "loop"
    print(
        f"mode {mode}, {len(tasks)} tasks, model {os.environ.get('OPENAI_MODEL')}, "
        f"server {os.environ.get('OPENAI_BASE_URL')}" + ("" if args.single else f", traces in {log_dir}"),
        flush=True,
    )
    rows = []
    for task in tasks:
        started = time.monotonic()
        run = run_single(task, args.timeout) if args.single else run_loop(task, repo, log_dir, args.timeout)
        seconds = round(time.monotonic() - started, 1)
        result = run["result"] or ""
        failures = task.check(result) if result.strip() else ["no output"]
        row = {
            "task": task.id,
            "mode": mode,
            "satisfied": not failures,
            "failures": failures,
            "approved": run["approved"],
            "stop_reason": run["stop_reason"],
            "calls": run["calls"],
            "total_tokens": run["total_tokens"],
            "seconds": seconds,
            "approved_but_failing": bool(run["approved"]) and bool(failures) if not args.single else None,
            **{k: run[k] for k in ("stop_detail", "iterations", "plans", "trace") if k in run},
            "result": run["result"],
        }
        rows.append(row)
        print(
            f"[{task.id}] satisfied={row['satisfied']} approved={row['approved']} "
            f"stop={row['stop_reason']} calls={row['calls']} {seconds}s {failures}",
            flush=True,
        )
        if args.out:
            with args.out.open("a", encoding="utf-8") as out:
                out.write(json.dumps(row) + "\n")
    print()
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
