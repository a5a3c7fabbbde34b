"""The classroom: --step pauses before every call, --human puts a person at the ladder's top rung.

Each is a hook the loop already has (the gateway's ``before_call`` and
``human``); neither writes the shared state: the chapter records a person's choice.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from machinery.gateway import LLM, estimate_tokens
from machinery.output import Display, draw_step
from machinery.text import clip, first_line
from multi_agent_system import NOTES_MAX_CHARS, NextStep, SharedState, StopRun

STEP_SUMMARY_CHARS = 160  # how much of a prompt --step shows: enough to say what is asked, not the whole prompt


HUMAN_ASKS = 3  # unreadable answers at the human rung before the ladder's own step is kept


class Answers:
    """Lines typed by the person at the front of the class, or piped in by a script.

    ``ask`` returns the line without its newline, or None once input has ended:
    then --step stops pausing and the run carries on by itself.
    """

    def __init__(self, stream: Any, display: Display):
        self.stream, self.display = stream, display
        self.ended = False
        self.is_terminal = bool(getattr(stream, "isatty", lambda: False)())

    def ask(self, question: str) -> str | None:
        if self.ended:
            return None
        out = self.display.console if self.display.chatty else self.display.errors
        from rich.text import Text

        out.print(Text(question, style="bold"), end="")
        line = self.stream.readline()
        if not line:  # end of input
            self.ended = True
            out.print(Text("(end of input: the run goes on without pausing)", style="dim"))
            return None
        if not self.is_terminal:  # echo a scripted answer, so the transcript reads like a session
            out.print(Text(line.rstrip("\n")))
        return line.strip()


def prompt_summary(messages: list[dict[str, Any]]) -> str:
    """What a request asks, in a line: its last message's opening words and the size of it all.

    >>> prompt_summary([{"role": "system", "content": "You are..."}, dict(role="user", content="Task:\\nWrite a haiku about agents")])
    '2 messages, ~29 tokens · last (user): Task: Write a haiku about agents'
    """
    last = messages[-1] if messages else {"role": "?", "content": ""}
    said = first_line(str(last.get("content") or ""), STEP_SUMMARY_CHARS)
    return f"{len(messages)} messages, ~{estimate_tokens(messages)} tokens · last ({last['role']}): {said}"


class Stepper:
    """--step: a pause before every model call, showing what is about to be sent."""

    def __init__(self, answers: Answers, display: Display, recorded: bool = False):
        self.answers, self.display = answers, display
        self.recorded = recorded  # under --show nothing is sent: Enter only moves on

    def pause(self, role: str, messages: list[dict[str, Any]], max_tokens: int, spent: int, budget: int) -> None:
        if self.answers.ended:
            return
        body = f"{prompt_summary(messages)}\nmax_tokens {max_tokens} · {spent} tokens so far · {budget - spent} of {budget} left"
        if self.display.chatty:
            self.display.panel(body, f"next call: {role}", "blue")
        go_on = "Enter shows the next call" if self.recorded else "Enter sends it"
        answer = self.answers.ask(f"{go_on}, q then Enter stops the run: ")
        if answer is not None and answer.lower() in ("q", "quit", "stop"):
            raise StopRun("stopped_by_user", f"stopped at the pause before the {role}'s call")


def attach_stepper(llm: LLM, answers: Answers) -> None:
    stepper = Stepper(answers, llm.display)
    llm.before_call = lambda role, messages, limit: stepper.pause(
        role, messages, limit, llm.ledger.total_tokens, llm.settings.max_tokens
    )


# The human rung: what a person may answer when the ladder would re-plan or give up.
HUMAN_CHOICES: dict[str, tuple[NextStep, str]] = {
    "a": ("accept", "approve the last draft"),
    "f": ("revise", "give the worker feedback, and it revises"),
    "p": ("replan", "ask the planner for a new plan"),
    "s": ("give_up", "stop the run"),
}


class HumanRung:
    """--human: the top of the escalation ladder is a person at the terminal.

    The gateway calls it as ``llm.human(state, step)``; it returns the step and any
    feedback, and the chapter's ``ask_human`` records both in the state. The
    loop's gates still hold: a revision or a new plan is one more round, and
    the iteration, token, cost and time limits refuse it as they refuse any.
    A person may allow a plan past --max-plans: that limit exists to ask them.
    """

    def __init__(self, answers: Answers, llm: LLM):
        self.answers, self.llm = answers, llm

    def __call__(self, state: SharedState, step: NextStep) -> tuple[NextStep, str]:
        llm = self.llm
        would = "re-plan" if step == "replan" else "give up"
        menu = "\n".join(f"  {key}  {what}" for key, (_, what) in HUMAN_CHOICES.items())
        question = (
            f"The critic rejected draft {state['worker_attempts']} of plan v{state['plan_version']}, and the ladder "
            f"would {would}. The last draft and its feedback are above.\n{menu}"
        )
        draw_step(llm, "human", f"Your call · iteration {state['iteration']}", question, None, "bright_blue")
        if not llm.display.chatty:  # --quiet or --json: the panel is not drawn, and the person still needs the menu
            from rich.text import Text

            llm.display.errors.print(Text(question))
        said: list[list[str]] = []  # [question, answer] pairs, so --show can print them again
        for _ in range(HUMAN_ASKS):
            answer = self.ask(f"{'/'.join(HUMAN_CHOICES)}: ", said)
            if answer is None:
                break
            if answer[:1].lower() in HUMAN_CHOICES:
                chosen, _ = HUMAN_CHOICES[answer[:1].lower()]
                feedback = ""
                if chosen == "revise":  # the chapter leaves it as a note: the worker reads every note
                    feedback = clip(self.ask("feedback for the worker: ", said) or "", NOTES_MAX_CHARS)
                self.record(state, chosen, feedback, said)
                failed = [c["measured"] for c in state["draft_facts"].get("checks", []) if not c["passed"]]
                if chosen == "accept" and failed:  # a person may overrule code, but not silently
                    llm.warn(f"a human approved a draft that fails a check code made: {'; '.join(failed)}")
                if chosen == "give_up":
                    raise StopRun("stopped_by_user", f"a human stopped the run at iteration {state['iteration']}")
                return chosen, feedback
        self.record(state, "none", "", said)
        llm.warn(f"no answer from the human: the ladder's own step ({step}) is kept")
        return step, ""

    def record(self, state: SharedState, action: str, feedback: str, said: list[list[str]]) -> None:
        where = {"iteration": state["iteration"], "plan_version": state["plan_version"]}
        self.llm.trace.event("human", **where, action=action, feedback=feedback, said=said)

    def ask(self, question: str, said: list[list[str]]) -> str | None:
        answer = self.answers.ask(question)
        said.append([question, "" if answer is None else answer])
        return answer


def attach_classroom(llm: LLM, args: argparse.Namespace, stdin: Any) -> None:
    """Wire --step and --human to the person at the keyboard (or to lines piped in)."""
    answers = Answers(stdin, llm.display)
    if (args.step or args.human) and args.task == "-":
        llm.display.warn(
            "the task came from standard input, which leaves nothing to read answers from: no pauses, no questions"
        )
        answers.ended = True
    if args.step:
        attach_stepper(llm, answers)
    if args.human:
        if answers.is_terminal:
            llm.human = HumanRung(answers, llm)
        else:
            llm.display.warn("--human needs a terminal and none is attached: the ladder decides alone")


def add_classroom_flags(p: argparse.ArgumentParser) -> None:
    room = p.add_argument_group("classroom")
    room.add_argument("--step", action="store_true", help="pause before every model call (Enter goes on, q stops)")
    room.add_argument(
        "--human", action="store_true", help="ask the person at the terminal when the ladder would re-plan or give up"
    )
    recorded = room.add_mutually_exclusive_group()
    recorded.add_argument("--show", type=Path, metavar="TRACE", help="draw a recorded run again, with no model")
    recorded.add_argument(
        "--replay", type=Path, metavar="TRACE", help="run the loop with a recorded run's replies as the model"
    )
    recorded.add_argument(
        "--diagram", type=Path, metavar="TRACE", help="print a recorded run as a Mermaid sequence diagram"
    )
