"""The exercise's checker: it passes the solution, fails the untouched starter, and follows what a student does.

The checks must be able to fail (the untouched starter fails every build
task) and must pass work done any reasonable way, not only the solution's.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from conftest import ROOT, shipped_starter
from stages.stage3.activity import check, solution_workflow
from stages.stage3.activity.starter_workflow import AuditState, Finding  # for type hints: the shapes do not change

BUILD_TASKS = [n for n in check.TASKS if n != 1]  # task 1 is "run it": the starter passes it as shipped
# The starter as shipped (git HEAD), not the file a student is editing: what these tests say of it stays true
# while the student works, and the checker is tested on student-like changes made to a known starting point.
starter_workflow = shipped_starter()


def lines(*argv: str) -> tuple[int, list[str]]:
    """The exit code, and one entry per task: a task's first line with its wrapped detail joined back on."""
    out = io.StringIO()
    code = check.main(list(argv), out=out)
    entries: list[str] = []
    for line in out.getvalue().splitlines():
        if line.startswith("    ") and entries:
            entries[-1] += " " + line.strip()
        else:
            entries.append(line)
    return code, entries


def test_the_solution_passes_every_check():
    code, report = lines("--solution")
    assert code == 0 and len(report) == len(check.TASKS)
    assert all(" passed · " in line for line in report), report


def test_the_untouched_starter_fails_every_build_task():
    results = {n: check.run_task(starter_workflow, n) for n in check.TASKS}
    assert {n for n, (passed, _) in results.items() if passed} == {1}, results
    assert all(detail for _, detail in results.values())


def test_the_starter_these_tests_use_is_the_one_committed():
    import subprocess

    where = "HEAD:stages/stage3/activity/starter_workflow.py"
    committed = subprocess.run(["git", "show", where], cwd=ROOT, capture_output=True, text=True, check=False)
    if committed.returncode != 0:
        pytest.skip("not a git checkout: the file itself is the starter as shipped")
    assert starter_workflow.__name__ == "shipped_starter_workflow"
    assert starter_workflow.CISO_PROMPT in committed.stdout and starter_workflow.RED_PROMPT in committed.stdout


def test_one_task_at_a_time():
    code, report = lines("--task", "4", "--solution")
    assert code == 0 and len(report) == 1 and report[0].startswith("task 4 ")


def tls_rule(config: dict[str, Any], strict: bool) -> list[Finding]:
    tls = config.get("tls")
    if isinstance(tls, dict) and tls.get("min_version") in ("1.2", "1.3"):
        return []
    return [Finding("tls-weak", "high", "tls", "old TLS")]


def test_a_rule_written_the_students_way_passes_task_2(monkeypatch):
    monkeypatch.setattr(starter_workflow, "RULES", [*starter_workflow.RULES, tls_rule])
    passed, detail = check.run_task(starter_workflow, 2)
    assert passed and "TLS 1.0" in detail and "not yet" in detail  # headers are not checked by this rule


def test_a_rule_that_flags_good_configs_fails_every_task_that_needs_one(monkeypatch):
    def always(config: dict[str, Any], strict: bool) -> list[Finding]:
        return [Finding("always", "high", "x", "everything is wrong")]

    monkeypatch.setattr(starter_workflow, "RULES", [*starter_workflow.RULES, always])
    passed, detail = check.run_task(starter_workflow, 2)
    assert not passed and "nothing wrong" in detail and "always" in detail


def with_limit(limit: int):
    original = starter_workflow.starter_round

    def one_round(state: AuditState, llm: Any) -> None:
        original(state, llm)
        if state.stop_reason is None and state.round >= limit:
            state.stop_reason, state.stop_detail = "max_loops", f"{limit} rounds"

    return one_round


@pytest.mark.parametrize("limit, passes", [(5, True), (4, False), (6, False)])
def test_task_4_measures_the_limit_the_student_wrote(monkeypatch, limit, passes):
    monkeypatch.setattr(starter_workflow, "starter_round", with_limit(limit))
    passed, detail = check.run_task(starter_workflow, 4)
    assert passed is passes, detail


def kb_round(answer: Any):
    def one_round(state: AuditState, llm: Any) -> None:
        tool = starter_workflow.Tool("look_up", "Look a topic up.", lambda state, topic: answer(topic), {"topic": "?"})
        starter_workflow.red_team(state, llm, starter_workflow.blue_team(state, llm, [tool]))
        starter_workflow.ciso(state, llm)

    return one_round


def test_a_knowledge_base_tool_passes_task_3_when_its_answer_can_be_used(monkeypatch):
    kb = solution_workflow.load_knowledge_base()
    monkeypatch.setattr(starter_workflow, "starter_round", kb_round(lambda topic: json.dumps(kb[topic])))
    passed, detail = check.run_task(starter_workflow, 3)
    assert passed, detail


def test_a_knowledge_base_tool_that_answers_in_prose_fails_task_3(monkeypatch):
    monkeypatch.setattr(starter_workflow, "starter_round", kb_round(lambda topic: f"set {topic} safely"))
    passed, detail = check.run_task(starter_workflow, 3)
    assert not passed and "no JSON setting" in detail


def test_code_that_raises_is_a_failed_task_with_the_error(monkeypatch):
    def broken(state: AuditState, llm: Any) -> None:
        raise ValueError("oops")

    monkeypatch.setattr(starter_workflow, "starter_round", broken)
    passed, detail = check.run_task(starter_workflow, 4)
    assert not passed and "ValueError: oops" in detail


def test_a_game_that_ends_without_approval_fails_task_1_with_its_stop_reason(monkeypatch):
    def unfixable(config: dict[str, Any], strict: bool) -> list[Finding]:
        return [Finding("mystery", "high", "mystery", "something is off, and nobody knows what")]

    monkeypatch.setattr(starter_workflow, "RULES", [*starter_workflow.RULES, unfixable])
    passed, detail = check.run_task(starter_workflow, 1)
    assert not passed, detail
    assert "without approval" in detail and "token_budget" in detail and "mystery" in detail


def test_a_rule_that_crashes_on_an_odd_shape_fails_task_2_naming_the_shape(monkeypatch):
    def check_tls_version(config: dict[str, Any], strict: bool) -> list[Finding]:
        if config["tls"]["min_version"] in ("1.2", "1.3"):  # what the hints warn against
            return []
        return [Finding("tls-old", "high", "tls.min_version", "TLS older than 1.2: set 1.3")]

    monkeypatch.setattr(starter_workflow, "RULES", [*starter_workflow.RULES, check_tls_version])
    passed, detail = check.run_task(starter_workflow, 2)
    assert not passed, detail
    assert "check_tls_version" in detail and "tls is missing" in detail and "KeyError" in detail


def test_the_odd_shapes_are_odd_in_every_way_the_hints_name():
    shapes = dict(check.odd_shapes())
    assert len(shapes) > 50 and shapes["nothing is set"] == {}
    for kind in ("is missing", "is None", "is a list", "is a string", "is a number"):
        assert any(name.endswith(kind) for name in shapes), kind
    assert shapes["tls is missing"] == {k: v for k, v in check.GOOD.items() if k != "tls"}
    assert shapes["headers is a list"]["headers"] == check.ODD_VALUES["a list"]
    assert shapes["tls.min_version is None"]["tls"] == {"min_version": None}
