"""The scripted players: what the offline demo model answers in the audit game.

They are a stand-in for a real model (the banner says so) that still reacts
to your code, so the exercise can be done offline:

* the Blue Team drafts a config with the classic mistakes, then fixes the
  findings it is sent. With a tool (your knowledge base) it looks each topic
  up and applies the ``setting`` it gets back; without one it fixes from
  memory, which knows the common fixes and nothing else. A finding from a
  rule you add is fixed only if your knowledge base has an answer for it.
* the Red Team's model notices one thing the starter's rules do not check
  (the server banner); everything else it reports comes from the rules, so a
  rule you add shows up offline at once.
* the CISO approves when no blocking finding is listed, and sends the config
  back otherwise, whatever its prompt says about a round limit: like many
  small models, it does not count.

Players are told apart by the agent header every request carries, not by
their prompts, so you can rewrite any prompt and still play offline.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import multi_agent_system as mas
from machinery.demo import Responder, ToolCallSpec
from machinery.gateway import request_role
from machinery.text import json_objects
from stages.stage3.activity.machinery import SEVERITIES, read_config, show_config

FIRST_DRAFT: dict[str, Any] = {
    "server_name": "shop.example.com",
    "debug": True,  # left on from local testing
    "listen_ports": [80, 443, 23],  # Telnet, "for quick admin access"
    "redirect_http_to_https": False,
    "tls": {"min_version": "1.2"},
    "headers": {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "SAMEORIGIN"},
    "admin": {"username": "admin", "password": "changeme"},
    "cors": {"allowed_origins": ["*"]},
    "server_tokens": True,
}
RECOMMENDED_HEADERS = {
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
SAFE_ADMIN = {"username": "shop-admin", "password_env": "SHOP_ADMIN_PASSWORD"}
_FINDING = re.compile(r"^- \[(\w+)\] (\S+) \(([^)]*)\)", re.M)  # the lines Finding.line() writes
_BLOCKING = re.compile(rf"^- \[({'|'.join(SEVERITIES[SEVERITIES.index('medium') :])})\]", re.M)  # medium and up


def findings_in(task: str) -> list[tuple[str, str, str]]:
    """(severity, id, field) for every finding listed in a task."""
    return _FINDING.findall(task)


def topic_of(field: str) -> str:
    """The knowledge-base topic to ask about for a finding's field: its first part, lower case."""
    return re.split(r"[.\[ ]", field.strip(), maxsplit=1)[0].lower() or field


def fix_from_memory(config: dict[str, Any], fid: str, where: str, attempt: int) -> None:
    """What the Blue Team knows without a knowledge base: the common fixes, and it forgets CSP once."""
    if fid == "debug-mode":
        config["debug"] = False
    elif fid.startswith("port-") and fid[5:].isdigit() and isinstance(config.get("listen_ports"), list):
        config["listen_ports"] = [p for p in config["listen_ports"] if p != int(fid[5:])]
    elif fid == "admin-default" or where.startswith("admin"):
        config["admin"] = dict(SAFE_ADMIN)
    elif fid.startswith("schema-unknown-") and "." not in where:
        config.pop(where, None)
    elif fid.startswith(("http-", "port-80")):
        config["redirect_http_to_https"] = True
    elif fid.startswith("cors"):
        config["cors"] = {"allowed_origins": ["https://shop.example.com"]}
    elif fid.startswith("tls"):
        config["tls"] = {"min_version": "1.3"}
    elif fid.startswith("header-"):
        name = next((h for h in RECOMMENDED_HEADERS if h.lower() == fid[7:]), None)
        if name and (name != "Content-Security-Policy" or attempt > 1):  # "it might break the checkout page"
            headers = config["headers"] if isinstance(config.get("headers"), dict) else {}
            config["headers"] = {**headers, name: RECOMMENDED_HEADERS[name]}
    elif fid == "red-server-tokens":
        config["server_tokens"] = False


def settings_in(tool_results: list[str]) -> list[dict[str, Any]]:
    """The ``setting`` objects a knowledge-base tool sent back (or the whole object, if it has none)."""
    found = []
    for text in tool_results:
        if text.startswith("error:"):
            continue
        for data in json_objects(text):
            setting = data.get("setting", data)
            if isinstance(setting, dict):
                found.append(setting)
    return found


def demo_responder() -> Responder:
    attempts = 0  # fixes from memory so far: the second time, it remembers CSP

    def blue(request: dict[str, Any]) -> str | list[ToolCallSpec]:
        nonlocal attempts
        messages = request["messages"]
        task = messages[1]["content"]
        config, _ = read_config(task)
        if config is None:
            return f"Here is a first draft.\n```json\n{show_config(FIRST_DRAFT)}\n```"
        listed = findings_in(task)
        results = [str(m.get("content") or "") for m in messages if m["role"] == "tool"]
        tools = request.get("tools") or []
        if tools and listed and not results:  # look every topic up first, as the prompt asks
            function = tools[0]["function"]
            params = list(function.get("parameters", {}).get("properties", {})) or ["topic"]
            topics = dict.fromkeys(topic_of(where) for _, _, where in listed)
            return [(function["name"], dict.fromkeys(params, topic)) for topic in topics]
        fixed = copy.deepcopy(config)
        for setting in settings_in(results):
            fixed.update(copy.deepcopy(setting))
        attempts += 1
        for _, fid, where in listed:
            if fixed == config or not results:  # the knowledge base had nothing: fix from memory
                fix_from_memory(fixed, fid, where, attempts)
            elif fid.startswith("schema-unknown-") and "." not in where:
                fixed.pop(where, None)  # an unknown key is dropped whatever the knowledge base says
        return show_config(fixed)

    def red(request: dict[str, Any]) -> str:
        config, _ = read_config(request["messages"][1]["content"])
        findings = []
        if config and config.get("server_tokens") is not False:
            findings.append(
                {
                    "severity": "low",
                    "field": "server_tokens",
                    "description": "The Server header names the software and its version, which tells an "
                    "attacker which exploits to try.",
                }
            )
        return json.dumps({"findings": findings})

    def ciso(request: dict[str, Any]) -> str:
        task = request["messages"][1]["content"]
        if task.startswith("Decision: "):  # the solution: code decided, the model explains
            verdict, reason = task.splitlines()[0][10:], task.splitlines()[1].removeprefix("Reason: ")
            ids = [fid for _, fid, _ in findings_in(task)]
            if verdict == "APPROVE":
                return "Approved. Nothing at or above the threshold is open, so this configuration may ship."
            if verdict == "SEND BACK":
                return f"Sent back: {len(ids)} finding(s) block approval. Start with {ids[0]}, the worst one."
            return f"Rejected: {reason}. This needs a human decision."
        if _BLOCKING.search(task):
            return json.dumps({"approved": False, "feedback": "Fix the findings above, worst first."})
        return json.dumps({"approved": True, "feedback": "Nothing blocking is left; it may ship."})

    players = {"blue_team": blue, "red_team": red, "ciso": ciso}

    def respond(request: dict[str, Any]) -> str | list[ToolCallSpec]:
        player = players.get(request_role(request) or "")
        if player is None:
            raise mas.AgentSystemError("the scripted demo model only plays the audit's three players")
        return player(request)

    return respond
