"""Stage 3 activity: the schema and rules fail closed, the loop ends, the best work survives, the CLI.

The starter and the solution are tested side by side where they promise the
same thing (the schema, the three plain rules, a partial result on every
stop), and apart where only the solution does (limits, budget, saving).
Rules are tested by what they must catch, never by the exact list they
return, so a rule a student adds does not break these tests.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import multi_agent_system as mas
from conftest import FakeClient, completion, output, shipped_starter
from machinery.demo import ScriptedClient, ToolCallSpec
from machinery.gateway import request_role
from stages.stage3.activity import machinery, players
from stages.stage3.activity import solution_workflow as solution
from stages.stage3.activity import starter_workflow as starter
from stages.stage3.handoffs import ToolError, parse_arguments

# Passes every rule of both modules, strict mode included; written out here, not taken from the code.
GOOD: dict[str, Any] = {
    "server_name": "shop.example.com",
    "debug": False,
    "listen_ports": [80, 443],
    "redirect_http_to_https": True,
    "tls": {"min_version": "1.3"},
    "headers": {
        "Strict-Transport-Security": "max-age=31536000; includeSubDomains; preload",
        "Content-Security-Policy": "default-src 'self'; img-src 'self' data:",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "SAMEORIGIN",
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": "geolocation=()",
    },
    "admin": {"username": "ops-lead", "password_env": "OPS_PASSWORD"},
    "cors": {"allowed_origins": ["https://shop.example.com"]},
    "server_tokens": False,
}
CHECKS = {
    "starter": lambda config, strict: starter.check_config(config),
    "solution": lambda config, strict: solution.check_config(config, strict),
}
MODES = [("starter", False), ("solution", False), ("solution", True)]


def changed(**fields: Any) -> dict[str, Any]:
    config = copy.deepcopy(GOOD)
    config.update(fields)
    return config


def blocks(findings: list[starter.Finding]) -> bool:
    return bool(starter.blocking(findings))


@pytest.mark.parametrize("module, strict", MODES)
def test_a_good_config_passes(module, strict):
    assert CHECKS[module](copy.deepcopy(GOOD), strict) == []


# ---------------------------------------------------------------------------
# Fail closed: every known-bad setting, in every shape found so far
# ---------------------------------------------------------------------------

# Shapes the schema must refuse, in both modules: each carries a flaw a rule exists for.
ODD_SHAPES: dict[str, dict[str, Any]] = {
    "Debug capitalised": {**changed(), "Debug": True},
    "DEBUG as text": {**changed(), "DEBUG": "on"},
    "debug with a space": {**changed(), "debug ": True},
    "debug_mode": {**changed(), "debug_mode": True},
    "app.debug": {**changed(), "app": {"debug": True}},
    "debug as text": changed(debug="false"),
    "debug as a switch object": changed(debug={"enabled": True}),
    "listeners": {**changed(), "listeners": [{"port": 23, "protocol": "telnet"}]},
    "services": {**changed(), "services": {"telnet": {"enabled": True}}},
    "bind": {**changed(), "bind": "0.0.0.0:21"},
    "endpoints": {**changed(), "endpoints": ["ftp://0.0.0.0:21"]},
    "port_range": {**changed(), "port_range": "20-25"},
    "ports as a string": changed(listen_ports="443, 23"),
    "a port as text": changed(listen_ports=[443, "23"]),
    "a port as float": changed(listen_ports=[443.0]),
    "ssl.protocols": {**changed(), "ssl": {"protocols": ["TLSv1", "TLSv1.3"]}},
    "tls.protocols": changed(tls={"min_version": "1.3", "protocols": ["1.0"]}),
    "tls legacy entry": changed(tls={"min_version": "1.3", "legacy": {"min_version": "1.0"}}),
    "tls fallback entry": changed(tls={"min_version": "1.3", "fallback": "1.0"}),
    "tls minimum entry": changed(tls={"min_version": "1.3", "minimum": "1.1"}),
    "tls version as a number": changed(tls={"min_version": 1.3}),
    "tls version spelled out": changed(tls={"min_version": "TLSv1.3 or 1.0"}),
    "cors allow_all": changed(cors={"allowed_origins": [], "allow_all": True}),
    "cors allow_any": changed(cors={"allowed_origins": [], "allow_any": True}),
    "origins as a comma string": changed(cors={"allowed_origins": "https://shop.example.com, *"}),
    "origins under another key": changed(cors={"origins": ["*"]}),
    "Admin capitalised": {**changed(), "Admin": {"username": "admin", "password": "admin"}},
    "administrator block": {**changed(), "administrator": {"user": "root"}},
    "auth block": {**changed(), "auth": {"username": "admin", "password": ""}},
    "a second password field": changed(admin={"username": "ops-lead", "password_env": "OPS", "password": "x"}),
    "the password in password_env": changed(admin={"username": "ops-lead", "password_env": "hunter2"}),
    "admin as a string": changed(admin="admin:admin"),
    "headers as a list": changed(headers=[["X-Frame-Options", "DENY"]]),
    "a header value as a number": changed(headers={**GOOD["headers"], "X-Frame-Options": 1}),
    "http on 80 through another key": {**changed(), "http": {"port": 80, "redirect": False}},
    "redirect as text": changed(redirect_http_to_https="yes"),
    "a duplicated key read as null": changed(debug=None),
    "the whole config wrapped twice": {"server": {"config": GOOD}},
}


@pytest.mark.parametrize("module, strict", MODES)
@pytest.mark.parametrize("name", ODD_SHAPES)
def test_a_flaw_in_an_odd_shape_is_still_a_blocking_finding(module, strict, name):
    found = CHECKS[module](copy.deepcopy(ODD_SHAPES[name]), strict)
    assert blocks(found), f"{name} passed {module} (strict={strict})"


# Flaws in the right shape: the starter's three rules catch these, and the solution too.
PLAIN_FLAWS = {
    "debug on": changed(debug=True),
    "telnet": changed(listen_ports=[443, 23]),
    "ftp": changed(listen_ports=[21, 443]),
    "admin user": changed(admin={"username": "Admin ", "password_env": "OPS_PASSWORD"}),
    "root user": changed(admin={"username": "root", "password_env": "OPS_PASSWORD"}),
    "no username": changed(admin={"username": " ", "password_env": "OPS_PASSWORD"}),
}
# Flaws only the solution's rules claim to catch.
SOLUTION_FLAWS = {
    "http without redirect": changed(redirect_http_to_https=False),
    "http, redirect left out": {k: v for k, v in GOOD.items() if k != "redirect_http_to_https"},
    "no https port": changed(listen_ports=[80]),
    "another port": changed(listen_ports=[80, 443, 8080]),
    "tls 1.0": changed(tls={"min_version": "1.0"}),
    "tls 1.1": changed(tls={"min_version": "1.1"}),
    "no hsts": changed(headers={k: v for k, v in GOOD["headers"].items() if k != "Strict-Transport-Security"}),
    "no csp": changed(headers={k: v for k, v in GOOD["headers"].items() if k != "Content-Security-Policy"}),
    "frames allowed": changed(headers={**GOOD["headers"], "X-Frame-Options": "ALLOWALL"}),
    "a header twice": changed(headers={**GOOD["headers"], "x-frame-options": "ALLOWALL"}),
    "a header name with a space": changed(headers={**GOOD["headers"], "X-Frame-Options ": "ALLOWALL"}),
    "an ACAO header": changed(headers={**GOOD["headers"], "Access-Control-Allow-Origin": "*"}),
    "cors wildcard": changed(cors={"allowed_origins": ["*"]}),
    "cors wildcard subdomain": changed(cors={"allowed_origins": ["https://*.example.com"]}),
    "cors null origin": changed(cors={"allowed_origins": ["null"]}),
    "cors over http": changed(cors={"allowed_origins": ["http://shop.example.com"]}),
    "cors comma inside an item": changed(cors={"allowed_origins": ["https://shop.example.com,*"]}),
}


@pytest.mark.parametrize("module, strict", MODES)
@pytest.mark.parametrize("name", PLAIN_FLAWS)
def test_the_three_plain_rules_catch_their_flaws(module, strict, name):
    assert blocks(CHECKS[module](copy.deepcopy(PLAIN_FLAWS[name]), strict)), name


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("name", SOLUTION_FLAWS)
def test_the_solutions_rules_catch_theirs(strict, name):
    assert blocks(solution.check_config(copy.deepcopy(SOLUTION_FLAWS[name]), strict)), name


def test_strict_mode_is_pickier():
    basic = changed(tls={"min_version": "1.2"}, headers={**GOOD["headers"], "Strict-Transport-Security": "max-age=60"})
    for name in ("Referrer-Policy", "Permissions-Policy"):
        del basic["headers"][name]
    assert solution.check_config(basic) == []
    ids = {f.id for f in solution.check_config(basic, strict=True)}
    assert {"tls-old", "header-strict-transport-security", "header-referrer-policy"} <= ids


def test_the_schema_names_what_is_wrong():
    found = {f.id: f for f in starter.schema_findings({**GOOD, "Debug": True, "tls": {"min_version": 3}})}
    assert (
        found["schema-unknown-Debug"].field == "Debug"
        and "not a known key" in found["schema-unknown-Debug"].description
    )
    assert "schema-invalid-tls-min-version" in found
    assert all(f.source == "schema" for f in found.values())
    missing = starter.schema_findings({k: v for k, v in GOOD.items() if k != "admin"})
    assert [f.id for f in missing] == ["schema-missing-admin"]


# -- Property tests: bad configs in shapes nobody listed ----------------------

_KEYS = ("debug", "listen_ports", "tls", "admin", "cors", "headers", "redirect_http_to_https")
_BAD_VALUES = {
    "debug": st.sampled_from([True, "on", "true", 1, "yes", {"enabled": True}, ["on"]]),
    "listen_ports": st.sampled_from([[23], [21, 443], "23", [443, "21"], {"telnet": 23}, [443.0, 23]]),
    "tls": st.sampled_from([{"min_version": "1.0"}, {"min_version": "1.1"}, {"min_version": 1.0}, "1.0", ["1.0"]]),
    "admin": st.sampled_from(
        [{"username": "admin", "password_env": "PW"}, {"username": "root", "password": "root"}, "admin", None]
    ),
}


def _spellings(key: str) -> st.SearchStrategy[str]:
    """Ways a model may write a key that are not the key: case, spaces, prefixes, suffixes, separators."""
    return st.sampled_from(
        [key.upper(), key.title(), f"{key} ", f" {key}", f"{key}_mode", f"{key}_enabled", f"server_{key}",
         key.replace("_", "-"), key.replace("_", ""), f"{key}s", f"legacy_{key}", f"fallback_{key}"]
    ).filter(lambda spelled: spelled != key)  # fmt: skip


STARTER_KEYS = ("debug", "listen_ports", "admin")  # the starter has no TLS rule: that is task 2


@st.composite
def bad_configs(draw: st.DrawFn, keys: tuple[str, ...] = tuple(_BAD_VALUES)) -> dict[str, Any]:
    """GOOD with one known-bad setting, written in a shape drawn at random."""
    config = copy.deepcopy(GOOD)
    key = draw(st.sampled_from(sorted(keys)))
    value = draw(_BAD_VALUES[key])
    how = draw(st.sampled_from(["in place", "respelled", "nested", "duplicated", "beside"]))
    if how == "in place":
        config[key] = value
    elif how == "respelled":  # the real key goes, a look-alike holds the bad value
        del config[key]
        config[draw(_spellings(key))] = value
    elif how == "nested":  # under a section of its own: {"app": {"debug": true}}
        section = draw(st.sampled_from(["app", "server", "settings", "http", "main", "security", "listeners"]))
        config[section] = {key: value}
    elif how == "duplicated":  # the good key stays, a look-alike next to it holds the bad value
        config[draw(_spellings(key))] = value
    else:  # inside the right section, under a key of its own
        inner = draw(st.sampled_from(["legacy", "fallback", "minimum", "extra", "override", "enabled", "protocols"]))
        target = draw(st.sampled_from(["tls", "admin", "cors"]))
        config[target] = {**config[target], inner: value}
    return config


PROPERTY_EXAMPLES = 400  # per mode; a few seconds, and far more shapes than anyone wrote out by hand


@pytest.mark.parametrize("strict", [False, True])
@settings(max_examples=PROPERTY_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=bad_configs())
def test_no_bad_config_passes_the_solution_in_any_shape(strict, config):
    assert blocks(solution.check_config(config, strict)), json.dumps(config)


@settings(max_examples=PROPERTY_EXAMPLES, deadline=None)
@given(config=bad_configs(STARTER_KEYS))
def test_no_bad_config_passes_the_starter_in_any_shape(config):
    assert blocks(starter.check_config(config)), json.dumps(config)


@settings(max_examples=PROPERTY_EXAMPLES, deadline=None)
@given(extra=st.dictionaries(st.text(min_size=1, max_size=12), st.none() | st.booleans() | st.integers(), min_size=1))
def test_any_key_outside_the_schema_is_a_finding(extra):
    config = {**GOOD, **{k: v for k, v in extra.items() if k not in GOOD}}
    if config != GOOD:
        assert any(f.source == "schema" for f in starter.check_config(config))


# ---------------------------------------------------------------------------
# Reading replies: tolerant of form, and never a traceback
# ---------------------------------------------------------------------------

DEEP = '{"debug": ' + "[" * 1500 + "]" * 1500 + "}"


def test_reading_a_config_survives_hostile_replies():
    assert machinery.read_config("no json here")[0] is None
    assert machinery.read_config(DEEP)[0] is None  # 1,500 levels: unreadable, not a RecursionError
    config, problem = machinery.read_config('{"a": ' * 20 + "1" + "}" * 20)
    assert config is None and "nests" in problem
    assert machinery.read_config('Sure!\n```json\n{"config": ' + json.dumps(GOOD) + "}\n```")[0] == GOOD


def test_model_findings_survive_hostile_replies():
    assert machinery.model_findings(DEEP) == []
    assert machinery.model_findings("I found nothing.") == []
    found = machinery.model_findings('[{"field": "debug", "severity": "whatever", "description": "on"}]')
    assert found[0]["severity"] == "medium"  # an unknown severity still blocks


def test_tool_arguments_nested_absurdly_deep_go_back_to_the_model():
    with pytest.raises(ToolError, match="nested too deeply"):
        parse_arguments('{"topic": ' + "[" * 1500 + "]" * 1500 + "}")


# ---------------------------------------------------------------------------
# Whole games: both modules, through their command lines
# ---------------------------------------------------------------------------


def scripted(blue: list[str], red: str = '{"findings": []}', ciso: str = '{"approved": true}') -> ScriptedClient:
    """Blue's replies in order (the last repeats), a fixed Red Team model and CISO."""
    turns = {"blue": 0}

    def respond(request: dict[str, Any]) -> str | list[ToolCallSpec]:
        role = request_role(request)
        if role == "blue_team":
            turns["blue"] += 1
            return blue[min(turns["blue"], len(blue)) - 1]
        return red if role == "red_team" else ciso

    return ScriptedClient(respond)


def trace_events() -> list[dict[str, Any]]:
    (trace,) = Path("logs").glob("*.jsonl")
    return [json.loads(line) for line in trace.read_text().splitlines()]


@pytest.mark.parametrize("module", [starter, solution])
def test_each_module_plays_offline_and_approves(module, console):
    assert module.main(["--demo"], console=console) == mas.EXIT_APPROVED
    text = output(console)
    assert "Scripted demo model, not a real LLM" in text and "APPROVED configuration" in text
    assert trace_events()[-1]["approved"] is True


def test_only_the_solution_saves_and_only_on_approval(console):
    assert shipped_starter().main(["--demo"], console=console) == 0 and not Path("secure_server.json").exists()
    assert solution.main(["--demo"], console=console) == 0
    assert json.loads(Path("secure_server.json").read_text()) == trace_events_of_last()["config"]
    Path("secure_server.json").unlink()
    never_fixed = scripted([json.dumps(changed(debug=True))])
    assert solution.main([], console=console, client=never_fixed) == mas.EXIT_NOT_APPROVED
    assert not Path("secure_server.json").exists()


def trace_events_of_last() -> dict[str, Any]:
    newest = max(Path("logs").glob("*.jsonl"), key=lambda p: p.stat().st_mtime_ns)
    return json.loads(newest.read_text().splitlines()[-1])


@pytest.mark.parametrize("module", [starter, solution])
def test_a_run_that_stops_keeps_the_best_work_marked_not_approved(module, console, capsys):
    bad = changed(debug=True, listen_ports=[443, 23])
    client = scripted([json.dumps(bad)], ciso='{"approved": false}')
    code = module.main(["--max-tokens", "6000"], console=console, client=client)
    assert code == mas.EXIT_NOT_APPROVED
    text = output(console)
    assert "NOT approved: the best work so far" in text and "debug-mode" in text and "port-23" in text
    end = trace_events()[-1]
    assert end["event"] == "end" and end["approved"] is False and end["config"] == bad
    assert {"debug-mode", "port-23"} <= {f["id"] for f in end["all_findings"]}


def test_the_starters_limit_is_only_a_prompt_so_the_token_gate_ends_it(console):
    shipped = shipped_starter()  # as shipped: task 4 asks the student to change this
    client = scripted([json.dumps(changed(debug=True))], ciso='{"approved": false}')
    assert shipped.main(["--max-tokens", "8000"], console=console, client=client) == mas.EXIT_NOT_APPROVED
    end = trace_events()[-1]
    assert end["stop_reason"] == "token_budget" and end["rounds"] > solution.MAX_LOOPS
    assert "Stop the game after 5 rounds" in shipped.CISO_PROMPT  # asked for, and not kept: task 4


def test_the_starter_never_approves_with_a_blocking_finding_whatever_the_ciso_says(console):
    client = scripted([json.dumps(changed(debug=True)), json.dumps(GOOD)], ciso='{"approved": true}')
    assert starter.main([], console=console, client=client) == mas.EXIT_APPROVED
    assert trace_events()[-1]["rounds"] == 2


@pytest.mark.parametrize("module", [starter, solution])
def test_json_output_holds_the_partial_result(module, capsys, tmp_path):
    from rich.console import Console

    client = scripted(["not a config at all"], ciso='{"approved": false}')
    console = Console(file=__import__("io").StringIO(), width=200)
    assert module.main(["--json", "--max-tokens", "5000"], console=console, client=client) == 1
    result = json.loads(console.file.getvalue())
    assert result["approved"] is False and result["config"] is None
    assert "blue-format" in {f["id"] for f in result["all_findings"]}


@pytest.mark.parametrize("module", [starter, solution])
@pytest.mark.parametrize("who", ["blue_team", "red_team", "ciso"])
def test_a_deeply_nested_reply_from_any_player_is_no_traceback(module, who, console):
    def respond(request: dict[str, Any]) -> str:
        role = request_role(request)
        if role == who:
            return DEEP
        return json.dumps(GOOD) if role == "blue_team" else '{"approved": true, "findings": []}'

    code = module.main(["--max-tokens", "6000"], console=console, client=ScriptedClient(respond))
    assert code in (mas.EXIT_APPROVED, mas.EXIT_NOT_APPROVED)
    assert "Traceback" not in output(console) and trace_events()[-1]["event"] == "end"


@pytest.mark.parametrize("module", [starter, solution])
def test_ctrl_c_keeps_the_trace_and_the_partial_result(module, console):
    first = completion(json.dumps(changed(debug=True)))
    client = FakeClient(first, completion('{"findings": []}'), completion('{"approved": false}'), KeyboardInterrupt())
    assert module.main([], console=console, client=client) == mas.EXIT_INTERRUPTED
    end = trace_events()[-1]
    assert end["stop_reason"] == "interrupted" and end["config"]["debug"] is True
    assert "NOT approved" in output(console)


# -- The solution's limits, in code --------------------------------------------


def test_the_solution_stops_at_the_round_limit(console):
    client = scripted([json.dumps(changed(debug=True))])
    assert solution.main(["--max-loops", "2"], console=console, client=client) == mas.EXIT_NOT_APPROVED
    end = trace_events()[-1]
    assert end["stop_reason"] == "max_loops" and end["rounds"] == 2
    assert sum(1 for r in client.requests if request_role(r) == "red_team") == 2


def test_the_solution_rejects_over_the_change_budget(console):
    configs = [changed(debug=True, server_name=f"shop{i}.example.com") for i in range(9)]
    client = scripted([json.dumps(c) for c in configs])
    assert solution.main(["--max-cost", "2"], console=console, client=client) == mas.EXIT_NOT_APPROVED
    end = trace_events()[-1]
    # one point a round from round 2 on: 3 points, over the budget of 2, in round 4
    assert end["stop_reason"] == "cost_ceiling" and end["cost"] == 3 and end["rounds"] == 4


def test_ciso_decision_reads_limits_from_the_options():
    high = starter.Finding("x", "high", "x", "bad")
    options = solution.AuditOptions(max_loops=3, max_cost=10)
    assert solution.ciso_decision([high], options.max_loops - 1, 0, options).verdict == "send back"
    assert solution.ciso_decision([high], options.max_loops, 0, options).stop_reason == "max_loops"
    assert solution.ciso_decision([], 1, options.max_cost + 1, options).stop_reason == "cost_ceiling"
    assert solution.ciso_decision([], 1, options.max_cost, options).verdict == "approve"


def test_a_model_finding_the_rules_disagree_with_is_disputed_and_still_blocks(console):
    red = json.dumps({"findings": [{"severity": "high", "field": "debug", "description": "debug looks on"}]})
    client = scripted([json.dumps(GOOD)], red=red)
    assert solution.main(["--max-loops", "2", "--json"], console=console, client=client) == mas.EXIT_NOT_APPROVED
    result = json.loads(output(console))
    (finding,) = result["open_findings"]
    assert finding["source"] == "disputed" and "disputed" in finding["description"]
    assert "disputed" in result["detail"]
    ciso_tasks = [r["messages"][1]["content"] for r in client.requests if request_role(r) == "ciso"]
    assert "disputed" in ciso_tasks[-1]


def test_a_model_finding_on_another_field_is_kept_and_blocks(console):
    red = json.dumps({"findings": [{"severity": "medium", "field": "server_name", "description": "too revealing"}]})
    client = scripted([json.dumps(GOOD)], red=red)
    assert starter.main(["--max-tokens", "5000"], console=console, client=client) == mas.EXIT_NOT_APPROVED
    assert "red-server-name" in output(console)


# -- The offline players react to the student's code --------------------------


def test_a_rule_a_student_adds_shows_up_offline(console, monkeypatch):
    def check_server_tokens(config: dict[str, Any], strict: bool) -> list[starter.Finding]:
        return [] if config.get("server_tokens") is False else [starter.Finding("banner", "low", "server_tokens", "on")]

    monkeypatch.setattr(starter, "RULES", [*starter.RULES, check_server_tokens])
    assert starter.main(["--demo"], console=console) == mas.EXIT_APPROVED
    assert "banner (server_tokens)" in output(console)


def test_the_scripted_blue_team_uses_a_topic_a_student_adds(console, monkeypatch, tmp_path):
    kb = json.loads(solution.KB_FILE.read_text())
    kb["cache"] = {"aliases": [], "setting": {"server_tokens": False, "cache_control": "no-store"}, "why": "..."}
    (tmp_path / "kb.json").write_text(json.dumps(kb))
    monkeypatch.setattr(solution, "KB_FILE", tmp_path / "kb.json")
    monkeypatch.setattr(solution.load_knowledge_base, "__defaults__", (tmp_path / "kb.json",))

    def check_cache(config: dict[str, Any], strict: bool) -> list[starter.Finding]:
        return [] if config.get("cache_control") == "no-store" else [starter.Finding("cache", "high", "cache", "x")]

    monkeypatch.setattr(solution, "RULES", [*solution.RULES, check_cache])
    monkeypatch.setattr(starter.ServerConfig, "model_config", {**starter.ServerConfig.model_config, "extra": "allow"})
    starter.ServerConfig.model_rebuild(force=True)
    try:
        assert solution.main(["--demo", "--json"], console=console) == mas.EXIT_APPROVED
    finally:
        monkeypatch.undo()
        starter.ServerConfig.model_rebuild(force=True)
    result = json.loads(output(console))
    assert "cache" in result["kb_lookups"] and result["config"]["cache_control"] == "no-store"


def test_a_rewritten_prompt_is_shown_once_in_verbose(console, monkeypatch):
    monkeypatch.setattr(starter, "RED_PROMPT", "You are a very picky Red Team. Demand TLS 1.3.")
    assert starter.main(["--demo", "--verbose"], console=console) == mas.EXIT_APPROVED
    text = output(console)
    assert text.count("You are a very picky Red Team") == 1  # two Red Team calls, the prompt printed once
    assert "(the same system prompt as before)" in text


def test_without_a_knowledge_base_the_scripted_blue_team_needs_more_rounds(console):
    assert solution.main(["--demo", "--json"], console=console) == 0
    with_kb = json.loads(output(console))
    console.file.truncate(0)
    console.file.seek(0)
    assert solution.main(["--demo", "--json", "--no-kb"], console=console) == 0
    without = json.loads(output(console))
    assert with_kb["kb_lookups"] and not without["kb_lookups"]
    assert without["rounds"] > with_kb["rounds"]


def test_player_helpers():
    assert players.topic_of("headers.Content-Security-Policy") == "headers"
    assert players.findings_in("- [high] debug-mode (debug): on\n- [low] x (y): z") == [
        ("high", "debug-mode", "debug"),
        ("low", "x", "y"),
    ]


# -- The command line -------------------------------------------------------------


@pytest.mark.parametrize("module", [starter, solution])
def test_usage_errors_are_one_line(module, console):
    assert module.main(["   "], console=console) == mas.EXIT_USAGE
    assert module.main(["--max-tokens", "0"], console=console) == mas.EXIT_USAGE
    assert "Traceback" not in output(console)


def test_a_bad_out_path_is_one_line_and_costs_nothing(console, tmp_path):
    client = FakeClient()  # any call would fail the test: nothing may be paid for
    assert solution.main(["--out", str(tmp_path)], console=console, client=client) == mas.EXIT_USAGE
    assert [line for line in output(console).splitlines() if line.startswith("error:")]


# A rule a student names their own way (EXERCISE.md allows any stable id): (id, field, description, check).
STUDENT_FINDINGS = {
    "a version to set": (
        "old-tls-protocol",
        "tls.min_version",
        "TLS older than 1.3: set 1.3",
        lambda c: isinstance(c.get("tls"), dict) and c["tls"].get("min_version") == "1.3",
    ),
    "a block to fix": (
        "weak-crypto",
        "tls",
        "old TLS is allowed",
        lambda c: isinstance(c.get("tls"), dict) and c["tls"].get("min_version") == "1.3",
    ),
    "a header by name": (
        "no-hsts",
        "headers.Strict-Transport-Security",
        "HSTS is missing",
        lambda c: isinstance(c.get("headers"), dict) and "Strict-Transport-Security" in c["headers"],
    ),
    "the headers as a whole": (
        "missing-security-headers",
        "headers",
        "Referrer-Policy is missing",
        lambda c: isinstance(c.get("headers"), dict) and "Referrer-Policy" in c["headers"],
    ),
    "a quoted value": (
        "frames",
        "headers.X-Frame-Options",
        'framing is allowed: set "DENY"',
        lambda c: isinstance(c.get("headers"), dict) and c["headers"].get("X-Frame-Options") == "DENY",
    ),
    "a flag to set": (
        "plain-http",
        "redirect_http_to_https",
        "HTTP is served as is: set true",
        lambda c: c.get("redirect_http_to_https") is True,
    ),
}


@pytest.mark.parametrize("case", STUDENT_FINDINGS)
def test_the_scripted_blue_team_fixes_what_a_finding_says_whatever_its_id(case, console, monkeypatch):
    fid, where, description, fixed = STUDENT_FINDINGS[case]

    def student_rule(config: dict[str, Any], strict: bool) -> list[starter.Finding]:
        return [] if fixed(config) else [starter.Finding(fid, "high", where, description)]

    assert not fixed(players.FIRST_DRAFT)  # the first draft has the flaw: the rule fires in round 1
    monkeypatch.setattr(starter, "RULES", [*starter.RULES, student_rule])
    assert starter.main(["--demo", "--json"], console=console) == mas.EXIT_APPROVED, output(console)[-600:]
    result = json.loads(output(console))
    assert result["rounds"] <= 3 and fid in {f["id"] for f in result["all_findings"]}
