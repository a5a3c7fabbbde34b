"""Bad input, for every entry point: one clear ``error:`` line, the documented exit code, nothing paid for lost.

In-process runs cover most of it; the cases that only exist at the operating
system's edge (bytes in argv that are not UTF-8, bytes on stdin, Ctrl-C while
a real process waits for input) run the program as a real process.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import multi_agent_system as mas
from conftest import FakeClient, completion, interruptible, output, patch_everywhere, verdict
from machinery import cli, config
from machinery import output as output_module
from machinery.config import read_task, write_atomically
from machinery.demo import Responder, ScriptedClient, demo_script
from machinery.gateway import LLM
from machinery.output import new_run_id
from stages.stage3 import demo
from stages.stage3.activity import starter_workflow

ROOT = Path(__file__).resolve().parents[1]
ERROR = re.compile(r"^error: ", re.M)
CHAPTER = [sys.executable, str(ROOT / "multi_agent_system.py")]
# (name, main, the argv of a run that would succeed in demo mode)
PROGRAMS: list[tuple[str, Callable[..., int], list[str]]] = [
    ("chapter", cli.main, ["Write a haiku about agents"]),
    ("handoffs", demo.main, []),
    ("audit", starter_workflow.main, []),
]
IDS = [name for name, _, _ in PROGRAMS]


def one_error(text: str) -> str:
    lines = ERROR.findall(text)
    assert len(lines) == 1, f"expected exactly one error line:\n{text}"
    assert "Traceback" not in text
    return next(line for line in text.splitlines() if line.startswith("error: "))


def run(args: list[str | bytes], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    return subprocess.run(args, capture_output=True, timeout=60, env=env, **kwargs)


# -- the task -----------------------------------------------------------------


@pytest.mark.parametrize("task", ["", "   \n\t  "])
def test_an_empty_task_is_one_line(console, task: str) -> None:
    assert cli.main([task], console=console) == mas.EXIT_USAGE
    assert "no task given" in one_error(output(console))


def test_a_task_over_the_limit_is_one_line_naming_the_limit(console) -> None:
    assert cli.main(["x" * (mas.TASK_MAX_CHARS + 1)], console=console) == mas.EXIT_USAGE
    assert str(mas.TASK_MAX_CHARS) in one_error(output(console))


def test_a_task_at_the_limit_is_accepted(console) -> None:
    assert cli.main(["Write a haiku " + "x" * (mas.TASK_MAX_CHARS - 14)], console=console) in (0, 1)


def test_invalid_utf8_in_argv_is_one_line_and_no_trace(tmp_path: Path) -> None:
    done = run([*CHAPTER, b"Write a haiku \xff\xfe about agents", "--log-dir", str(tmp_path / "logs")])
    assert done.returncode == mas.EXIT_USAGE
    assert "not UTF-8" in one_error(done.stderr.decode() + done.stdout.decode())
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").iterdir())


@pytest.mark.parametrize(
    ("data", "expected"), [(b"Write a haiku \xc3\x28", "not UTF-8"), (b"Write a\x00 haiku", "NUL byte")]
)
def test_bad_bytes_on_stdin_are_one_line(tmp_path: Path, data: bytes, expected: str) -> None:
    done = run([*CHAPTER, "-", "--log-dir", str(tmp_path / "logs")], input=data)
    assert done.returncode == mas.EXIT_USAGE
    assert expected in one_error(done.stderr.decode() + done.stdout.decode())


def test_a_nul_byte_in_the_task_is_refused_in_process(console) -> None:
    with pytest.raises(mas.UsageError, match="NUL"):
        read_task("-", _Stdin("Write a\x00 haiku"))


class _Stdin:
    def __init__(self, text: str | BaseException):
        self.text = text

    def read(self) -> str:
        if isinstance(self.text, BaseException):
            raise self.text
        return self.text


# -- .env -----------------------------------------------------------------------


def test_a_missing_env_file_is_fine(console, tmp_path: Path) -> None:
    assert not (tmp_path / ".env").exists()
    assert cli.main(["Write a haiku about agents"], console=console) == 0


def test_a_malformed_env_line_is_skipped_with_a_warning(console, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("this is not a setting\nOPENAI_MODEL='unterminated\n", encoding="utf-8")
    code = cli.main(["Write a haiku about agents"], console=console)
    shown = output(console)
    assert code == 0, shown
    assert "warning:" in shown and "that line was skipped" in shown
    assert "Traceback" not in shown


@pytest.mark.parametrize(("name", "main", "argv"), PROGRAMS, ids=IDS)
def test_a_non_utf8_env_file_is_one_line(console, tmp_path: Path, name: str, main: Callable[..., int], argv) -> None:
    (tmp_path / ".env").write_bytes(b"OPENAI_MODEL=caf\xe9\n")
    assert main(argv, console=console) == mas.EXIT_USAGE
    assert "not UTF-8" in one_error(output(console))


def test_a_non_utf8_env_file_as_a_real_process(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"OPENAI_API_KEY=\xff\xfe\n")
    done = run([*CHAPTER, "Write a haiku about agents"], cwd=tmp_path)
    assert done.returncode == mas.EXIT_USAGE
    assert "not UTF-8" in one_error(done.stderr.decode() + done.stdout.decode())


# -- where things are written -----------------------------------------------------


@pytest.mark.parametrize(("name", "main", "argv"), PROGRAMS, ids=IDS)
def test_a_log_dir_that_is_a_file_is_one_line(console, tmp_path: Path, name, main, argv) -> None:
    (tmp_path / "logs").write_text("not a folder")
    assert main([*argv, "--log-dir", str(tmp_path / "logs")], console=console) == mas.EXIT_USAGE
    assert "cannot write the trace" in one_error(output(console))


def test_an_output_path_in_a_missing_folder_is_created(console, tmp_path: Path) -> None:
    out = tmp_path / "new" / "deeper" / "haiku.txt"
    assert cli.main(["Write a haiku about agents", "--output", str(out)], console=console) == 0
    assert out.read_text().count("\n") == 3


def test_an_output_path_under_a_regular_file_is_refused_before_any_call(tmp_path: Path, console) -> None:
    (tmp_path / "notes.txt").write_text("a file")
    client = FakeClient()  # empty: any call fails the test
    code = cli.main(
        ["Write a haiku", "--output", str(tmp_path / "notes.txt" / "haiku.txt")], console=console, client=client
    )
    assert code == mas.EXIT_USAGE
    assert "is a file, not a folder" in one_error(output(console))
    assert client.calls == []


def test_an_output_path_that_is_a_folder_is_refused(console, tmp_path: Path) -> None:
    assert cli.main(["Write a haiku", "--output", str(tmp_path)], console=console) == mas.EXIT_USAGE
    assert "it is a folder" in one_error(output(console))


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere")
def test_an_unwritable_output_folder_is_refused(console, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert cli.main(["Write a haiku", "--output", str(locked / "h.txt")], console=console) == mas.EXIT_USAGE
    assert "not writable" in one_error(output(console))


def test_a_write_that_fails_after_approval_keeps_the_result_beside_the_trace(
    console, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = write_atomically
    out = tmp_path / "haiku.txt"

    def failing(path: Path, text: str) -> None:
        if path == out:
            raise OSError(28, "No space left on device", str(path))
        real(path, text)

    patch_everywhere(monkeypatch, config, "write_atomically", failing)
    code = cli.main(["Write a haiku about agents", "--output", str(out)], console=console)
    line = one_error(output(console))
    assert code == mas.EXIT_USAGE
    (rescued,) = (tmp_path / "logs").glob("*.result.txt")
    assert rescued.name in line and "No space left" in line
    assert rescued.read_text().count("\n") == 3


# -- flags, limits and the server address -------------------------------------------


@pytest.mark.parametrize(("name", "main", "argv"), PROGRAMS, ids=IDS)
def test_an_unknown_flag_exits_2(capsys, console, name, main, argv) -> None:
    assert main([*argv, "--frobnicate"], console=console) == mas.EXIT_USAGE
    assert "unrecognized arguments: --frobnicate" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--max-tokens", "--timeout"])
@pytest.mark.parametrize("value", ["0", "-3", "lots", "nan", "inf", "-inf"])
@pytest.mark.parametrize(("name", "main", "argv"), PROGRAMS, ids=IDS)
def test_a_limit_that_is_not_a_positive_number_exits_2(capsys, console, name, main, argv, flag, value) -> None:
    assert main([*argv, f"{flag}={value}"], console=console) == mas.EXIT_USAGE
    err = capsys.readouterr().err
    assert flag in err and "Traceback" not in err


@pytest.mark.parametrize("flag", ["--max-iterations", "--max-plans", "--max-cost"])
@pytest.mark.parametrize("value", ["0", "-1", "x", "nan", "inf"])
def test_the_chapter_limits_refuse_non_positive_numbers(capsys, console, flag: str, value: str) -> None:
    assert cli.main(["Write a haiku", f"{flag}={value}"], console=console) == mas.EXIT_USAGE
    assert flag in capsys.readouterr().err


@pytest.mark.parametrize(
    "url", ["localhost:11434/v1", "http://", "ftp://example.test/v1", "http://localhost:99999/v1", "http://[::1/v1"]
)
@pytest.mark.parametrize(("name", "main", "argv"), PROGRAMS, ids=IDS)
def test_a_malformed_base_url_is_one_line_before_any_call(console, monkeypatch, name, main, argv, url: str) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    client = FakeClient()  # empty: any call fails the test
    assert main(argv, console=console, client=client) == mas.EXIT_USAGE
    assert "OPENAI_BASE_URL" in one_error(output(console))
    assert client.calls == []


def test_a_base_url_with_a_password_is_not_echoed(console, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "ftp://alice:hunter2secret@example.test/v1")
    assert cli.main(["Write a haiku"], console=console) == mas.EXIT_USAGE
    assert "hunter2secret" not in output(console)


# -- Ctrl-C ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "where"),
    [
        (config, "load_env_file"),
        (config, "settings_from_args"),
        (output_module, "new_run_id"),
        (output_module, "Display"),
    ],
)
def test_ctrl_c_during_start_up_exits_130_without_a_traceback(capsys, console, monkeypatch, module, where) -> None:
    def interrupt(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    patch_everywhere(monkeypatch, module, where, interrupt)
    assert cli.main(["Write a haiku"], console=console) == mas.EXIT_INTERRUPTED
    shown = output(console) + capsys.readouterr().err
    assert "Traceback" not in shown and "interrupted" in shown


def test_ctrl_c_while_reading_stdin_exits_130_in_process(console, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdin", _Stdin(KeyboardInterrupt()))
    assert cli.main(["-"], console=console) == mas.EXIT_INTERRUPTED
    assert "nothing was sent" in one_error(output(console))


def test_ctrl_c_while_a_real_process_waits_on_stdin(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*CHAPTER, "-", "--log-dir", str(tmp_path / "logs")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")},
        preexec_fn=interruptible,
    )
    time.sleep(1.5)  # long enough to be past start-up and blocked on read()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == mas.EXIT_INTERRUPTED
    assert b"Traceback" not in out + err


def _interrupt(request: dict[str, Any]) -> Any:
    raise KeyboardInterrupt


def test_ctrl_c_mid_call_keeps_the_trace_and_the_last_draft(console, tmp_path: Path) -> None:
    client = FakeClient(
        planner=[completion("1. Write it.")],
        worker=[completion("Draft one about agents.")],
        critic=[verdict(False)],
    )
    client.by_role["worker"].append(_interrupt)  # the second draft's call is cut short
    code = cli.main(["Write two sentences about agents", "--json"], console=console, client=client)
    data = json.loads(output(console))
    (path,) = (tmp_path / "logs").glob("*.jsonl")
    end = json.loads(path.read_text().splitlines()[-1])
    assert code == mas.EXIT_INTERRUPTED
    assert data["stop_reason"] == "interrupted" and data["approved"] is False
    assert data["result"] == "Draft one about agents." == end["result"]
    assert end["event"] == "end" and end["stop_reason"] == "interrupted"


def test_ctrl_c_between_calls_keeps_the_trace(console, tmp_path: Path, monkeypatch) -> None:
    real = LLM.record

    def then_interrupt(self: LLM, event: str, *args: Any, **kwargs: Any) -> None:
        real(self, event, *args, **kwargs)
        if event == "verdict":
            raise KeyboardInterrupt

    monkeypatch.setattr(LLM, "record", then_interrupt)
    code = cli.main(["Write a haiku about agents"], console=console)
    shown = output(console)
    (path,) = (tmp_path / "logs").glob("*.jsonl")
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert code == mas.EXIT_INTERRUPTED
    assert events[-1]["event"] == "end" and events[-1]["stop_reason"] == "interrupted"
    assert "best draft (not approved)" in shown


RESPONDERS: dict[str, Callable[[], Responder]] = {
    "chapter": lambda: demo_script("revise"),
    "handoffs": demo.demo_responder,
    "audit": starter_workflow.demo_responder,
}


@pytest.mark.parametrize(("name", "main", "argv"), PROGRAMS, ids=IDS)
def test_ctrl_c_at_start_up_exits_130_in_every_program(capsys, console, monkeypatch, name, main, argv) -> None:
    def interrupt(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    patch_everywhere(monkeypatch, config, "load_env_file", interrupt)
    assert main(argv, console=console) == mas.EXIT_INTERRUPTED
    assert "Traceback" not in output(console) + capsys.readouterr().err


@pytest.mark.parametrize("at", [1, 2, 3])
@pytest.mark.parametrize(("name", "main", "argv"), PROGRAMS, ids=IDS)
def test_ctrl_c_mid_call_in_every_program_keeps_the_trace(console, tmp_path: Path, name, main, argv, at: int) -> None:
    responder, count = RESPONDERS[name](), 0

    def respond(request: dict[str, Any]) -> Any:
        nonlocal count
        count += 1
        if count == at:
            raise KeyboardInterrupt
        return responder(request)

    code = main(argv, console=console, client=ScriptedClient(respond))
    (path,) = (tmp_path / "logs").glob("*.jsonl")
    end = json.loads(path.read_text().splitlines()[-1])
    assert code == mas.EXIT_INTERRUPTED
    assert end["event"] == "end" and end["stop_reason"] == "interrupted"
    assert "Traceback" not in output(console)


def test_run_ids_do_not_repeat_within_a_process() -> None:
    ids = [new_run_id() for _ in range(200_000)]
    assert len(set(ids)) == len(ids)


def test_a_nul_byte_in_env_is_one_line(console, tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"OPENAI_MODEL=ab\x00c\n")
    assert cli.main(["Write a haiku about agents"], console=console) == mas.EXIT_USAGE
    assert ".env" in one_error(output(console))


def test_a_password_in_the_base_url_is_never_shown(console, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://alice:hunter2secret@127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef")
    code = cli.main(["Write a haiku about agents"], console=console)
    (trace,) = (tmp_path / "logs").glob("*.jsonl")
    assert code == mas.EXIT_USAGE  # nothing listens on port 9
    assert "hunter2secret" not in output(console) + trace.read_text()
