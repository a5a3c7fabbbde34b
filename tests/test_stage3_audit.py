"""Stage 3 activity: the Red Team's rules, the CISO's decision, the limits, saving, and the CLI."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import multi_agent_system as mas
from conftest import output
from stages.stage3.activity import starter_workflow as audit
from stages.stage3.activity.starter_workflow import AuditOptions, Finding, at_or_above, check_config, ciso_decision

# A configuration that passes even the strict rules, written out here rather than taken from the module.
GOOD: dict[str, Any] = {
    "server_name": "shop.example.com",
    "debug": False,
    "listen_ports": [80, 443],
    "redirect_http_to_https": True,
    "tls": {"min_version": "TLSv1.3"},
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
}
# Good enough for the normal rules only: TLS 1.2 and the four basic headers, present but not tuned.
BASIC: dict[str, Any] = {
    **GOOD,
    "tls": {"min_version": "1.2"},
    "headers": {
        "strict-transport-security": "max-age=60",
        "Content-Security-Policy": "default-src *",
        "X-Content-Type-Options": "yes",
        "X-Frame-Options": "ALLOWALL",
    },
}


def changed(base: dict[str, Any], **fields: Any) -> dict[str, Any]:
    config = copy.deepcopy(base)
    config.update(fields)
    return config


def without_header(name: str) -> dict[str, Any]:
    config = copy.deepcopy(GOOD)
    del config["headers"][name]
    return config


def ids(config: dict[str, Any], strict: bool) -> list[str]:
    return [finding.id for finding in check_config(config, strict)]


# -- the deterministic rules ---------------------------------------------------------------


@pytest.mark.parametrize("strict", [False, True])
def test_a_good_config_passes_every_rule(strict):
    assert ids(GOOD, strict) == []


def test_a_basic_config_passes_normal_rules_and_fails_strict_ones():
    assert ids(BASIC, strict=False) == []
    assert set(ids(BASIC, strict=True)) == {
        "tls-version",
        "header-strict-transport-security",
        "header-content-security-policy",
        "header-x-content-type-options",
        "header-x-frame-options",
        "header-referrer-policy",
        "header-permissions-policy",
    }


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize(
    "config, expected, severity",
    [
        (changed(GOOD, debug=True), "debug-mode", "high"),
        (changed(GOOD, debug="on"), "debug-mode", "high"),
        (changed(GOOD, listen_ports=[443, 23]), "port-23", "critical"),
        (changed(GOOD, listen_ports=["21/tcp", 443]), "port-21", "critical"),
        (changed(GOOD, listen_ports=[80, 443], redirect_http_to_https=False), "port-80", "high"),
        (changed(GOOD, listen_ports=["80"], redirect_http_to_https=None), "port-80", "high"),
        (changed(GOOD, tls={"min_version": "1.0"}), "tls-version", "high"),
        (changed(GOOD, tls={"min_version": "SSLv3"}), "tls-version", "high"),
        (changed(GOOD, tls={}), "tls-version", "high"),
        (without_header("Strict-Transport-Security"), "header-strict-transport-security", "medium"),
        (without_header("Content-Security-Policy"), "header-content-security-policy", "medium"),
        (without_header("X-Content-Type-Options"), "header-x-content-type-options", "medium"),
        (without_header("X-Frame-Options"), "header-x-frame-options", "medium"),
        (changed(GOOD, admin={"username": "admin", "password_env": "X"}), "credentials", "critical"),
        (changed(GOOD, admin={"username": "ops-lead", "password": ""}), "credentials", "critical"),
        (changed(GOOD, admin={"username": "ops-lead", "password": "changeme"}), "credentials", "critical"),
        (changed(GOOD, admin={"username": "ops-lead"}), "credentials", "critical"),
        (changed(GOOD, cors={"allowed_origins": ["https://a.example", "*"]}), "cors-wildcard", "high"),
        (changed(GOOD, cors="*"), "cors-wildcard", "high"),
    ],
)
def test_each_rule_catches_its_mistake(config, expected, severity, strict):
    findings = check_config(config, strict)
    assert [f.id for f in findings] == [expected]
    assert findings[0].severity == severity and findings[0].fix


@pytest.mark.parametrize(
    "config, expected",
    [
        (changed(GOOD, tls={"min_version": "1.2"}), "tls-version"),
        (
            changed(GOOD, headers={**GOOD["headers"], "Strict-Transport-Security": "max-age=300"}),
            "header-strict-transport-security",
        ),
        (
            changed(GOOD, headers={**GOOD["headers"], "Strict-Transport-Security": "max-age=31536000"}),
            "header-strict-transport-security",
        ),
        (
            changed(GOOD, headers={**GOOD["headers"], "Content-Security-Policy": "default-src 'self' 'unsafe-inline'"}),
            "header-content-security-policy",
        ),
        (
            changed(GOOD, headers={**GOOD["headers"], "Content-Security-Policy": "script-src 'self'"}),
            "header-content-security-policy",
        ),
        (
            changed(GOOD, headers={**GOOD["headers"], "X-Content-Type-Options": "sniff"}),
            "header-x-content-type-options",
        ),
        (
            changed(GOOD, headers={**GOOD["headers"], "X-Frame-Options": "ALLOW-FROM https://x"}),
            "header-x-frame-options",
        ),
        (changed(GOOD, headers={**GOOD["headers"], "Referrer-Policy": "unsafe-url"}), "header-referrer-policy"),
        (without_header("Referrer-Policy"), "header-referrer-policy"),
        (without_header("Permissions-Policy"), "header-permissions-policy"),
    ],
)
def test_strict_rules_are_pickier(config, expected):
    assert ids(config, strict=False) == []
    assert ids(config, strict=True) == [expected]


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"debug": None, "listen_ports": "not ports", "tls": "1.3", "headers": ["x"], "admin": "root", "cors": None},
        {"listen_ports": [None, {"p": 1}], "tls": {"min_version": None}, "admin": {"username": 7, "password": 7}},
    ],
)
def test_rules_never_crash_on_odd_json(config):
    for strict in (False, True):
        assert all(isinstance(f, Finding) for f in check_config(config, strict))


# The rules fail closed: a rule-owned field in a shape they cannot read is a finding in itself,
# and every reasonable spelling of a field is read. Each config below once passed every rule, and
# the Red Team's model may not report on these fields, so nobody reported them.
BYPASSES = [
    (changed(GOOD, listen_ports="443, 23"), {"ports-format", "port-23"}),
    (changed(GOOD, listen_ports=[{"port": 23}, 443]), {"ports-format", "port-23"}),
    (changed(GOOD, listen_ports={"https": 443, "telnet": 23}), {"ports-format", "port-23"}),
    (changed(GOOD, listen_ports={"https": 443, "ftp": True}), {"ports-format", "port-21"}),
    (changed(GOOD, listen_ports=[443, "23 (admin)"]), {"ports-format", "port-23"}),
    (changed(GOOD, listen_ports=443), {"ports-format"}),
    (changed(GOOD, telnet={"enabled": True}), {"port-23"}),
    (changed(GOOD, admin_port="0.0.0.0:23"), {"port-23"}),
    (changed(GOOD, debug={"enabled": True}), {"debug-mode"}),
    (changed(GOOD, debug={"on": "yes"}), {"debug-mode"}),
    (changed(GOOD, debug="verbose"), {"debug-format"}),
    (changed(GOOD, debug={"level": "trace"}), {"debug-format"}),
    (changed(GOOD, cors={"allow_origins": ["*"]}), {"cors-wildcard"}),
    (changed(GOOD, cors={"AllowedOrigins": "*"}), {"cors-wildcard"}),
    (changed(GOOD, cors={"api": {"origins": ["https://shop.example.com", "*"]}}), {"cors-wildcard"}),
    (changed(GOOD, cors={"allow_origin_regex": ".*"}), {"cors-wildcard"}),
    (changed(GOOD, cors={"allow_all_origins": True}), {"cors-wildcard"}),
    (changed(GOOD, cors=True), {"cors-wildcard"}),
    (changed(GOOD, cors={"allowed_origins": 7}), {"cors-format"}),
    (changed(GOOD, headers={**GOOD["headers"], "Access-Control-Allow-Origin": "*"}), {"cors-wildcard"}),
    (changed(GOOD, headers={**GOOD["headers"], "access-control-allow-origin": " * "}), {"cors-wildcard"}),
    (changed(GOOD, headers=[["X-Frame-Options", "DENY"]]), {"headers-format"}),
    (changed(GOOD, headers={**GOOD["headers"], "X-Frame-Options": ["DENY"]}), {"header-x-frame-options"}),
    (changed(GOOD, headers={**GOOD["headers"], "x-frame-options": ""}), {"header-x-frame-options"}),
    (changed(GOOD, tls="1.3"), {"tls-version"}),
    (changed(GOOD, tls={"min_version": "1.3", "protocols": ["TLSv1", "TLSv1.3"]}), {"tls-version"}),
    (changed(GOOD, tls={"min_version": "1.3", "enabled": False}), {"tls-version"}),
    (changed(GOOD, tls={"min_version": ["1.3", "1.x"]}), {"tls-version"}),
    (changed(GOOD, ssl_protocols="TLSv1 TLSv1.2 TLSv1.3"), {"tls-version"}),
    (changed(GOOD, admin="root"), {"credentials"}),
    (changed(GOOD, admin=[{"username": "ops-lead", "password_env": "X"}]), {"credentials"}),
    (changed(GOOD, admin={"user": "admin", "password_env": "X"}), {"credentials"}),
    (changed(GOOD, admin={"username": "ops-lead", "password_env": "X", "pass": "admin"}), {"credentials"}),
    (changed(GOOD, admin={"username": "ops-lead", "password": {"value": "s3cret-Long"}}), {"credentials"}),
    (changed(GOOD, admin={"username": "ops-lead", "password_env": ""}), {"credentials"}),
    (changed(GOOD, admin={"password_env": "X"}), {"credentials"}),
]


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize(
    "config, expected", BYPASSES, ids=[f"{i}-{'+'.join(sorted(expected))}" for i, (_, expected) in enumerate(BYPASSES)]
)
def test_odd_shapes_and_other_spellings_cannot_bypass_the_rules(config, expected, strict):
    findings = check_config(config, strict)
    found = {f.id for f in findings}
    assert expected <= found  # headers that cannot be read are also reported missing, one by one:
    assert all(f in expected or (f.startswith("header-") and "headers-format" in expected) for f in found)
    assert all(at_or_above(f.severity, "medium") and f.fix for f in findings)  # each one blocks approval


@pytest.mark.parametrize(
    "config",
    [
        changed(GOOD, listen_ports=["443/tcp", "8443"], ssh_port=22, support_email="ops@shop.example.com"),
        changed(GOOD, listen_ports=[443], redirect_http_to_https={"enabled": False}, listen="10.0.0.21:443"),
        changed(GOOD, debug={"enabled": False}, telnet=False, ftp={"enabled": "off"}),
        changed(
            GOOD,
            cors={
                "allow_origins": ["https://shop.example.com"],
                "allow_methods": ["*"],
                "allow_headers": ["*"],
                "allow_origin_regex": r"https://[a-z]+\.shop\.example\.com",
            },
        ),
        changed(GOOD, tls={"min_version": "TLSv1.3", "max_version": "1.3", "alpn_protocols": ["h2", "http/1.1"]}),
        changed(GOOD, admin={"user": "ops-lead", "password_file": "/run/secrets/admin"}),
        changed(GOOD, cors=None),
    ],
)
def test_other_spellings_of_good_settings_pass(config):
    assert ids(config, strict=True) == []


def test_a_bypass_with_a_silent_red_model_is_never_approved(console):
    """The end-to-end case: Blue writes the ports as a string and Red's model says nothing."""
    client = players(lambda n, request: json.dumps(changed(GOOD, listen_ports="443, 23")))
    assert audit.main([], console=console, client=client) == mas.EXIT_NOT_APPROVED
    text = output(console)
    assert "stop reason: max_loops" in text and "ports-format" in text and "port-23" in text
    assert "approved config written" not in text
    assert not Path("secure_server.json").exists()


# -- reading replies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"debug": false}', {"debug": False}),
        (
            'Here you go:\n```json\n{"debug": false, "tls": {"min_version": "1.3"}}\n```\nAll fixed.',
            {"debug": False, "tls": {"min_version": "1.3"}},
        ),
        ('{"server": {"debug": false, "listen_ports": [443]}}', {"debug": False, "listen_ports": [443]}),
        (
            'For example {"a": 1} is wrong; the config is {"debug": false, "listen_ports": [443]}',
            {"debug": False, "listen_ports": [443]},
        ),
    ],
)
def test_blue_team_json_is_read_tolerantly(text, expected):
    assert audit.read_config(text) == (expected, "")


@pytest.mark.parametrize("text", ["", "I turned debug off.", '["debug", false]', '{"debug": fals'])
def test_a_reply_without_a_json_object_is_not_a_config(text):
    config, problem = audit.read_config(text)
    assert config is None and problem


def test_model_findings_on_rule_fields_are_dropped_and_severities_normalised():
    reply = json.dumps(
        {
            "findings": [
                {"severity": "critical", "field": "tls.min_version", "description": "TLS is fine, actually"},
                {"severity": "severe", "field": "logging", "description": "No access log.", "fix": "Log requests."},
                {"severity": "low", "field": "logging", "description": "Duplicate of the above."},
                {"severity": "high", "field": "rate_limit", "description": ""},
            ]
        }
    )
    findings, dropped = audit.read_model_findings(reply, iteration=2)
    assert [(f.id, f.severity, f.source, f.found_in) for f in findings] == [("red-logging", "medium", "model", 2)]
    assert dropped == ["tls.min_version: the rules decide this field"]


def test_count_changes_counts_leaf_fields():
    assert audit.count_changes(GOOD, GOOD) == 0
    assert audit.count_changes(GOOD, changed(GOOD, debug=True, extra=1)) == 2
    assert audit.count_changes(GOOD, without_header("X-Frame-Options")) == 1


# -- the CISO's rule ------------------------------------------------------------------------


def finding(severity: str) -> Finding:
    return Finding(f"x-{severity}", severity, "x", "d", "f")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "open_findings, iteration, cost, options, verdict, stop_reason",
    [
        ([], 1, 0, AuditOptions(), "approve", "approved"),
        ([finding("low")], 1, 0, AuditOptions(), "approve", "approved"),
        ([finding("medium")], 1, 0, AuditOptions(), "send back", None),
        ([finding("medium")], 1, 0, AuditOptions(threshold="high"), "approve", "approved"),
        ([finding("critical")], 4, 0, AuditOptions(), "send back", None),
        ([finding("critical")], 5, 0, AuditOptions(), "reject", "max_loops"),
        ([finding("critical")], 2, 0, AuditOptions(max_loops=2), "reject", "max_loops"),
        ([], 3, 30, AuditOptions(), "approve", "approved"),
        ([], 3, 31, AuditOptions(), "reject", "cost_ceiling"),
        ([finding("high")], 5, 99, AuditOptions(), "reject", "cost_ceiling"),
    ],
)
def test_the_ciso_decides_in_code(open_findings, iteration, cost, options, verdict, stop_reason):
    decision = ciso_decision(open_findings, iteration, cost, options)
    assert (decision.verdict, decision.stop_reason) == (verdict, stop_reason)


# -- whole games ----------------------------------------------------------------------------


def players(
    blue: Callable[[int, dict[str, Any]], Any], red: str = '{"findings": []}', ciso: str = "APPROVED, ship it!"
) -> mas.ScriptedClient:
    """A scripted client for the three players; ``blue(n, request)`` answers the Blue Team's n-th call."""
    count = 0

    def respond(request: dict[str, Any]) -> Any:
        nonlocal count
        system = request["messages"][0]["content"]
        if system == audit.BLUE_PROMPT:
            count += 1
            return blue(count, request)
        return red if system == audit.RED_PROMPT else ciso

    return mas.ScriptedClient(respond)


def by_player(client: mas.ScriptedClient, prompt: str) -> list[dict[str, Any]]:
    return [r for r in client.requests if r["messages"][0]["content"] == prompt]


def test_the_audit_converges_offline_and_saves_valid_json(console):
    assert audit.main([], console=console) == mas.EXIT_APPROVED
    text = output(console)
    assert "Scripted demo model, not a real LLM" in text
    assert "stop reason: approved" in text and "approved config written to secure_server.json" in text
    saved = json.loads(Path("secure_server.json").read_text())
    assert check_config(saved, strict=False) == []
    assert not list(Path(".").glob(".secure_server.json.*.tmp"))  # the atomic write left nothing behind
    trace = next(Path("logs").glob("*.jsonl"))
    end = json.loads(trace.read_text().splitlines()[-1])
    assert end["event"] == "end" and end["stop_reason"] == "approved" and end["config"] == saved


@pytest.mark.parametrize("flags", [[], ["--strict"]])
def test_the_knowledge_base_saves_a_round(make_llm, flags):
    rounds = {}
    for knowledge in (audit.load_knowledge_base(), None):
        client = mas.ScriptedClient(audit.demo_responder())
        options = AuditOptions(strict=bool(flags), knowledge_base=knowledge is not None)
        state = audit.run_audit(audit.DEFAULT_BRIEF, make_llm(client), options, knowledge)
        assert state.stop_reason == "approved" and check_config(state.config, options.strict) == []
        blue_requests = by_player(client, audit.BLUE_PROMPT)
        assert all(("tools" in r) == (knowledge is not None) for r in blue_requests)
        rounds[knowledge is not None] = state.iteration
    assert rounds == {True: 2, False: 3}


def test_nothing_is_lost_between_rounds(make_llm):
    client = mas.ScriptedClient(audit.demo_responder())
    state = audit.run_audit(audit.DEFAULT_BRIEF, make_llm(client), AuditOptions(knowledge_base=False), None)
    resolved = {f.id: f.resolved_in for f in state.resolved}
    assert resolved["debug-mode"] == 2 and resolved["port-23"] == 2
    assert resolved["header-content-security-policy"] == 3 and resolved["red-server-tokens"] == 3
    assert all(f.found_in == 1 for f in state.resolved)
    assert state.open_findings == [] and state.cost > 0


def test_the_red_team_model_is_shown_the_config(make_llm):
    client = mas.ScriptedClient(audit.demo_responder())
    audit.run_audit(audit.DEFAULT_BRIEF, make_llm(client), AuditOptions(), audit.load_knowledge_base())
    first_review = by_player(client, audit.RED_PROMPT)[0]["messages"][1]["content"]
    draft, _ = audit.read_config(first_review)
    assert draft is not None and draft["debug"] is True and 23 in draft["listen_ports"]


def stubborn(n: int, request: dict[str, Any]) -> str:
    return json.dumps(changed(GOOD, debug=True))


def test_the_ciso_stops_the_game_after_five_rounds(console):
    client = players(stubborn)  # Red's model sees nothing and the CISO's model says "approved": neither counts
    assert audit.main([], console=console, client=client) == mas.EXIT_NOT_APPROVED
    assert len(by_player(client, audit.BLUE_PROMPT)) == 5
    assert "stop reason: max_loops" in output(console)
    assert not Path("secure_server.json").exists()


def test_max_loops_flag(console):
    client = players(stubborn)
    assert audit.main(["--max-loops", "2"], console=console, client=client) == mas.EXIT_NOT_APPROVED
    assert len(by_player(client, audit.BLUE_PROMPT)) == 2


def test_the_cost_ceiling_rejects_expensive_fixes(console):
    assert audit.main(["--max-cost", "3"], console=console) == mas.EXIT_NOT_APPROVED
    assert "stop reason: cost_ceiling" in output(console) and "change cost 14/3" in output(console)
    assert not Path("secure_server.json").exists()


def test_an_unreadable_blue_reply_is_a_finding_not_a_crash(console):
    replies = ["I would rather describe it: debug off, TLS 1.3.", json.dumps(GOOD)]
    client = players(lambda n, request: replies[n - 1])
    assert audit.main(["--out", "out/approved.json"], console=console, client=client) == mas.EXIT_APPROVED
    assert "the Blue Team's reply is not a configuration" in output(console)
    assert json.loads(Path("out/approved.json").read_text()) == GOOD
    second = by_player(client, audit.BLUE_PROMPT)[1]["messages"][1]["content"]
    assert "blue-format" in second  # the problem went back to the Blue Team as a finding


def test_a_regression_is_reported(console):
    replies = [changed(GOOD, debug=True), changed(GOOD, cors="*"), changed(GOOD, cors="*", debug=True), GOOD]
    client = players(lambda n, request: json.dumps(replies[n - 1]))
    assert audit.main([], console=console, client=client) == mas.EXIT_APPROVED
    assert "regression: debug-mode was fixed in an earlier round and is back" in output(console)


def test_knowledge_base_lookups(make_llm):
    state = audit.AuditState("brief")
    knowledge = audit.load_knowledge_base()
    assert json.loads(audit.lookup_secure_default(knowledge, state, "TLS"))["setting"] == {
        "tls": {"min_version": "1.3"}
    }
    assert json.loads(audit.lookup_secure_default(knowledge, state, "telnet"))["topic"] == "ports"
    with pytest.raises(audit.ToolError, match="topics: debug"):
        audit.lookup_secure_default(knowledge, state, "quantum firewall")
    assert state.kb_lookups == ["tls", "ports"]
    for entry in knowledge.values():  # every secure default the knowledge base gives passes the strict rules
        config = copy.deepcopy(GOOD)
        for key, value in entry["setting"].items():
            config[key] = {**config[key], **value} if isinstance(value, dict) and key in config else value
        assert ids(config, strict=True) == [], entry


def test_an_unwritable_out_path_is_refused_before_any_model_call(console, tmp_path):
    client = players(lambda n, request: json.dumps(GOOD))
    assert audit.main(["--out", str(tmp_path)], console=console, client=client) == mas.EXIT_USAGE
    assert client.requests == []  # nothing was paid for
    text = output(console)
    assert "error:" in text and "it is a folder" in text and ".tmp" not in text


def test_cli_exit_codes(console):
    assert audit.main(["--help"], console=console) == 0
    assert audit.main(["--max-loops", "0"], console=console) == mas.EXIT_USAGE
    assert audit.main(["--threshold", "extreme"], console=console) == mas.EXIT_USAGE
    assert audit.main([" "], console=console) == mas.EXIT_USAGE
    assert "the brief is empty" in output(console)
    interrupted = players(lambda n, request: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert audit.main([], console=console, client=interrupted) == mas.EXIT_INTERRUPTED
    assert not Path("secure_server.json").exists()
