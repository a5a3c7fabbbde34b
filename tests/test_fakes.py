"""The test doubles themselves: they must fail loudly, and let an added agent through.

A fake that quietly answers a call nobody scripted would let a test pass that should
fail; these tests pin down what FakeClient, the loopback server and ``ladder`` do.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

import multi_agent_system as mas
from conftest import FakeClient, Ladder, completion, ladder
from fake_server import LoopbackServer, chat_body
from machinery.gateway import LLM, ROLE_HEADER


def ask(llm: LLM, role: str) -> str:
    return mas.ask(llm, role, [mas.user("hi")]).content


def test_each_role_reads_its_own_queue_whatever_the_order(make_llm) -> None:
    client = FakeClient(planner=[completion("p1"), completion("p2")], critic=[completion("c1")])
    llm = make_llm(client)
    assert [ask(llm, role) for role in ("critic", "planner", "planner")] == ["c1", "p1", "p2"]
    assert client.roles() == ["critic", "planner", "planner"] and client.defaulted == []
    assert [call["messages"] for call in client.calls_of("planner")] == [[mas.user("hi")]] * 2


def test_a_role_whose_queue_runs_dry_fails_naming_the_role_and_the_call(make_llm) -> None:
    client = FakeClient(planner=[completion("p1")], worker=[])
    llm = make_llm(client)
    ask(llm, "planner")
    with pytest.raises(AssertionError, match=r"the planner's call 2 \(call #2 in all\).*planner queue ran dry"):
        ask(llm, "planner")
    with pytest.raises(AssertionError, match=r"the worker's call 1 \(call #3 in all\)"):
        ask(llm, "worker")  # an empty queue means: this role must not be called


def test_a_role_with_no_queue_gets_a_labelled_reply_and_is_recorded(make_llm) -> None:
    """An agent a student adds ("researcher") must not break tests that script only the others."""
    client = FakeClient(planner=[completion("p1")])
    llm = make_llm(client)
    assert ask(llm, "researcher") == "(fake researcher reply)"
    assert ask(llm, "researcher") == "(fake researcher reply)"
    assert ask(llm, "planner") == "p1"
    assert client.defaulted == ["researcher", "researcher"]
    assert llm.ledger.roles["researcher"].calls == 2  # accounted like any reply


def test_the_single_queue_form_answers_in_call_order_and_fails_past_its_end(make_llm) -> None:
    client = FakeClient(completion("first"), completion("second"))
    llm = make_llm(client)
    assert [ask(llm, "research"), ask(llm, "coordinator")] == ["first", "second"]
    with pytest.raises(AssertionError, match=r"unexpected call #3 from 'research'"):
        ask(llm, "research")


def test_an_exception_in_a_queue_is_raised_as_the_servers_answer(make_llm) -> None:
    client = FakeClient(worker=[KeyboardInterrupt()])
    with pytest.raises(KeyboardInterrupt):
        ask(make_llm(client), "worker")


def test_the_two_forms_do_not_mix_and_a_request_needs_its_role() -> None:
    with pytest.raises(TypeError, match="not both"):
        FakeClient(completion("x"), planner=[completion("y")])
    client = FakeClient(planner=[completion("y")])
    with pytest.raises(AssertionError, match="no X-Agent-Role header"):
        client.create(model="m", messages=[mas.user("hi")])


def test_the_ladder_is_worked_out_from_the_rules(monkeypatch) -> None:
    """Worked examples with the limits fixed here, so they hold whatever the chapter's defaults are."""
    monkeypatch.setattr(mas, "REJECTIONS_BEFORE_REPLAN", 2)
    assert ladder([True], max_plans=3, max_iterations=10) == Ladder(1, 1, "approved")
    assert ladder([False, False, True], max_plans=3, max_iterations=10) == Ladder(3, 2, "approved")
    assert ladder([], max_plans=3, max_iterations=10) == Ladder(6, 3, "escalation_exhausted")
    assert ladder([], max_plans=3, max_iterations=6) == Ladder(6, 3, "escalation_exhausted")  # give_up comes first
    assert ladder([], max_plans=99, max_iterations=7) == Ladder(7, 4, "max_iterations")
    assert ladder([False] * 7 + [True], max_plans=3, max_iterations=10) == Ladder(6, 3, "escalation_exhausted")
    monkeypatch.setattr(mas, "REJECTIONS_BEFORE_REPLAN", 3)
    assert ladder([], max_plans=2, max_iterations=10) == Ladder(6, 2, "escalation_exhausted")


def post(server: LoopbackServer, role: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        server.url + "/chat/completions",
        data=json.dumps({"model": "m", "messages": []}).encode(),
        headers={"content-type": "application/json", ROLE_HEADER: role},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_the_loopback_server_answers_per_role_and_records_what_it_could_not() -> None:
    with LoopbackServer() as server:
        server.by_role = {"planner": [(200, chat_body("plan"), {})]}
        assert post(server, "planner")[1]["choices"][0]["message"]["content"] == "plan"
        status, body = post(server, "researcher")
        assert status == 200 and body["choices"][0]["message"]["content"] == "(fake researcher reply)"
        status, body = post(server, "planner")
        assert status == 400 and "planner queue ran dry" in body["error"]["message"]
    assert server.roles() == ["planner", "researcher", "planner"]
    assert server.defaulted == ["researcher"]
    assert server.unexpected == ["the planner's request 2 (request #3 in all)"]
