"""A student's edit breaks only what it should: the edits the documents invite leave the suite green.

The test copies the project, makes on the copy the edits a student is invited to make, and runs
``python -m pytest -m "not docs"`` there (stopping at the first failure):

- every constant of the chapter's limits block changed to another sensible value (LIMIT_EDITS);
- the first line of each of the chapter's prompts reworded (PROMPT_EDITS);
- EXPERIMENTS.md's experiment 13: a Researcher added in three edits (add_researcher);
- the stage 3 starter edited as EXERCISE.md tasks 1 and 2 ask: a rule of the student's own,
  named the student's way, and the Red Team's prompt made pickier (edit_starter).

By default all the edits are made on one copy and its suite runs once (about two minutes).
STUDENT_EDITS=each runs one copy per group of edits instead, for a closer look.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSIDE_A_COPY = "STUDENT_EDIT_COPY"  # set in the copy's environment: this test does not run itself again
# these tests read the files as shipped; in the edited copy they would read the edits
pytestmark = pytest.mark.skipif(bool(os.environ.get(INSIDE_A_COPY)), reason="this is the copy the test made")

# Each constant of the limits block, and a value a student might sensibly try instead.
LIMIT_EDITS = {
    "MAX_ITERATIONS": "7",
    "MAX_TOTAL_TOKENS": "30_000",
    "TOKEN_WARNING_SHARE": "0.9",
    "MAX_PLANS": "2",
    "REJECTIONS_BEFORE_REPLAN": "3",
    "MIN_USEFUL_COMPLETION": "64",
    "VERDICT_ROOM": "200",
    "BYTES_PER_TOKEN_GUESS": "2.0",
    "BYTES_PER_TOKEN_MOST": "5.0",
    "DEFAULT_MODEL": '"gpt-4.1-mini"',
    "DEMO_MODEL": '"canned-demo"',
    "TASK_MAX_CHARS": "3_000",
    "PLAN_MAX_CHARS": "2_000",
    "DRAFT_MAX_CHARS": "5_000",
    "FEEDBACK_MAX_CHARS": "1_000",
    "NOTES_MAX_CHARS": "1_200",
    "CHECKLIST_MAX_CHARS": "500",
    "FACTS_MAX_CHARS": "600",
    "CLIP_CHARS": "200",
    "HISTORY_MAX": "4",
    "EARLIER_PLANS_SHOWN": "2",
    "OWN_FEEDBACK_SHOWN": "2",
    "SYSTEM_PROMPT_MAX_CHARS": "1_500",
}
PROMPT_EDITS = {  # a new first line for each prompt, saying the same in other words
    "PLANNER_PROMPT": "As the team's Planner, you work with a Worker and a Critic.",
    "WORKER_PROMPT": "As the Worker, carry out the task precisely. Send back only the finished work:",
    "CRITIC_PROMPT": "As the Critic, judge whether the draft completely does the task; never rewrite it.",
    "CRITIC_FORMAT": 'Answer in JSON: {"approved": true or false, "feedback": "..."}',
}


def limits_block(source: str) -> str:
    return source.split("# -- Limits", 1)[1].split("\n# -- ", 1)[0]


def prompt_names(source: str) -> list[str]:
    return re.findall(r'^([A-Z_]+(?:PROMPT|FORMAT)) = f?"""', source, re.M)


def edit_limits(chapter: str) -> str:
    for name, value in LIMIT_EDITS.items():
        chapter, n = re.subn(rf"^{name} = [^#\n]+?(\s*#)", rf"{name} = {value}\1", chapter, count=1, flags=re.M)
        assert n == 1, name
    return chapter


def edit_prompts(chapter: str) -> str:
    for name, line in PROMPT_EDITS.items():
        chapter, n = re.subn(
            rf'^({name} = f?""")[^\n]*', lambda m, line=line: m.group(1) + line, chapter, count=1, flags=re.M
        )
        assert n == 1, name
    return chapter


def add_researcher(chapter: str) -> str:
    """EXPERIMENTS.md experiment 13: a row in ROLES, a function with its prompt, one call in orchestrate()."""
    planner = re.search(r'^        Role\("planner", .*\n', chapter, re.M)  # its cap is a student's to change
    edits = [
        (planner.group(0) if planner else "(no planner row)", '        Role("researcher", "green", 400),\n'),
        (
            '                run_step(state, llm, "planner", planner_agent)\n',
            '                run_step(state, llm, "researcher", researcher_agent)\n',
        ),
        (
            "WORKER_PROMPT = ",
            'RESEARCHER_PROMPT = """You are the Researcher. List at most five facts the writer needs."""\n\n\n'
            "def researcher_agent(state: SharedState, llm: Gateway) -> Reply:\n"
            '    reply = ask(llm, "researcher", [system(RESEARCHER_PROMPT), user(state["task"])])\n'
            '    state["notes"]["researcher"] = reply.content.strip()\n'
            "    return reply\n\n\n",
        ),
    ]
    for anchor, added in edits:
        assert chapter.count(anchor) == 1, anchor
        chapter = chapter.replace(anchor, anchor + added if not anchor.startswith("WORKER") else added + anchor)
    return chapter


def edit_starter(starter: str) -> str:
    """EXERCISE.md task 2, done a student's way: a rule with an id of their own, and a pickier prompt."""
    rule = (
        "\n\ndef check_tls_version(config: dict[str, Any], strict: bool) -> list[Finding]:\n"
        '    tls = config.get("tls")\n'
        '    if isinstance(tls, dict) and tls.get("min_version") in ("1.2", "1.3"):\n'
        "        return []\n"
        '    return [Finding("old-tls-protocol", "high", "tls.min_version", "TLS older than 1.2: set 1.2 or 1.3")]\n'
    )
    anchor = "RULES: list["
    assert starter.count(anchor) == 1
    starter = starter.replace(anchor, rule.lstrip("\n") + "\n\n" + anchor)
    starter = re.sub(r"(RULES: list\[.*?\] = \[[^\]]*)\]", r"\1, check_tls_version]", starter, count=1)
    return starter.replace('RED_PROMPT = """', 'RED_PROMPT = """Be picky about TLS versions and headers. ', 1)


CHAPTER, STARTER = "multi_agent_system.py", "stages/stage3/activity/starter_workflow.py"
GROUPS: dict[str, list[tuple[str, Callable[[str], str]]]] = {
    "limits": [(CHAPTER, edit_limits)],
    "prompts": [(CHAPTER, edit_prompts)],
    "researcher": [(CHAPTER, add_researcher)],
    "starter": [(STARTER, edit_starter)],
}


def test_the_edit_tables_cover_every_constant_and_prompt() -> None:
    source = (ROOT / CHAPTER).read_text(encoding="utf-8")
    constants = re.findall(r"^([A-Z][A-Z_]+) = ", limits_block(source), re.M)
    assert sorted(set(constants) - {"PROMPT_MAX_CHARS"}) == sorted(LIMIT_EDITS)  # that one is computed
    assert sorted(prompt_names(source)) == sorted(PROMPT_EDITS)


def test_each_edit_applies_and_still_parses() -> None:
    import ast

    for edits in GROUPS.values():
        for path, edit in edits:
            ast.parse(edit((ROOT / path).read_text(encoding="utf-8")))


def copy_project(where: Path) -> Path:
    """The project as shipped (its committed files, when it is a git checkout), in a git repository of its own:
    tests that read "the file as shipped" find it at the copy's HEAD."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    files = [f for f in listed.stdout.decode().split("\0") if f] if listed.returncode == 0 else []
    copy = where / "project"
    if files:
        for name in files:
            shown = subprocess.run(["git", "show", f"HEAD:{name}"], cwd=ROOT, capture_output=True, check=False)
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            if shown.returncode == 0:
                (copy / name).write_bytes(shown.stdout)
            elif (ROOT / name).exists():  # added since the last commit
                shutil.copy2(ROOT / name, copy / name)
    else:
        shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".git", ".venv*", "logs", "__pycache__"))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=copy, check=True)
    subprocess.run([*git, "add", "-A"], cwd=copy, check=True)
    subprocess.run([*git, "commit", "-qm", "as shipped"], cwd=copy, check=True)
    return copy


def run_suite_after(groups: list[str], tmp_path: Path) -> None:
    copy = copy_project(tmp_path)
    for group in groups:
        for path, edit in GROUPS[group]:
            target = copy / path
            target.write_text(edit(target.read_text(encoding="utf-8")), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PYTEST_"))}
    env[INSIDE_A_COPY] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "not docs", "-x", "-q", "-p", "no:cacheprovider"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    tail = "\n".join(done.stdout.splitlines()[-25:])
    assert done.returncode == 0, f"after the {', '.join(groups)} edits, the suite failed:\n{tail}"


def test_the_suite_stays_green_after_the_edits_students_are_invited_to_make(tmp_path: Path) -> None:
    if os.environ.get("STUDENT_EDITS") == "each":
        for group in GROUPS:
            run_suite_after([group], tmp_path / group)
    else:
        run_suite_after(list(GROUPS), tmp_path)
