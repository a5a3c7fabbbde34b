"""Which way of asking for a revision gets a small model to a draft that passes code's checks?

    python -m bench.revision_shapes --logs DIR... --n 40 --out FILE.jsonl   # ask the model (OPENAI_* as the kit)
    python -m bench.revision_shapes --summary FILE.jsonl                    # the table of a file

The prompts are real ones: every worker call in the traces under ``--logs`` that
replayed a rejected draft as the worker's own turn (the shape the loop used up
to 5d55275). Each is sent again in three shapes:

    turn    as recorded: the draft as an assistant message, the feedback as the next user message
    pasted  one user message: the task and plan, the draft in quotes, the feedback, "rewrite that draft"
    afresh  one user message: the task and plan, and the feedback listed; the draft is not shown

and the reply is measured as the loop would measure it: the task's requirements,
plus not a copy of the rejected draft, not a note to the reviewer, not the
prompt's headings. One sample per prompt and shape, so read differences of one
or two as noise. It needs traces of the old shape; the loop since writes afresh
after a draft code rejected, so new traces hold few such calls.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

import multi_agent_system as mas
from machinery.checks import Requirement
from machinery.finder import requirements_from_task
from machinery.text import without_chatter

SHAPES = ("turn", "pasted", "afresh")
PASTED = (
    "Your last draft",
    "It was rejected because:",
    "Rewrite that draft so that it fixes every point above. Reply with the rewritten draft only.",
)


def recorded(logs: list[Path]) -> list[dict[str, Any]]:
    """Worker calls that replayed a draft, each with its task and its completion cap, in file order."""
    found = []
    for path in sorted(p for d in logs for p in d.glob("*.jsonl")):
        events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        start = next((e for e in events if e.get("event") == "start"), None)
        for e in events:
            replayed = (
                e.get("event") == "call"
                and e.get("role") == "worker"
                and any(m["role"] == "assistant" for m in e["prompt"])
            )
            if start and replayed:
                found.append({"task": start["task"], "prompt": e["prompt"], "max_tokens": e["max_tokens"]})
    return found


def _feedback(message: str, join: str = " ") -> str:
    lines = message.splitlines()[1:]  # the first names the draft: "That draft was rejected (plan v1, draft 1):"
    return join.join(line for line in lines if line.strip() != mas.REVISE).strip()


def shaped(prompt: list[dict[str, Any]], shape: str) -> list[dict[str, Any]]:
    if shape == "turn":
        return prompt
    base, turns = prompt[1]["content"], prompt[2:]
    pairs = [(turns[i]["content"], _feedback(turns[i + 1]["content"])) for i in range(0, len(turns) - 1, 2)]
    if shape == "pasted":
        feedback = [_feedback(turns[i + 1]["content"], "\n") for i in range(0, len(turns) - 1, 2)]
        earlier = "".join(f"\n- {f}" for f in feedback[:-1])
        text = base + (f"\n\n{mas.LESSONS_HEADING}{earlier}" if earlier else "")
        text += f'\n\n{PASTED[0]}:\n"""\n{pairs[-1][0]}\n"""\n\n{PASTED[1]}\n{feedback[-1]}\n\n{PASTED[2]}'
    else:
        listed = "".join(f"- {f}\n" for _, f in pairs)
        if mas.LESSONS_HEADING in base:
            text = base.replace(mas.LESSONS_HEADING + "\n", f"{mas.LESSONS_HEADING}\n{listed}", 1)
        else:
            text = f"{base}\n\n{mas.LESSONS_HEADING}\n{listed}".rstrip()
    return [prompt[0], {"role": "user", "content": text}]


def failed(task: str, prompt: list[dict[str, Any]], reply: str) -> list[str]:
    echoes = (*mas.ECHOES, *PASTED)
    rejected = [m["content"] for m in prompt if m["role"] == "assistant"]
    checks = [
        *requirements_from_task(task),
        Requirement("new_draft", rejected, "not a draft already rejected"),
        Requirement("no_chatter", task, "the work itself"),
        Requirement("no_echo", list(echoes), "nothing copied from the prompt"),
    ]
    facts = mas.measure_draft(without_chatter(reply, echoes, task), requirements=checks)
    return [c["kind"] for c in facts["checks"] if not c["passed"]]


def summary(rows: list[dict[str, Any]]) -> str:
    out = ["| shape | passed every check | sent back or echoed | tokens |", "| --- | --- | --- | --- |"]
    for shape in SHAPES:
        mine = [r for r in rows if r["shape"] == shape]
        if mine:
            ok = sum(not r["failed"] for r in mine)
            copied = sum(bool({"new_draft", "no_chatter", "no_echo"} & set(r["failed"])) for r in mine)
            out.append(f"| {shape} | {ok}/{len(mine)} | {copied} | {sum(r['tokens'] for r in mine):,} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logs", type=Path, nargs="*", default=[])
    parser.add_argument("--n", type=int, default=40, help="prompts to try, drawn at random")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--summary", type=Path, help="print the table of a results file and exit")
    args = parser.parse_args(argv)
    if args.summary:
        print(summary([json.loads(line) for line in args.summary.read_text().splitlines() if line.strip()]))
        return 0
    calls = recorded(args.logs)
    if not calls or not args.out:
        sys.stderr.write("error: no replayed drafts found under --logs, or no --out given\n")
        return 2
    random.Random(args.seed).shuffle(calls)
    from openai import OpenAI  # as live_tasks.py makes its plain calls: the server and model from OPENAI_*

    client = OpenAI(base_url=os.environ.get("OPENAI_BASE_URL") or None, api_key=os.environ.get("OPENAI_API_KEY") or "x")
    model = os.environ.get("WORKER_MODEL") or os.environ.get("OPENAI_MODEL") or mas.DEFAULT_MODEL
    with args.out.open("a") as out:
        for call in calls[: args.n]:
            for shape in SHAPES:
                messages = shaped(call["prompt"], shape)
                r = client.chat.completions.create(model=model, messages=messages, max_tokens=call["max_tokens"])
                reply = r.choices[0].message.content or ""
                row = {"task": call["task"], "shape": shape, "failed": failed(call["task"], call["prompt"], reply)}
                row |= {"reply": reply, "tokens": r.usage.total_tokens if r.usage else 0}
                out.write(json.dumps(row) + "\n")
                out.flush()
    print(summary([json.loads(line) for line in args.out.read_text().splitlines() if line.strip()]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
