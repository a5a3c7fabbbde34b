"""The scripted players: what the offline demo model answers in the audit game.

They are a stand-in for a real model (the banner says so) that still reacts
to your code, so the exercise can be done offline:

* the Blue Team drafts a config with the classic mistakes, then fixes the
  findings it is sent. With a tool (your knowledge base) it looks each topic
  up and applies the ``setting`` it gets back; for a field the knowledge base
  did not answer, or without one, it fixes from memory. Memory reads what a
  finding says, never its id: the field it names (``tls.min_version``), set
  to the value its description recommends (``"set 1.2 or 1.3"``: the last
  one) or else to the safe value it knows for that field (``MEMORY``, the
  headers, the admin login, closing the ports a finding names). It forgets
  the Content-Security-Policy header the first time, as people do.
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
_FINDING = re.compile(r"^- \[(\w+)\] (\S+) \((.*?)\): (.*)$", re.M)  # the lines Finding.line() writes
_BLOCKING = re.compile(rf"^- \[({'|'.join(SEVERITIES[SEVERITIES.index('medium') :])})\]", re.M)  # medium and up
# What a description recommends: "set 1.3", "use 1.2 or 1.3", 'set it to "DENY"', "should be true".
_VALUE = r"""(?:"[^"]*"|'[^']*'|`[^`]*`|\btrue\b|\bfalse\b|\b\d+(?:\.\d+)*\b)"""
_RECOMMENDED = re.compile(
    rf"\b(?:set|use|to|be|least)\s+((?:it\s+to\s+)?{_VALUE}(?:\s*(?:,|or|and)\s*{_VALUE})*)", re.I
)
# What the Blue Team knows without a knowledge base: a safe value for each field of the config.
MEMORY: dict[str, Any] = {
    "debug": False,
    "redirect_http_to_https": True,
    "tls": {"min_version": "1.3"},
    "tls.min_version": "1.3",
    "server_tokens": False,
    "cors": {"allowed_origins": ["https://shop.example.com"]},
    "cors.allowed_origins": ["https://shop.example.com"],
}


def findings_in(task: str) -> list[tuple[str, str, str]]:
    """(severity, id, field) for every finding listed in a task."""
    return [(severity, fid, where) for severity, fid, where, _ in listed_findings(task)]


def listed_findings(task: str) -> list[tuple[str, str, str, str]]:
    """(severity, id, field, description) for every finding listed in a task."""
    return _FINDING.findall(task)


def topic_of(field: str) -> str:
    """The knowledge-base topic to ask about for a finding's field: its first part, lower case."""
    return re.split(r"[.\[ ]", field.strip(), maxsplit=1)[0].lower() or field


def recommended(description: str) -> str | None:
    """The value a finding's description tells you to set, as written: the last advice in it, and of the
    values that advice names, the last (the strongest, as people list them).

    >>> recommended("TLS older than 1.2: set 1.2 or 1.3"), recommended('framing: set it to "DENY"')
    ('1.3', '"DENY"')
    >>> recommended("TLS 1.0 to 1.1 is allowed: use 1.3"), recommended("Debug mode is on: errors show internals.")
    ('1.3', None)
    """
    advice = _RECOMMENDED.findall(description)
    return re.findall(_VALUE, advice[-1])[-1] if advice else None


def as_value(written: str, like: Any) -> Any:
    """A recommended value as the config holds it: a bool or a number where the field has one, else text.

    >>> as_value("true", None), as_value('"DENY"', "SAMEORIGIN"), as_value("1.3", "1.2"), as_value("8443", 443)
    (True, 'DENY', '1.3', 8443)
    """
    text = written.strip("\"'`")
    if text == written and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if isinstance(like, int) and not isinstance(like, bool) and text.isdigit():
        return int(text)
    return text


def fix_from_memory(config: dict[str, Any], finding: tuple[str, str, str, str], attempt: int) -> None:
    """Fix what a finding says, whatever its id: its field, set to the value its description recommends, or
    else to the safe value the Blue Team remembers for that field. It forgets CSP the first time."""
    _, fid, where, description = finding
    path = [part for part in where.strip().split(".") if part]
    if not path:
        return
    root = path[0].lower()
    if "not a known key" in description:  # the schema's words: a key outside ServerConfig goes
        _drop(config, path)
    elif root == "listen_ports":
        _fix_ports(config, f"{fid} {description}")
    elif root == "admin":
        config["admin"] = dict(SAFE_ADMIN)
    elif root == "headers":
        _fix_headers(config, path[1] if len(path) > 1 else None, description, attempt)
    else:
        _set_recommended(config, path, description)


def _set_recommended(config: dict[str, Any], path: list[str], description: str) -> None:
    key = ".".join(path).lower()
    remembered, current = MEMORY.get(key), _get(config, path)
    written = recommended(description)
    value = remembered
    if written is not None:
        if isinstance(remembered, dict) and len(remembered) == 1:  # "tls": set its one field
            inner = next(iter(remembered))
            path, remembered = [*path, inner], remembered[inner]
        said = as_value(written, current if current is not None else remembered)
        value = said if remembered is None or type(said) is type(remembered) else remembered
    if value is not None:
        _put(config, path, copy.deepcopy(value))


def _fix_ports(config: dict[str, Any], said: str) -> None:
    """Close the ports a finding names; open 443 if it is named and closed."""
    ports = config["listen_ports"] if isinstance(config.get("listen_ports"), list) else [443]
    named = {int(n) for n in re.findall(r"\b\d{1,5}\b", said)}
    kept = [p for p in ports if p not in named or p == 443]
    config["listen_ports"] = kept if 443 in kept or 443 not in named else [*kept, 443]


def _fix_headers(config: dict[str, Any], name: str | None, description: str, attempt: int) -> None:
    """One header (by name) or every recommended one that is missing; a quoted value in the description wins."""
    headers = dict(config["headers"]) if isinstance(config.get("headers"), dict) else {}
    written = recommended(description)
    if name is not None and written is not None and written[0] in "\"'`":
        headers[name] = written.strip("\"'`")
    else:
        wanted = [h for h in RECOMMENDED_HEADERS if h.lower() == name.lower()] if name else list(RECOMMENDED_HEADERS)
        for header in wanted:
            forgotten = header == "Content-Security-Policy" and attempt == 1  # "it might break the checkout page"
            if not forgotten and (name is not None or header not in headers):
                headers[header] = RECOMMENDED_HEADERS[header]
    config["headers"] = headers


def _get(config: dict[str, Any], path: list[str]) -> Any:
    value: Any = config
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _put(config: dict[str, Any], path: list[str], value: Any) -> None:
    where = config
    for part in path[:-1]:
        if not isinstance(where.get(part), dict):
            where[part] = {}
        where = where[part]
    where[path[-1]] = value


def _drop(config: dict[str, Any], path: list[str]) -> None:
    where = _get(config, path[:-1]) if len(path) > 1 else config
    if isinstance(where, dict):
        where.pop(path[-1], None)


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
        listed = listed_findings(task)
        results = [str(m.get("content") or "") for m in messages if m["role"] == "tool"]
        tools = request.get("tools") or []
        if tools and listed and not results:  # look every topic up first, as the prompt asks
            function = tools[0]["function"]
            params = list(function.get("parameters", {}).get("properties", {})) or ["topic"]
            topics = dict.fromkeys(topic_of(where) for _, _, where, _ in listed)
            return [(function["name"], dict.fromkeys(params, topic)) for topic in topics]
        fixed, looked_up = copy.deepcopy(config), set()
        for setting in settings_in(results):
            fixed.update(copy.deepcopy(setting))
            looked_up |= set(setting)
        attempts += 1
        for finding in listed:
            answered = topic_of(finding[2]) in looked_up and "not a known key" not in finding[3]
            if not answered:  # the knowledge base had nothing on this field: fix it from memory
                fix_from_memory(fixed, finding, attempts)
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
