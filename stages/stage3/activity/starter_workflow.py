"""Red Team vs Blue Team: a security audit game, judged by a CISO.

The idea
--------
The planner/worker/critic loop of ``multi_agent_system.py``, played as a game.
The Blue Team (the worker) writes a web server's configuration as JSON. The
Red Team (the critic) attacks it and reports findings. The CISO (the judge)
sends the configuration back while any finding is at or above the severity
threshold, and approves it when none is. The approved configuration is saved
to ``secure_server.json``.

Three things are decided by code, not by a model, because a model can be
talked into anything:

* The Red Team's checks for the classic mistakes (debug mode, Telnet/FTP,
  HTTP without a redirect, old TLS, missing security headers, default
  credentials, wildcard CORS) are rules in ``check_config``. They fail
  closed: a field they own in a shape they cannot read is a finding too.
  Its model is shown the configuration and looks for anything else.
* The CISO's decision is ``ciso_decision``; its model only explains it.
* The limits: at most ``--max-loops`` rounds, and a change budget where
  every field the Blue Team changes costs one point (``--max-cost``).

The flow
--------
::

    round 1:  Blue drafts ──> Red: rules + model ──> CISO: decides (code), explains (model)
                                                         │
                                                         ├─ approve ──> secure_server.json, exit 0
                                                         ├─ reject (out of rounds, or over the
                                                         │  change budget) ──> nothing saved, exit 1
    round n:  Blue fixes the open findings <── send back ┘
              (may call lookup_secure_default first)

``AuditState`` is the run context. It keeps the configuration, the open and
the resolved findings (nothing is lost between rounds), the round and the
change cost; the knowledge-base tool receives it too.

Run it
------
::

    python -m stages.stage3.activity.starter_workflow                  # no key: scripted demo model
    python -m stages.stage3.activity.starter_workflow --no-kb          # without the knowledge base: more rounds
    python -m stages.stage3.activity.starter_workflow --strict -v      # pickier rules, every prompt shown
    OPENAI_BASE_URL=http://localhost:11434/v1 OPENAI_MODEL=llama3.2 python -m stages.stage3.activity.starter_workflow

Exit codes: 0 approved, 1 stopped without approval, 2 usage or configuration
error, 130 interrupted.

Left out on purpose
-------------------
Checking a real server (everything here is on paper), rules for more than
one kind of server, and letting the Blue Team argue with a finding.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

import multi_agent_system as mas
from stages.stage3 import cli
from stages.stage3.handoffs import STOP_REASONS as HANDOFF_STOP_REASONS
from stages.stage3.handoffs import Agent, RunRecord, Tool, ToolError, run_agent

# ---------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------

SEVERITIES = ("low", "medium", "high", "critical")  # rising; the threshold is one of them
DEFAULT_THRESHOLD: Severity = "medium"  # low findings are reported and fixed, but do not block approval
MAX_LOOPS = 5  # rounds before the CISO calls it off: two sides that cannot agree in 5 will not in 50
MAX_FIX_COST = 30  # change points: about two full rewrites of a typical config
BLUE_MAX_TURNS = 4  # Blue's model calls per round: a few lookups, then the config
MAX_MODEL_FINDINGS = 5  # per round from the Red Team's model; the rest is noise
CONFIG_MAX_CHARS = 4_000  # a config as shown to a model; the sample one is under 1,000
OUT_FILE = Path("secure_server.json")
KB_FILE = Path(__file__).with_name("secure_defaults.json")
DEFAULT_BRIEF = "A public HTTPS web server for the online shop at shop.example.com, with an admin login."

# What the rules know. Each value is the textbook one; see secure_defaults.json for the reasons.
PLAINTEXT_PORTS = {21: "FTP", 23: "Telnet"}  # 80 is allowed, but only to redirect to HTTPS
HSTS_MIN_AGE = 31_536_000  # one year, in seconds: the minimum for browsers' HSTS preload lists
RECOMMENDED_HEADERS = {
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
REQUIRED_HEADERS = ("Strict-Transport-Security", "Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options")
STRICT_HEADERS = (*REQUIRED_HEADERS, "Referrer-Policy", "Permissions-Policy")
SAFE_REFERRER_POLICIES = {"no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"}
DEFAULT_USERNAMES = {"admin", "root", "administrator", "user", "test", "guest"}
WEAK_PASSWORDS = {"", "admin", "password", "changeme", "123456", "root", "default", "secret", "letmein", "test"}
# Fields the rules own. The Red Team's model may not add findings about them, in either direction:
# it cannot talk a failing field into passing, nor a passing one into failing.
RULE_FIELDS = {"debug", "listen_ports", "ports", "redirect_http_to_https", "tls", "headers", "admin", "cors"}

STOP_REASONS = {
    **HANDOFF_STOP_REASONS,
    "approved": "the CISO approved the configuration",
    "max_loops": "the round limit was reached with blocking findings still open",
    "cost_ceiling": "the fixes cost more change points than the budget allows",
}


# ---------------------------------------------------------------------------
# Types: a finding, the run context, the game's options, the CISO's decision
# ---------------------------------------------------------------------------

Severity = Literal["low", "medium", "high", "critical"]


@dataclass
class Finding:
    id: str  # stable across rounds, so a fix can be seen to resolve it
    severity: Severity
    field: str
    description: str
    fix: str
    source: str = "rule"  # "rule" (code), "model" (the Red Team's model) or "format" (an unreadable reply)
    found_in: int = 0  # the round it was first reported
    resolved_in: int | None = None


@dataclass
class AuditState:
    """The run context: everything the game knows. Tools receive it; models see only what prompts show."""

    brief: str
    strict: bool = False
    config: dict[str, Any] | None = None
    open_findings: list[Finding] = field(default_factory=list)
    resolved: list[Finding] = field(default_factory=list)
    iteration: int = 0
    cost: int = 0  # change points spent on fixes so far
    kb_lookups: list[str] = field(default_factory=list)
    rationale: str = ""  # the CISO's latest explanation
    status: Literal["running", "approved", "stopped"] = "running"
    stop_reason: str | None = None
    stop_detail: str | None = None


@dataclass(frozen=True)
class AuditOptions:
    strict: bool = False
    threshold: Severity = DEFAULT_THRESHOLD
    max_loops: int = MAX_LOOPS
    max_cost: int = MAX_FIX_COST
    knowledge_base: bool = True


@dataclass(frozen=True)
class Decision:
    verdict: Literal["approve", "send back", "reject"]
    stop_reason: str | None  # None while the game goes on
    detail: str
    blocking: list[Finding]


def at_or_above(severity: str, threshold: str) -> bool:
    return SEVERITIES.index(severity) >= SEVERITIES.index(threshold)


# ---------------------------------------------------------------------------
# The Red Team's rules: deterministic, so no model can argue with them
# ---------------------------------------------------------------------------


# Every rule FAILS CLOSED: a field the rules own, written in a shape they cannot read with
# certainty, is a finding in itself. Otherwise a config could pass by writing "443, 23" instead
# of [443, 23], and the Red Team's model, which may not report on these fields, would stay silent.

ON_WORDS = {"true", "on", "yes", "1", "enabled", "enable"}
OFF_WORDS = {"false", "off", "no", "0", "disabled", "disable", "none", "null", ""}
SWITCH_KEYS = ("enabled", "enable", "on", "value", "active")  # {"debug": {"enabled": true}} and friends
SERVICE_PORTS = {"telnet": 23, "ftp": 21}  # a service named instead of numbered


def _shape(value: Any) -> str:
    """What a JSON value is, for a finding's description."""
    if value is None:
        return "null"
    return {
        bool: "true or false",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def _words(key: Any) -> set[str]:
    """The words in a key: listenPorts, listen_ports and "Listen Ports" all give {"listen", "ports"}.

    >>> sorted(_words("allowOrigins")), sorted(_words("ssl_protocols")), sorted(_words("support"))
    (['allow', 'origins'], ['protocols', 'ssl'], ['support'])
    """
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(key))
    return {word for word in re.split(r"[^a-z0-9]+", spaced.lower()) if word}


def _switch(value: Any) -> bool | None:
    """Whether a config value means on (True) or off (False); None if it cannot be read with certainty.

    >>> [_switch(v) for v in (True, "on", 1, {"enabled": True}, "false", 0, None, {"Enabled": "no"})]
    [True, True, True, True, False, False, False, False]
    >>> [_switch(v) for v in ("verbose", [True], {"level": 3})]
    [None, None, None]
    """
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        word = value.strip().lower()
        return True if word in ON_WORDS else False if word in OFF_WORDS else None
    if isinstance(value, dict):
        states = [_switch(inner) for key, inner in value.items() if str(key).strip().lower() in SWITCH_KEYS]
        if not states or None in states:
            return None
        return any(states)
    return None


def _on(value: Any) -> bool:
    """Whether a config value means "on". Only a readable "off" is off: an unreadable value counts as on.

    >>> [_on(v) for v in (True, "on", 1, "false", 0, None, "maybe")]
    [True, True, True, False, False, False, True]
    """
    return _switch(value) is not False


def _port_numbers(value: Any) -> set[int]:
    """Every number in a value that could be a port, wherever it is, and the ports of services named in it.

    >>> sorted(_port_numbers(["443/tcp", {"port": 23}, "80, 8080", {"ftp": True}, "10.0.0.21:8443"]))
    [21, 23, 80, 443, 8080, 8443]
    """
    if isinstance(value, bool) or value is None:
        return set()
    if isinstance(value, float) and not value.is_integer():  # 23.5, and also inf and nan
        return set()
    if isinstance(value, (int, float)):
        return {int(value)} if 0 <= value <= 65535 else set()
    if isinstance(value, dict):
        found: set[int] = set()
        for key, inner in value.items():  # {"https": 443, "telnet": 23}, {"port": 23}, {"23": "telnet"}
            found |= _digits(str(key)) | _port_numbers(inner)
            if _on(inner):
                found |= {SERVICE_PORTS[word] for word in _words(key) & SERVICE_PORTS.keys()}
        return found
    if isinstance(value, list):
        return set().union(*(_port_numbers(item) for item in value))
    text = str(value)
    return _digits(text) | {port for name, port in SERVICE_PORTS.items() if name in _words(text)}


def _digits(text: str) -> set[int]:
    text = re.sub(r"\b\d{1,3}(\.\d{1,3}){3}\b", " ", text)  # an IP address is not four ports
    return {int(digits) for digits in re.findall(r"\d+", text) if int(digits) <= 65535}


def _port_list_problem(value: Any) -> str | None:
    """Why a listen_ports value is not a plain list of port numbers, or None if it is one.

    >>> _port_list_problem([80, "443", "8443/tcp"]) is None, _port_list_problem("443, 23")
    (True, 'got a string')
    """
    if not isinstance(value, list):
        return f"got {_shape(value)}"
    for item in value:
        if isinstance(item, int) and not isinstance(item, bool) and 0 < item <= 65535:
            continue
        if (
            isinstance(item, str)
            and re.fullmatch(r"\s*\d{1,5}\s*(/\s*(tcp|udp))?\s*", item, re.I)
            and 0 < int(item.strip().split("/")[0]) <= 65535
        ):
            continue
        return f"one item is {json.dumps(item)[:40]}"
    return None


def tls_version(value: Any) -> tuple[int, int] | None:
    """The lowest TLS version in a value as (major, minor); SSL counts as older than any TLS; None if unreadable.

    >>> tls_version("TLSv1.2"), tls_version(1.3), tls_version("TLS1_1"), tls_version("SSLv3"), tls_version("new")
    ((1, 2), (1, 3), (1, 1), (0, 0), None)
    >>> tls_version("TLSv1 TLSv1.2"), tls_version("1.0-1.3")
    ((1, 0), (1, 0))
    """
    text = str(value).lower()
    if "ssl" in text:
        return (0, 0)
    found = [(int(major), int(minor)) for major, minor in re.findall(r"(\d)\s*[._]\s*(\d)", text)]
    found += [(int(major), 0) for major in re.findall(r"tls\s*v?\s*(\d)(?![\d._])", text)]  # "TLSv1" is 1.0
    return min(found) if found else None


def _strings(value: Any) -> list[Any]:
    """The scalar values in a value, however deeply nested."""
    if isinstance(value, dict):
        return [leaf for inner in value.values() for leaf in _strings(inner)]
    if isinstance(value, list):
        return [leaf for inner in value for leaf in _strings(inner)]
    return [value]


def check_debug(config: dict[str, Any], strict: bool) -> list[Finding]:
    value = config.get("debug")
    state = _switch(value)
    if state is None:
        return [
            Finding(
                "debug-format",
                "high",
                "debug",
                f"debug must be true or false; got {_shape(value)} ({json.dumps(value)[:60]}), which could mean on.",
                'Set "debug": false.',
            )
        ]
    if not state:
        return []
    return [
        Finding(
            "debug-mode",
            "high",
            "debug",
            "Debug mode is on: any error shows stack traces and settings to whoever caused it.",
            'Set "debug": false.',
        )
    ]


def check_ports(config: dict[str, Any], strict: bool) -> list[Finding]:
    found = []
    ports: set[int] = set()
    for key, value in config.items():
        words = _words(key)
        if key in ("listen_ports", "ports"):
            problem = _port_list_problem(value)
            if problem:
                found.append(
                    Finding(
                        "ports-format",
                        "high",
                        key,
                        f"{key} must be a list of port numbers; {problem}, so the open ports cannot be checked.",
                        f'Write "{key}" as a list of numbers, e.g. [80, 443].',
                    )
                )
        if words & {"port", "ports", "listen"}:  # listen_ports, ports, http_port, listen, ...
            ports |= _port_numbers(value)
        for service in words & SERVICE_PORTS.keys():  # "telnet": true, "ftp": {"enabled": true}
            if _on(value):
                ports.add(SERVICE_PORTS[service])
    found += [
        Finding(
            f"port-{port}",
            "critical",
            "listen_ports",
            f"Port {port} ({name}) is open: it carries passwords and data in clear text.",
            f"Remove {port} from listen_ports; administer the server over SSH instead.",
        )
        for port, name in sorted(PLAINTEXT_PORTS.items())
        if port in ports
    ]
    if 80 in ports and _switch(config.get("redirect_http_to_https")) is not True:
        found.append(
            Finding(
                "port-80",
                "high",
                "redirect_http_to_https",
                "Port 80 serves plain HTTP instead of redirecting to HTTPS.",
                'Set "redirect_http_to_https": true, or stop listening on 80.',
            )
        )
    return found


TLS_VERSION_WORDS = {"version", "versions", "protocol", "protocols", "min"}


def check_tls(config: dict[str, Any], strict: bool) -> list[Finding]:
    tls = config.get("tls")
    fix = f'Set "tls": {{"min_version": "{"1.3" if strict else "1.2"}"}} or higher.'

    def finding(severity: Severity, description: str) -> list[Finding]:
        return [Finding("tls-version", severity, "tls.min_version", description, fix)]

    if not isinstance(tls, dict):
        return finding(
            "high",
            "No readable minimum TLS version, so broken old versions may be accepted"
            + ("." if tls is None else f': tls must be an object like {{"min_version": "1.2"}}; got {_shape(tls)}.'),
        )
    if any(str(key).strip().lower() in SWITCH_KEYS and _switch(value) is not True for key, value in tls.items()):
        return finding("high", "TLS is switched off, or its switch cannot be read.")
    # Every version the config mentions counts, not only min_version: the weakest one is what is allowed.
    given = [
        value
        for key, value in tls.items()
        if key == "min_version" or (_words(key) & TLS_VERSION_WORDS and "alpn" not in _words(key))
    ]
    given += [
        value
        for key, value in config.items()
        if key != "tls" and _words(key) & {"tls", "ssl"} and _words(key) & TLS_VERSION_WORDS
    ]
    versions = []
    for value in (leaf for item in given for leaf in _strings(item)):
        version = tls_version(value) if value is not None else None
        if version is None:
            return finding(
                "high",
                f"The TLS version {json.dumps(value)[:40]} cannot be read, so broken old versions may be accepted.",
            )
        versions.append((version, value))
    if not versions:
        return finding("high", "No readable minimum TLS version, so broken old versions may be accepted.")
    version, lowest = min(versions, key=lambda pair: pair[0])
    if version < (1, 2):
        return finding("high", f"TLS {lowest} is allowed; every version below 1.2 is deprecated and attackable.")
    if strict and version < (1, 3):
        return finding("medium", f"Strict policy: TLS 1.3 only, but {lowest} is allowed.")
    return []


def weak_header(name: str, value: str) -> str | None:
    """Why a security header's value is too weak for the strict policy, or None if it is sane.

    >>> weak_header("Strict-Transport-Security", "max-age=300")
    'max-age is under a year and subdomains are not covered'
    >>> weak_header("Content-Security-Policy", "default-src 'self'") is None
    True
    """
    lowered = value.lower()
    if name == "Strict-Transport-Security":
        age = re.search(r"max-age\s*=\s*(\d+)", lowered)
        problems = []
        if not age or int(age.group(1)) < HSTS_MIN_AGE:
            problems.append("max-age is under a year")
        if "includesubdomains" not in lowered:
            problems.append("subdomains are not covered")
        return " and ".join(problems) or None
    if name == "Content-Security-Policy":
        if "default-src" not in lowered:
            return "there is no default-src"
        if "unsafe-inline" in lowered or "unsafe-eval" in lowered or re.search(r"(^|\s)\*(\s|;|$)", lowered):
            return "it allows inline code, eval or any origin"
        return None
    if name == "X-Content-Type-Options":
        return None if lowered == "nosniff" else "the only useful value is nosniff"
    if name == "X-Frame-Options":
        return None if lowered in ("deny", "sameorigin") else "use DENY or SAMEORIGIN"
    if name == "Referrer-Policy":
        return None if lowered in SAFE_REFERRER_POLICIES else "it sends full URLs to other sites"
    return None  # Permissions-Policy: any deliberate value beats none


def check_headers(config: dict[str, Any], strict: bool) -> list[Finding]:
    given = config.get("headers")
    found = []
    if given is not None and not isinstance(given, dict):
        found.append(
            Finding(
                "headers-format",
                "high",
                "headers",
                f"headers must be an object of header name -> value; got {_shape(given)}, "
                "so no security header can be read.",
                'Write headers as an object, e.g. {"X-Frame-Options": "DENY"}.',
            )
        )
    values: dict[str, list[Any]] = {}  # every spelling of a name counts: "x-frame-options" and "X-Frame-Options "
    for key, value in given.items() if isinstance(given, dict) else ():
        values.setdefault(str(key).strip().lower(), []).append(value)
    for name in STRICT_HEADERS if strict else REQUIRED_HEADERS:
        given_values, fix = values.get(name.lower(), []), f'Add "{name}": "{RECOMMENDED_HEADERS[name]}" to headers.'
        problem = None
        if not given_values or any(isinstance(v, str) and not v.strip() for v in given_values):
            problem = "it is missing"
        elif any(not isinstance(v, str) for v in given_values):
            problem = "its value is not text"
        elif strict:
            problem = next((weak for v in given_values if (weak := weak_header(name, v.strip()))), None)
        if problem:
            found.append(
                Finding(
                    f"header-{name.lower()}",
                    "medium",
                    f"headers.{name}",
                    f"The {name} header is not good enough: {problem}.",
                    fix,
                )
            )
    return found


USERNAME_KEYS = {"username", "user", "user_name", "login", "name"}
SECRET_REFERENCE_KEYS = ("password_env", "password_file", "password_hash")


def check_credentials(config: dict[str, Any], strict: bool) -> list[Finding]:
    admin = config.get("admin")
    if admin is None:
        return []  # no admin login configured
    problems = []
    if not isinstance(admin, dict):
        problems.append(f'admin must be an object like {{"username": ..., "password_env": ...}}; got {_shape(admin)}')
        admin = {}
    names = {str(key).strip().lower(): value for key, value in admin.items()}
    usernames = [value for key, value in names.items() if key in USERNAME_KEYS]
    if isinstance(config.get("admin"), dict) and not any(isinstance(u, str) and u.strip() for u in usernames):
        problems.append("there is no username")
    for username in usernames:
        if not isinstance(username, str):
            problems.append(f"the username is {_shape(username)}, not text")
        elif username.strip().lower() in DEFAULT_USERNAMES:
            problems.append(f"the username {username.strip().lower()!r} is a default that attackers try first")
    # Any other key that holds a password literally (password, pass, pwd, secret...) is read too.
    literal = [
        value for key, value in names.items() if key not in SECRET_REFERENCE_KEYS and re.search(r"pass|pwd|secret", key)
    ]
    references = [names[key] for key in SECRET_REFERENCE_KEYS if key in names]
    if any(not isinstance(ref, str) or not ref.strip() for ref in references):
        problems.append("a password_env, password_file or password_hash is empty or not text")
    lowered = {str(u).strip().lower() for u in usernames}
    if any(
        not isinstance(p, str) or p.strip().lower() in WEAK_PASSWORDS or p.strip().lower() in lowered for p in literal
    ):
        problems.append("the password is empty or well known")
    elif not literal and not references and isinstance(config.get("admin"), dict):
        problems.append("no password is set at all")
    if not problems:
        return []
    return [
        Finding(
            "credentials",
            "critical",
            "admin",
            "Default or empty credentials: " + "; ".join(problems) + ".",
            'Use a non-default username and "password_env": the name of a variable holding the password.',
        )
    ]


ANY_ORIGIN = "https://attacker.example"  # an origin no config should let in


def _origin_problems(key: str, value: Any) -> tuple[bool, list[str]]:
    """(allows any origin, unreadable values) for the value of a key whose name contains "origin"."""
    if value is None or value is False:
        return False, []
    if value is True:  # "allow_all_origins": true, or "origin": true (reflect any origin)
        return True, []
    if isinstance(value, list):
        results = [_origin_problems(key, item) for item in value]
        return any(wild for wild, _ in results), [problem for _, problems in results for problem in problems]
    if isinstance(value, dict):
        return _cors_problems(value)
    if not isinstance(value, str):
        return False, [f"{key} holds {_shape(value)}"]
    origin = value.strip()
    if origin == "*":
        return True, []
    if "regex" in key.lower():  # FastAPI's allow_origin_regex: does it let an attacker's site in?
        if len(origin) > 200:
            return False, [f"{key} is too long to check"]
        try:
            return re.fullmatch(origin, ANY_ORIGIN) is not None, []
        except re.error:
            return False, [f"{key} is not a valid regular expression"]
    return False, []


def _cors_problems(cors: Any) -> tuple[bool, list[str]]:
    """(allows any origin, unreadable values) for a cors setting, read at any depth."""
    if cors is None or cors is False:
        return False, []
    if cors is True or isinstance(cors, (str, list)):  # "cors": "*", "cors": [...], "cors": true (allow all)
        return _origin_problems("cors", cors)
    if not isinstance(cors, dict):
        return False, [f"cors holds {_shape(cors)}"]
    wildcard, problems = False, list[str]()
    for key, value in cors.items():
        if "origin" in str(key).lower():
            wild, unreadable = _origin_problems(str(key), value)
        elif isinstance(value, dict):
            wild, unreadable = _cors_problems(value)
        else:
            continue
        wildcard, problems = wildcard or wild, problems + unreadable
    return wildcard, problems


def check_cors(config: dict[str, Any], strict: bool) -> list[Finding]:
    wildcard, problems = False, list[str]()
    for key, value in config.items():  # cors, cors_settings, allowed_origins at the top level...
        lowered = str(key).lower()
        if "cors" in lowered:
            wild, unreadable = _cors_problems(value)
        elif "origin" in lowered:
            wild, unreadable = _origin_problems(str(key), value)
        else:
            continue
        wildcard, problems = wildcard or wild, problems + unreadable
    headers = config.get("headers")
    for name, value in headers.items() if isinstance(headers, dict) else ():
        if str(name).strip().lower() == "access-control-allow-origin":
            wild, unreadable = _origin_problems("headers.Access-Control-Allow-Origin", value)
            wildcard, problems = wildcard or wild, problems + unreadable
    found = []
    if wildcard:
        found.append(
            Finding(
                "cors-wildcard",
                "high",
                "cors.allowed_origins",
                "CORS allows any origin (*): any website can call this server from a visitor's browser.",
                "List the exact origins that need access, e.g. the shop's own https:// address.",
            )
        )
    if problems:
        found.append(
            Finding(
                "cors-format",
                "high",
                "cors.allowed_origins",
                f"The allowed CORS origins cannot be read ({'; '.join(problems)}), so a wildcard cannot be ruled out.",
                'Write "cors": {"allowed_origins": [...]} as a list of exact https:// origins.',
            )
        )
    return found


RULES = (check_debug, check_ports, check_tls, check_headers, check_credentials, check_cors)


def check_config(config: dict[str, Any], strict: bool = False) -> list[Finding]:
    """Every rule's findings for one configuration. Never raises, whatever JSON it is given."""
    return [finding for rule in RULES for finding in rule(config, strict)]


# ---------------------------------------------------------------------------
# Reading model replies: tolerant of form, strict about content
# ---------------------------------------------------------------------------


def read_config(text: str) -> tuple[dict[str, Any] | None, str]:
    """The configuration in the Blue Team's reply, or None and the reason it could not be read.

    Fences, prose around the JSON and a {"config": {...}} wrapper are all accepted.

    >>> read_config('Here it is:\\n```json\\n{"debug": false}\\n```\\nDone.')
    ({'debug': False}, '')
    >>> read_config('{"config": {"debug": false}}')[0]
    {'debug': False}
    >>> read_config("I would turn debug off.")
    (None, 'the reply contains no JSON object')
    """
    if not text.strip():
        return None, "the reply was empty"
    objects = mas.json_objects(text)
    if not objects:
        return None, "the reply contains no JSON object"
    config = max(objects, key=lambda obj: len(json.dumps(obj)))  # the config, not an example inside prose
    if len(config) == 1 and isinstance(next(iter(config.values())), dict):
        config = next(iter(config.values()))  # {"config": {...}} or {"server": {...}}
    return config, ""


def _field_root(path: str) -> str:
    return re.split(r"[.\[/\s]", path.strip().lower(), maxsplit=1)[0]


def read_model_findings(text: str, iteration: int) -> tuple[list[Finding], list[str]]:
    """Findings from the Red Team's model, and notes on what was dropped and why.

    Accepts {"findings": [...]}, a bare list of finding objects, fences and prose.
    A finding about a field the rules own is dropped: the rules decide those.
    """
    objects = mas.json_objects(text)
    listed = next((obj["findings"] for obj in objects if isinstance(obj.get("findings"), list)), None)
    items = listed if listed is not None else [obj for obj in objects if "description" in obj]
    findings: dict[str, Finding] = {}
    dropped = []
    for item in items:
        if not isinstance(item, dict) or not str(item.get("description", "")).strip():
            continue
        place = str(item.get("field") or "(unspecified)").strip()
        if _field_root(place) in RULE_FIELDS:
            dropped.append(f"{place}: the rules decide this field")
            continue
        severity = str(item.get("severity", "")).strip().lower()
        finding_id = "red-" + (re.sub(r"[^a-z0-9]+", "-", place.lower()).strip("-") or "general")
        findings.setdefault(
            finding_id,
            Finding(
                finding_id,
                cast(Severity, severity if severity in SEVERITIES else "medium"),
                place,
                mas.clip(str(item["description"]).strip(), 300),
                mas.clip(str(item.get("fix") or item.get("suggested_fix") or "").strip(), 300),
                source="model",
                found_in=iteration,
            ),
        )
    if len(findings) > MAX_MODEL_FINDINGS:
        dropped.append(f"{len(findings) - MAX_MODEL_FINDINGS} finding(s) over the limit of {MAX_MODEL_FINDINGS}")
    return list(findings.values())[:MAX_MODEL_FINDINGS], dropped


def count_changes(old: Any, new: Any) -> int:
    """How many leaf fields differ between two configs: added, removed or changed. Lists count as one.

    >>> count_changes({"debug": True, "tls": {"min_version": "1.0"}}, {"debug": False, "tls": {"min_version": "1.0"}, "x": 1})
    2
    """
    before, after, missing = _leaves(old), _leaves(new), object()
    return sum(before.get(key, missing) != after.get(key, missing) for key in before.keys() | after.keys())


def _leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        found: dict[str, Any] = {}
        for key, inner in value.items():
            found.update(_leaves(inner, f"{prefix}.{key}" if prefix else str(key)))
        return found
    return {prefix: value}


# ---------------------------------------------------------------------------
# The knowledge base: the Blue Team's one tool
# ---------------------------------------------------------------------------


def load_knowledge_base(path: Path = KB_FILE) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def lookup_secure_default(knowledge: dict[str, Any], state: AuditState, topic: str) -> str:
    """The secure setting for a topic, as JSON, with the reason; a ToolError lists the topics there are."""
    wanted = topic.strip().lower()
    names = {key: [key, *entry.get("aliases", [])] for key, entry in knowledge.items()}
    match = next((key for key, words in names.items() if wanted in words), None) or next(
        (key for key, words in names.items() if wanted and any(w in wanted or wanted in w for w in words)), None
    )
    if match is None:
        raise ToolError(f"nothing on {topic!r}; topics: {', '.join(knowledge)}")
    state.kb_lookups.append(match)
    entry = knowledge[match]
    return json.dumps({"topic": match, "setting": entry["setting"], "why": entry["why"]}, ensure_ascii=False)


def knowledge_base_tool(knowledge: dict[str, Any]) -> Tool:
    return Tool(
        "lookup_secure_default",
        f"Look up the secure default value for one topic. Topics: {', '.join(knowledge)}.",
        lambda state, topic: lookup_secure_default(knowledge, state, topic),
        {"topic": "one topic, e.g. tls or headers"},
    )


# ---------------------------------------------------------------------------
# The players, each with its prompt right above it
# ---------------------------------------------------------------------------

BLUE_PROMPT = """You are the Blue Team: you write and fix the configuration of a web server.
Reply with the complete configuration as one JSON object and nothing else. Use these keys:
server_name (string), debug (true or false), listen_ports (list of numbers), redirect_http_to_https (true or false),
tls ({"min_version": "1.x"}), headers (header name -> value), admin ({"username": ..., "password_env": the name of the
environment variable that holds the password}), cors ({"allowed_origins": [...]}), server_tokens (true or false).
When findings are listed, fix every one of them and keep every earlier fix."""


def _finding_lines(findings: list[Finding]) -> str:
    return "\n".join(f"- [{f.severity}] {f.id} ({f.field}): {f.description} Fix: {f.fix}" for f in findings)


def _config_json(config: dict[str, Any] | None) -> str:
    return mas.clip(json.dumps(config, indent=2, ensure_ascii=False), CONFIG_MAX_CHARS)


def blue_team(state: AuditState, llm: mas.LLM, knowledge: dict[str, Any] | None) -> Finding | None:
    """Draft (round 1) or fix the config. Writes: config, cost. Returns a finding if the reply was unreadable."""
    if state.config is None:
        parts = [f"Draft the configuration for: {state.brief}"]
    else:
        parts = [f"Fix this configuration for: {state.brief}", f"```json\n{_config_json(state.config)}\n```"]
    if state.open_findings:  # including "your last reply was unusable", even before there is a config
        parts.append(f"Open findings:\n{_finding_lines(state.open_findings)}")
    if state.resolved:
        parts.append("Already fixed; keep them fixed: " + ", ".join(f.id for f in state.resolved))
    if knowledge:
        parts.append("Look up secure values with the lookup_secure_default tool before you write the JSON.")
    agent = Agent("blue_team", BLUE_PROMPT, tools=[knowledge_base_tool(knowledge)] if knowledge else [], style="blue")
    looked_up = len(state.kb_lookups)
    reply = run_agent(agent, "\n\n".join(parts), state, llm, RunRecord(BLUE_MAX_TURNS))
    if len(state.kb_lookups) > looked_up and llm.display.chatty:
        llm.display.console.print(Text(f"Blue Team looked up: {', '.join(state.kb_lookups[looked_up:])}", style="blue"))
    config, problem = read_config(reply)
    if config is None:
        llm.display.warn(f"the Blue Team's reply is not a configuration: {problem}")
        return Finding(
            "blue-format",
            "critical",
            "(whole reply)",
            f"The Blue Team's reply was unusable: {problem}.",
            "Reply with the complete configuration as one JSON object and nothing else.",
            source="format",
            found_in=state.iteration,
        )
    if state.config is not None:
        state.cost += count_changes(state.config, config)
    state.config = config
    return None


RED_PROMPT = """You are the Red Team: you attack web server configurations on paper.
An automatic scanner already checks debug, listen_ports, redirect_http_to_https, tls, headers, admin and cors;
do not report on those. Look at the configuration you are shown for any other weakness.
Reply with JSON only: {"findings": [{"severity": "low, medium, high or critical", "field": "...",
"description": "...", "fix": "..."}]}. Report only problems you can point to in the configuration.
If there are none, reply {"findings": []}."""


def red_team(state: AuditState, llm: mas.LLM, unreadable: Finding | None) -> None:
    """Review the config: the rules first, then the model, which is shown the config itself.

    Writes: open_findings and resolved (a finding no longer reported is resolved this round).
    """
    found = [unreadable] if unreadable else []
    reply = None
    if state.config is not None:
        scanner = check_config(state.config, state.strict)
        found += scanner
        task = (
            f"Configuration under review (round {state.iteration}):\n```json\n{_config_json(state.config)}\n```\n\n"
            f"The scanner already reported:\n{_finding_lines(scanner) or '- nothing'}"
        )
        reply = llm.complete("red_team", [{"role": "system", "content": RED_PROMPT}, {"role": "user", "content": task}])
        from_model, dropped = read_model_findings(reply.content, state.iteration)
        found += from_model
        for reason in dropped:
            llm.display.note(f"Red Team model finding dropped: {reason}")
    _update_findings(state, found, llm)
    resolved_now = [f.id for f in state.resolved if f.resolved_in == state.iteration]
    body = _finding_lines(state.open_findings) or "No findings."
    if resolved_now:
        body += f"\n\nResolved this round: {', '.join(resolved_now)}"
    llm.display.step(
        f"Red Team · {len(state.open_findings)} open finding(s) · round {state.iteration}", body, reply, "red"
    )


def _update_findings(state: AuditState, found: list[Finding], llm: mas.LLM) -> None:
    """Carry findings between rounds by id: gone ones become resolved, returning ones are regressions."""
    reported = {f.id: f for f in found}
    for old in state.open_findings:
        if old.id not in reported:
            old.resolved_in = state.iteration
            state.resolved.append(old)
    still_open = {f.id: f for f in state.open_findings if f.id in reported}
    state.open_findings = []
    for finding in reported.values():
        if finding.id in still_open:
            finding.found_in = still_open[finding.id].found_in  # first seen, not last seen
        else:
            finding.found_in = state.iteration
            if any(f.id == finding.id for f in state.resolved):
                llm.display.warn(f"regression: {finding.id} was fixed in an earlier round and is back")
        state.open_findings.append(finding)
    state.open_findings.sort(key=lambda f: -SEVERITIES.index(f.severity))  # worst first, for Blue and the CISO


def ciso_decision(open_findings: list[Finding], iteration: int, cost: int, options: AuditOptions) -> Decision:
    """The CISO's rule, in code. The model is never asked whether to approve.

    >>> low = Finding("red-x", "low", "x", "minor", "")
    >>> ciso_decision([low], 1, 0, AuditOptions()).verdict     # below the threshold: approve
    'approve'
    >>> ciso_decision([], 2, 31, AuditOptions()).stop_reason   # over the change budget, even if clean
    'cost_ceiling'
    """
    blocking = [f for f in open_findings if at_or_above(f.severity, options.threshold)]
    if cost > options.max_cost:
        return Decision(
            "reject", "cost_ceiling", f"fixes cost {cost} change points; the budget is {options.max_cost}", blocking
        )
    if not blocking:
        return Decision(
            "approve", "approved", f"no open finding at or above {options.threshold} after round {iteration}", blocking
        )
    if iteration >= options.max_loops:
        return Decision(
            "reject",
            "max_loops",
            f"{len(blocking)} blocking finding(s) still open after {iteration} of {options.max_loops} rounds",
            blocking,
        )
    return Decision("send back", None, f"{len(blocking)} finding(s) at or above {options.threshold}", blocking)


CISO_PROMPT = """You are the CISO. The decision below was made by company policy, in code, and it is final.
In two or three sentences, explain it to the team: what blocks approval and what to fix first,
or why the configuration may ship. Do not change or question the decision."""


def ciso(state: AuditState, llm: mas.LLM, decision: Decision, options: AuditOptions) -> None:
    """Explain the decision (the model writes only the words). Writes: rationale."""
    task = "\n".join(
        [
            f"Decision: {decision.verdict.upper()}",
            f"Reason: {decision.detail}",
            f"Round {state.iteration} of {options.max_loops}; change cost {state.cost} of {options.max_cost} points.",
            "Blocking findings:",
            _finding_lines(decision.blocking) or "- none",
        ]
    )
    reply = llm.complete("ciso", [{"role": "system", "content": CISO_PROMPT}, {"role": "user", "content": task}])
    state.rationale = reply.content.strip() or decision.detail
    style = {"approve": "green", "send back": "yellow", "reject": "red"}[decision.verdict]
    llm.display.step(
        f"CISO · {decision.verdict.upper()} · round {state.iteration} · change cost {state.cost}/{options.max_cost}",
        state.rationale,
        reply,
        style,
    )


# ---------------------------------------------------------------------------
# The game loop
# ---------------------------------------------------------------------------


def run_audit(brief: str, llm: mas.LLM, options: AuditOptions, knowledge: dict[str, Any] | None) -> AuditState:
    """Play Blue -> Red -> CISO rounds until one of these ends the game:

    approved      no open finding at or above the threshold
    max_loops     options.max_loops rounds ran with blocking findings still open
    cost_ceiling  the fixes cost more than options.max_cost change points
    max_turns     the Blue Team kept calling tools instead of answering (BLUE_MAX_TURNS)
    token_budget  the next call would not fit in the token budget
    timeout       the run's time limit was reached
    config_error  the server refused the key, the model or the request, or could not be reached
    api_error     the server kept failing after the SDK's retries
    interrupted   Ctrl-C

    The state is returned in every case. A bug in the code is not caught.
    """
    state = AuditState(brief, strict=options.strict)
    llm.trace.event(
        "start",
        game="security_audit",
        brief=brief,
        demo=llm.settings.demo,
        server=llm.settings.server(),
        options=asdict(options),
    )

    def stop(reason: str, detail: str) -> None:
        state.status = "approved" if reason == "approved" else "stopped"
        state.stop_reason, state.stop_detail = reason, detail

    try:
        while state.stop_reason is None:
            state.iteration += 1
            if llm.display.chatty:
                llm.display.console.rule(Text(f"Round {state.iteration} of {options.max_loops}"))
            unreadable = blue_team(state, llm, knowledge)
            red_team(state, llm, unreadable)
            decision = ciso_decision(state.open_findings, state.iteration, state.cost, options)
            ciso(state, llm, decision, options)
            llm.trace.event(
                "round",
                iteration=state.iteration,
                verdict=decision.verdict,
                detail=decision.detail,
                cost=state.cost,
                open=[f.id for f in state.open_findings],
                resolved=[f.id for f in state.resolved],
                config=state.config,
            )
            if decision.stop_reason:
                stop(decision.stop_reason, decision.detail)
    except mas.StopRun as halt:
        stop(halt.stop_reason, halt.detail)
    except KeyboardInterrupt:
        stop("interrupted", "stopped with Ctrl-C")
    finally:
        if state.stop_reason is None:  # an unexpected exception is on its way up
            stop("crashed", "an unexpected error ended the run")
        llm.trace.event(
            "end",
            stop_reason=state.stop_reason,
            detail=state.stop_detail,
            rounds=state.iteration,
            cost=state.cost,
            open=[f.id for f in state.open_findings],
            kb_lookups=state.kb_lookups,
            calls=llm.ledger.calls,
            total_tokens=llm.ledger.total_tokens,
            cost_usd=llm.ledger.cost_usd,
            seconds=round(llm.elapsed(), 3),
            config=state.config,
        )
    return state


# ---------------------------------------------------------------------------
# The scripted demo model: a believable audit, offline
# ---------------------------------------------------------------------------

_FIRST_DRAFT: dict[str, Any] = {
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
# Fixed from memory: everything named, except CSP ("it might break the checkout page") and the server banner.
_FIXED_FROM_MEMORY = {
    **_FIRST_DRAFT,
    "debug": False,
    "listen_ports": [80, 443],
    "redirect_http_to_https": True,
    "headers": {**_FIRST_DRAFT["headers"], "Strict-Transport-Security": "max-age=31536000"},
    "admin": {"username": "shop-admin", "password_env": "SHOP_ADMIN_PASSWORD"},
    "cors": {"allowed_origins": ["https://shop.example.com"]},
}
_SECURE = {
    **_FIXED_FROM_MEMORY,
    "tls": {"min_version": "1.3"},
    "headers": dict(RECOMMENDED_HEADERS),
    "server_tokens": False,
}
_LOOKED_UP = ["ports", "tls", "headers", "credentials", "cors", "server_tokens"]


def demo_responder() -> mas.Responder:
    """Blue drafts with debug on and Telnet open; with the knowledge base it fixes everything in one round,
    from memory it needs two. Red's model notices the server banner; the CISO explains each decision."""
    fixes = 0

    def respond(request: dict[str, Any]) -> str | list[mas.ToolCallSpec]:
        nonlocal fixes
        messages = request["messages"]
        player, task = messages[0]["content"], messages[1]["content"]
        if player == BLUE_PROMPT:
            if task.startswith("Draft"):
                return f"Here is a first draft.\n```json\n{json.dumps(_FIRST_DRAFT, indent=2)}\n```"
            if request.get("tools") and messages[-1]["role"] == "user":
                return [("lookup_secure_default", {"topic": topic}) for topic in _LOOKED_UP]
            fixes += 1
            fixed = _SECURE if request.get("tools") or fixes > 1 else _FIXED_FROM_MEMORY
            return json.dumps(fixed, indent=2)
        if player == RED_PROMPT:
            config, _ = read_config(task)
            findings = []
            if config and _on(config.get("server_tokens")):
                findings.append(
                    {
                        "severity": "low",
                        "field": "server_tokens",
                        "description": "The Server header names the software and its version, "
                        "which tells an attacker which exploits to try.",
                        "fix": "Set server_tokens to false.",
                    }
                )
            return json.dumps({"findings": findings})
        if player == CISO_PROMPT:
            verdict = task.splitlines()[0].removeprefix("Decision: ")
            ids = re.findall(r"^- \[\w+\] (\S+)", task, re.M)
            if verdict == "APPROVE":
                return "Approved. Nothing at or above the threshold is open, so this configuration may ship."
            if verdict == "SEND BACK":
                return (
                    f"Sent back. {len(ids)} finding(s) block approval; start with {ids[0]}, since the "
                    "worst problems come first. Keep every earlier fix in place."
                )
            return "Rejected. " + task.splitlines()[1].removeprefix("Reason: ") + "; this needs a human decision."
        raise mas.AgentSystemError("the scripted demo model only knows the audit's three prompts")

    return respond


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stages.stage3.activity.starter_workflow",
        description="Red Team vs Blue Team: a server configuration is attacked and fixed until a CISO approves it.",
        epilog=cli.ENVIRONMENT_HELP + "\n\nexit codes: 0 approved, 1 stopped without approval, "
        "2 usage or configuration error, 130 interrupted",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "brief", nargs="?", default=DEFAULT_BRIEF, help="the server to configure (default: %(default)s)"
    )
    game = parser.add_argument_group("the game")
    game.add_argument(
        "--strict", action="store_true", help="pickier Red Team: TLS 1.3 only, full header set, sane values"
    )
    game.add_argument("--no-kb", action="store_true", help="take away the Blue Team's knowledge base")
    game.add_argument(
        "--threshold",
        choices=SEVERITIES,
        default=DEFAULT_THRESHOLD,
        help=f"lowest severity that blocks approval (default {DEFAULT_THRESHOLD})",
    )
    game.add_argument(
        "--max-loops",
        type=mas.positive(int),
        default=MAX_LOOPS,
        metavar="N",
        help=f"rounds before the CISO stops the game (default {MAX_LOOPS})",
    )
    game.add_argument(
        "--max-cost",
        type=mas.positive(int),
        default=MAX_FIX_COST,
        metavar="POINTS",
        help=f"change budget: each field a fix changes costs 1 point (default {MAX_FIX_COST})",
    )
    game.add_argument(
        "--out",
        type=Path,
        default=OUT_FILE,
        metavar="FILE",
        help=f"where the approved config goes (default {OUT_FILE}); nothing is written otherwise",
    )
    cli.add_model_flags(parser)
    return parser


@mas.ctrl_c_exits
def main(argv: Sequence[str] | None = None, *, console: Console | None = None, client: Any = None) -> int:
    """The command line. ``console`` and ``client`` let tests capture output and fake the API."""
    console = console or Console()
    args = cli.parse_args(build_parser(), argv)
    if isinstance(args, int):
        return args
    display = cli.make_display(args, console)
    options = AuditOptions(
        strict=args.strict,
        threshold=args.threshold,
        max_loops=args.max_loops,
        max_cost=args.max_cost,
        knowledge_base=not args.no_kb,
    )
    try:
        if not args.brief.strip():
            raise mas.UsageError("the brief is empty: describe the server to configure")
        mas.check_output_path(args.out)  # before any model call is paid for
        knowledge = load_knowledge_base() if options.knowledge_base else None
        llm = cli.open_run(args, display, client, demo_responder)
    except mas.UsageError as err:
        display.error(str(err))
        return mas.EXIT_USAGE
    try:
        display.banner(llm.settings, llm.trace.run_id, llm.trace.path, roles=("blue_team", "red_team", "ciso"))
        with mas.sdk_retries_shown(display, llm.trace):
            state = run_audit(args.brief.strip(), llm, options, knowledge)
        if state.stop_reason in ("config_error", "api_error"):
            display.error(state.stop_detail or state.stop_reason)
        approved = state.status == "approved" and state.config is not None
        if approved:
            mas.write_atomically(args.out, json.dumps(state.config, indent=2, ensure_ascii=False) + "\n")
        if args.verbose:
            console.print(
                Panel(
                    Text(json.dumps(asdict(state), indent=2, ensure_ascii=False)),
                    title="audit state at the end",
                    border_style="dim",
                )
            )
        display.spending(llm.ledger, "agent")
        console.print(
            Text(
                f"stop reason: {state.stop_reason} ({state.stop_detail}) · {state.iteration} round(s), "
                f"{len(state.resolved)} finding(s) resolved, {len(state.open_findings)} open, "
                f"change cost {state.cost}/{options.max_cost}, {len(state.kb_lookups)} knowledge-base lookup(s), "
                f"{llm.ledger.calls} calls, {llm.ledger.total_tokens} tokens, {mas.format_cost(llm.ledger.cost_usd)}, "
                f"{llm.elapsed():.1f}s",
                style="bold green" if approved else "bold red",
            )
        )
        console.print(
            Text(
                f"approved config written to {args.out}"
                if approved
                else f"nothing written to {args.out}: {STOP_REASONS.get(state.stop_reason or '', '')}",
                style="green" if approved else "red",
            )
        )
        return mas.exit_code_for(state.stop_reason or "crashed", "approved")
    except OSError as err:
        display.error(f"cannot write {err.filename}: {err.strerror}")
        return mas.EXIT_USAGE
    finally:
        llm.trace.close()


if __name__ == "__main__":
    raise SystemExit(main())
