"""The fault matrix: every fault the loopback server can play, against every entry point.

Each cell runs a program's real ``main()`` through the real openai SDK against
``FaultServer``. Whatever the fault, the program must either recover (the SDK
retried, the gateway fell back, an agent re-asked) or stop with one ``error:``
line, a documented stop reason and exit code, and in every case:

- no exception escapes (so no traceback),
- the trace ends with an ``end`` event,
- the token budget held,
- the API key appears nowhere: not on screen, not in the trace, not in any file written,
- a time limit holds, SDK retries included.

Each fault also says what the run must do (``Fault.expect``), and each cell checks it.
README.md carries the matrix as a table; ``test_readme_matrix_is_current`` keeps it
in step (``python tests/test_fault_matrix.py --update`` rewrites it).
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script, to print or rewrite the README's table
    sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

import multi_agent_system as mas
from fault_server import FAULTS, Fault, FaultServer
from machinery import cli
from machinery.cli import exit_code_for
from machinery.demo import Responder, ScriptedClient, demo_script
from machinery.output import Trace
from machinery.text import redact
from stages.stage3 import demo, handoffs
from stages.stage3.activity import players, solution_workflow
from stages.variants import model_driven

KEY = "gsk_FAULTMATRIXsecret0123456789abcdef"  # no pattern matches it: only scrubbing the configured key hides it
MAX_TOKENS = 8_000  # tight enough that the budget check can fail: a healthy run spends a few thousand
TIMEOUT_S = 20.0  # every cell runs under --timeout, so a bug that hangs fails the test instead of CI
HANG_TIMEOUT_S = 2.0  # the hang cell: the whole run, retries included, must end near this
GRACE_S = 2.0  # how far past --timeout a run may end
ERROR = re.compile(r"^error: ", re.M)
DOCUMENTED_EXITS = {mas.EXIT_APPROVED, mas.EXIT_NOT_APPROVED, mas.EXIT_USAGE, mas.EXIT_INTERRUPTED}


@dataclass(frozen=True)
class EntryPoint:
    name: str
    command: str
    main: Callable[..., int]
    responder: Callable[[], Responder]
    argv: Callable[[Path], list[str]]
    stop_reasons: dict[str, str]
    success: str = "approved"


ENTRY_POINTS = (
    EntryPoint(
        "chapter",
        "python multi_agent_system.py",
        cli.main,
        lambda: demo_script("revise"),
        lambda tmp: ["Write a haiku about agents", "--output", str(tmp / "out" / "haiku.txt")],
        mas.STOP_REASONS,
    ),
    EntryPoint(
        "variant",
        "python -m stages.variants.model_driven",
        model_driven.main,
        lambda: model_driven.demo_script("escalate"),  # rejections, so the director is asked
        lambda tmp: ["Write a haiku about agents"],
        mas.STOP_REASONS,
    ),
    EntryPoint(
        "handoffs",
        "python -m stages.stage3.demo",
        demo.main,
        demo.demo_responder,
        lambda tmp: [],
        handoffs.STOP_REASONS,
        "answered",
    ),
    EntryPoint(
        "audit",
        "python -m stages.stage3.activity.solution_workflow",  # the version that saves a file
        solution_workflow.main,
        players.demo_responder,
        lambda tmp: ["--out", str(tmp / "out" / "secure_server.json")],
        solution_workflow.STOP_REASONS,
    ),
)


@dataclass
class Cell:
    code: int
    out: str
    trace: list[dict[str, Any]]
    files: dict[str, str]
    seconds: float
    requests: int
    struck: int


@pytest.fixture(autouse=True)
def quick_sdk_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's own backoff (0.5 s doubling) would make the matrix take minutes; its retries still happen."""
    from openai import _base_client

    monkeypatch.setattr(_base_client, "INITIAL_RETRY_DELAY", 0.01)
    monkeypatch.setattr(_base_client, "MAX_RETRY_DELAY", 0.02)


def run_cell(entry: EntryPoint, fault: Fault, tmp: Path, monkeypatch: pytest.MonkeyPatch, timed: bool = True) -> Cell:
    monkeypatch.chdir(tmp)
    logs = tmp / "logs"
    limit = HANG_TIMEOUT_S if fault.needs_timeout else TIMEOUT_S
    limits = ["--timeout", str(limit)] if timed else []
    with FaultServer(entry.responder(), fault, key=KEY) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_MODEL", "gpt-4o-mini")
        console = Console(file=StringIO(), width=100, color_system=None)
        started = time.monotonic()
        code = entry.main(
            [*entry.argv(tmp), "--log-dir", str(logs), *limits, "--max-tokens", str(MAX_TOKENS), "--verbose"],
            console=console,
        )
        seconds = time.monotonic() - started
    traces = sorted(logs.glob("*.jsonl"))
    assert len(traces) == 1, f"expected one trace, found {traces}"
    events = [json.loads(line) for line in traces[0].read_text(encoding="utf-8").splitlines()]
    files = {
        str(p.relative_to(tmp)): p.read_text(encoding="utf-8", errors="replace") for p in tmp.rglob("*") if p.is_file()
    }
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    return Cell(code, shown, events, files, seconds, len(server.requests), server.struck)


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=[e.name for e in ENTRY_POINTS])
def test_cell(entry: EntryPoint, fault: Fault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_cell(entry, fault, run_cell(entry, fault, tmp_path, monkeypatch))


UNTIMED = ("rate_limit_once", "server_error_forever", "dropped", "invalid_json", "deep_body", "key_echoed_500")


@pytest.mark.parametrize("fault", [FAULTS[name] for name in UNTIMED], ids=UNTIMED)
def test_cell_without_a_time_limit(fault: Fault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The matrix runs under --timeout (the deadline thread); these cells take the plain path without it."""
    entry = ENTRY_POINTS[0]
    check_cell(entry, fault, run_cell(entry, fault, tmp_path, monkeypatch, timed=False))


def check_cell(entry: EntryPoint, fault: Fault, cell: Cell) -> None:
    end = cell.trace[-1]
    assert end["event"] == "end", f"the trace stops at {end['event']!r}, not at an end event"
    reason = end.get("stop_reason")
    assert reason in entry.stop_reasons, reason
    assert reason != "crashed", cell.out
    assert cell.code in DOCUMENTED_EXITS and cell.code == exit_code_for(reason, entry.success), (cell.code, reason)
    assert "Traceback" not in cell.out
    errors = ERROR.findall(cell.out)
    expect = expected(fault, entry)
    assert fault.refused or cell.struck >= 1, "the fault never struck: this cell would prove nothing"
    if expect == "recovers":
        assert reason == entry.success and not errors, cell.out
        assert cell.code == mas.EXIT_APPROVED
    elif expect == "not_approved":
        assert reason not in (entry.success, "config_error", "api_error") and not errors, cell.out
        assert cell.code == mas.EXIT_NOT_APPROVED
    else:
        assert reason == expect, cell.out
    if reason in ("config_error", "api_error"):
        assert len(errors) == 1, f"expected one error line:\n{cell.out}"
    if fault.after and entry.name == "chapter":  # work paid for before the fault is kept
        assert end["result"] and "best draft (not approved)" in cell.out
    assert KEY not in cell.out and not any(KEY in text for text in cell.files.values()), "the key leaked"
    assert KEY[-12:] not in cell.out and not any(KEY[-12:] in text for text in cell.files.values()), (
        "part of the key leaked"
    )
    total = end.get("total_tokens")
    tokens = total["total"] if isinstance(total, dict) else total
    assert tokens is None or tokens <= MAX_TOKENS
    limit = HANG_TIMEOUT_S if fault.needs_timeout else TIMEOUT_S
    assert cell.seconds <= limit + GRACE_S, f"{cell.seconds:.1f}s against a {limit}s limit"


def expected(fault: Fault, entry: EntryPoint) -> str:
    return dict(fault.unlike).get(entry.name, fault.expect)


OUTCOMES = {
    "recovers": "recovers",
    "not_approved": "never approves; stops at its limits (exit 1)",
    "api_error": "`api_error`, exit 1",
    "config_error": "`config_error`, exit 2",
    "timeout": "`timeout`, exit 1",
}


def matrix_rows() -> list[str]:
    """The README's table: one row per fault, one column per entry point, what the run does."""
    head = "| server fault | " + " | ".join(f"`{e.command}`" for e in ENTRY_POINTS) + " |"
    rows = [head, "|" + "---|" * (len(ENTRY_POINTS) + 1)]
    for fault in FAULTS.values():
        cells = [OUTCOMES[expected(fault, entry)] for entry in ENTRY_POINTS]
        rows.append(f"| {fault.what} | " + " | ".join(cells) + " |")
    return rows


README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- fault matrix: python tests/test_fault_matrix.py -->", "<!-- end of fault matrix -->"


@pytest.mark.docs
def test_readme_matrix_is_current() -> None:
    text = README.read_text(encoding="utf-8")
    assert BEGIN in text and END in text, "README.md lost its fault matrix markers"
    shown = text.split(BEGIN, 1)[1].split(END, 1)[0].strip().splitlines()
    assert shown == matrix_rows(), "README.md's fault matrix is stale: run python tests/test_fault_matrix.py --update"


def update_readme() -> None:
    text = README.read_text(encoding="utf-8")
    before, rest = text.split(BEGIN, 1)
    after = rest.split(END, 1)[1]
    README.write_text(before + BEGIN + "\n" + "\n".join(matrix_rows()) + "\n" + END + after, encoding="utf-8")


if __name__ == "__main__":
    if "--update" in sys.argv:
        update_readme()
    else:
        sys.stdout.write("\n".join(matrix_rows()) + "\n")


def test_json_mode_never_shows_an_echoed_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FaultServer(demo_script("revise"), FAULTS["key_echoed_500"], key=KEY) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        console = Console(file=StringIO(), width=100, color_system=None)
        code = cli.main(["Write a haiku", "--json", "--log-dir", str(tmp_path / "logs")], console=console)
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    data = json.loads(shown[shown.index("{") :])
    assert code == mas.EXIT_NOT_APPROVED and data["stop_reason"] == "api_error"
    assert "[redacted]" in data["stop_detail"] and KEY not in shown


def test_a_long_retry_after_does_not_outlast_the_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK would sleep out a Retry-After of 30 s, three times; the run's deadline cuts it short."""
    slow = Fault(
        "slow_429", lambda s, r, b: ("json", 429, b'{"error": {"message": "slow down"}}', {"retry-after": "30"})
    )
    with FaultServer(demo_script("revise"), slow, key=KEY) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        console = Console(file=StringIO(), width=100, color_system=None)
        started = time.monotonic()
        code = cli.main(
            ["Write a haiku", "--timeout", str(HANG_TIMEOUT_S), "--log-dir", str(tmp_path)], console=console
        )
    assert time.monotonic() - started <= HANG_TIMEOUT_S + GRACE_S
    assert code == mas.EXIT_NOT_APPROVED and "timeout" in console.file.getvalue()  # type: ignore[attr-defined]


def test_a_placeholder_key_is_not_scrubbed_from_ordinary_words(tmp_path: Path) -> None:
    """Local servers take any key; OPENAI_API_KEY=local must not turn every "local" in a trace into [redacted]."""
    trace = Trace(tmp_path / "t.jsonl", "run")
    trace.hide("local")
    trace.hide(KEY)
    trace.event("call", prompt=f"a local model, key {KEY}")
    line = (tmp_path / "t.jsonl").read_text()
    assert "a local model" in line and KEY not in line and "[redacted]" in line
    # Error text is short and shown once: there even a short key is scrubbed.
    assert redact("key 'classroom-26' rejected", "classroom-26") == "key '[redacted]' rejected"


@given(
    before=st.text(max_size=40),
    after=st.text(max_size=40),
    key=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=4, max_size=60),
)
def test_redact_never_leaves_the_configured_key(before: str, after: str, key: str) -> None:
    assert key not in redact(before + key + after, key).replace("[redacted]", "")


def test_an_abandoned_call_does_not_speak_in_the_next_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A call abandoned at one run's time limit must not put SDK retry lines into a later run's output."""
    with FaultServer(demo_script("revise"), FAULTS["hang"], key=KEY) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        console = Console(file=StringIO(), width=100, color_system=None)
        first = cli.main(["Write a haiku", "--timeout", "1", "--log-dir", str(tmp_path / "a")], console=console)
        monkeypatch.delenv("OPENAI_BASE_URL")
        monkeypatch.delenv("OPENAI_API_KEY")
        later = Console(file=StringIO(), width=100, color_system=None)
        script = demo_script("revise")

        def slow(request: dict[str, Any]) -> Any:  # keeps this run going while the SDK would still be retrying
            time.sleep(0.6)
            return script(request)

        second = cli.main(
            ["Write a haiku about agents", "--verbose", "--log-dir", str(tmp_path / "b")],
            console=later,
            client=ScriptedClient(slow),
        )
    (trace,) = (tmp_path / "b").glob("*.jsonl")
    assert (first, second) == (mas.EXIT_NOT_APPROVED, mas.EXIT_APPROVED)
    assert "openai SDK" not in later.file.getvalue() + trace.read_text()  # type: ignore[attr-defined]
