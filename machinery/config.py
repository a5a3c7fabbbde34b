"""Settings from flags, the environment and .env, and the inputs a user gives: a task, a batch file, an output path.

Every mistake here is a ``UsageError``: one line, exit code 2, before any call is paid for.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from machinery.output import Trace
from machinery.prices import price_for
from machinery.text import redact
from multi_agent_system import DEFAULT_MODEL, ROLES, TASK_MAX_CHARS, Settings, UsageError


def read_task(arg: str | None, stdin: Any) -> str:
    where = "standard input" if arg == "-" else "the task"
    try:
        task = stdin.read() if arg == "-" else (arg or "")
    except UnicodeDecodeError as err:
        raise UsageError(f"{where} is not UTF-8 text (byte {err.object[err.start]:#04x} at {err.start})") from None
    if not task.strip():
        raise UsageError('no task given: try  python multi_agent_system.py "Write a haiku about agents"')
    return clean_task(task, where)


def clean_task(text: str, where: str = "the task") -> str:
    """Text a user gave as a task (stage 3: a question, a brief), stripped; a UsageError if no request could carry it.

    >>> clean_task("  Write a haiku  ")
    'Write a haiku'
    >>> clean_task("Plan a \\udcff server", "the question")  # how Python decodes the byte 0xff in argv
    Traceback (most recent call last):
    ...
    multi_agent_system.UsageError: the question is not UTF-8 text (an undecodable byte at character 7)
    """
    task = text.strip()
    bad = next((i for i, ch in enumerate(task) if "\ud800" <= ch <= "\udfff"), None)  # bytes argv could not decode
    if bad is not None:
        raise UsageError(f"{where} is not UTF-8 text (an undecodable byte at character {bad})")
    if "\0" in task:
        raise UsageError(f"{where} contains a NUL byte at character {task.index(chr(0))}: is it a binary file?")
    if not task:
        raise UsageError(f"{where} is empty")
    if len(task) > TASK_MAX_CHARS:
        raise UsageError(f"{where} is {len(task)} characters; the limit is {TASK_MAX_CHARS} (TASK_MAX_CHARS)")
    return task


def settings_from_env(
    environ: dict[str, str],
    *,
    model: str | None = None,
    role_models: dict[str, str | None] | None = None,
    demo: bool = False,
    **limits: Any,
) -> Settings:
    """Settings from the environment, with flags (when given) taking precedence.

    Stage 3 builds its settings here too, so every program picks a server,
    a model and demo mode by the same rules. ``limits`` are Settings fields.
    """
    api_key = environ.get("OPENAI_API_KEY", "").strip() or None
    base_url = environ.get("OPENAI_BASE_URL", "").strip() or None
    if base_url:
        check_base_url(base_url)
    default_model = model or environ.get("OPENAI_MODEL", "").strip() or DEFAULT_MODEL
    models = {
        role: flag or environ.get(f"{role.upper()}_MODEL", "").strip() or default_model
        for role, flag in (role_models or {}).items()
    }
    settings = Settings(
        default_model=default_model,
        models=models,
        api_key=api_key,
        base_url=base_url,
        demo=demo or not (api_key or base_url),
        **limits,
    )
    if settings.max_cost is not None:
        used = [settings.model_for(role) for role in models] or [settings.model_for("any")]
        unpriced = sorted({m for m in used if price_for(m) is None})
        if unpriced:
            raise UsageError(
                f"--max-cost needs a price, and none is known for {', '.join(unpriced)}: "
                "add it to PRICES_PER_MILLION or drop --max-cost"
            )
    return settings


def check_base_url(url: str) -> None:
    """Refuse, before any call, a server address the SDK could only fail on later."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it validates it
    except ValueError as err:
        raise UsageError(f"OPENAI_BASE_URL is not a valid address ({err}): try http://localhost:11434/v1") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = redact(url.split("@")[-1])  # never echo a user:password@ part
        raise UsageError(f"OPENAI_BASE_URL must start with http:// or https:// and name a host, got '{shown}'")


def settings_from_args(args: argparse.Namespace, environ: dict[str, str]) -> Settings:
    return settings_from_env(
        environ,
        model=args.model,
        role_models={name: getattr(args, f"{name}_model") for name in ROLES},
        demo=bool(args.demo or args.demo_scenario),
        demo_scenario=args.demo_scenario or "revise",
        max_iterations=args.max_iterations,
        max_tokens=args.max_tokens,
        max_plans=args.max_plans,
        max_cost=args.max_cost,
        timeout=args.timeout,
        log_dir=args.log_dir,
    )


def load_env_file(warn: Callable[[str], None] | None = None) -> None:
    """Read .env from the current folder or a parent; real environment variables win.

    A line dotenv cannot parse is skipped with a warning (to ``warn`` when given);
    a file that cannot be read as UTF-8 text is a UsageError.
    """
    from dotenv import find_dotenv, load_dotenv

    path = find_dotenv(usecwd=True)
    if not path:
        return
    skipped: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            skipped.append(record.getMessage())

    logger, handler = logging.getLogger("dotenv.main"), _Collect(level=logging.WARNING)
    if warn is not None:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        load_dotenv(path)
    except ValueError as err:  # a NUL byte: the environment cannot hold it
        if isinstance(err, UnicodeDecodeError):
            raise UsageError(f"{path} is not UTF-8 text (byte {err.object[err.start]:#04x} at {err.start})") from None
        raise UsageError(f"{path} cannot be read as settings: {err}") from None
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}") from None
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    if warn is not None:
        for message in skipped:
            warn(f"{path}: {message}; that line was skipped")


def check_output_path(path: Path) -> None:
    """Refuse, before any model call is paid for, an output path that cannot be written."""
    if path.is_dir():
        raise UsageError(f"cannot write the result to {path}: it is a folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"cannot write the result to {path}: the file is read-only")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:  # the first folder that exists
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError(f"cannot write the result to {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write the result to {path}: {folder} is not writable")


def save_beside_trace(trace: Trace, text: str) -> Path | None:
    """Where a result goes when its own path failed after the run was paid for: next to the trace."""
    if trace.path is None:
        return None
    rescue = trace.path.with_suffix(".result.txt")
    try:
        write_atomically(rescue, text)
    except OSError:
        return None
    return rescue


def write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside ``path``, then rename: no half-written file, ever."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as err:
        temporary.unlink(missing_ok=True)
        raise OSError(err.errno, err.strerror, str(path)) from err


def positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (0 < value < math.inf):  # also refuses nan and inf
            raise argparse.ArgumentTypeError(f"must be a number greater than 0, got {text}")
        return value

    return parse


def read_batch(path: Path) -> list[str]:
    """Tasks from a file: one per line, or JSONL with {"task": ...}; blank lines and # comments are skipped.

    Every line is checked before anything runs: a mistake on line 30 should not
    cost the 29 runs before it.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise UsageError(f"cannot read the batch file {path}: {err.strerror}") from err
    except UnicodeDecodeError:
        raise UsageError(f"the batch file {path} is not UTF-8 text") from None
    tasks = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text == "-":
            raise UsageError(f"{path}:{number}: a batch task cannot be read from standard input")
        if text.startswith("{"):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as err:
                raise UsageError(f"{path}:{number}: not valid JSON ({err.msg})") from None
            if not isinstance(data.get("task"), str):
                raise UsageError(f'{path}:{number}: a JSON line needs a "task" string')
            text = data["task"]
        try:
            tasks.append(read_task(text, None))
        except UsageError as err:
            raise UsageError(f"{path}:{number}: {err}") from None
    if not tasks:
        raise UsageError(f"the batch file {path} has no tasks")
    return tasks
