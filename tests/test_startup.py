"""Start fast: --help and the offline demo never import the openai SDK (about 0.35 s and 38 MB)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("openai", "httpx")


def modules_after(code: str, tmp_path: Path) -> set[str]:
    """Run ``code`` in a fresh interpreter (no key set) and return which heavy modules it loaded."""
    probe = f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n{code}\nprint('HEAVY:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("HEAVY:")]
    return set(filter(None, line.removeprefix("HEAVY:").split(",")))


def test_importing_the_chapter_loads_nothing_heavy(tmp_path: Path) -> None:
    assert modules_after("import multi_agent_system", tmp_path) == set()


def test_help_does_not_import_the_sdk(tmp_path: Path) -> None:
    code = "from machinery import cli as m\ntry:\n    m.main(['--help'])\nexcept SystemExit:\n    pass"
    assert modules_after(code, tmp_path) == set()


def test_the_offline_demo_does_not_import_the_sdk(tmp_path: Path) -> None:
    code = "from machinery import cli as m\nassert m.main(['Write a haiku about agents', '--quiet']) == 0"
    assert modules_after(code, tmp_path) == set()


def test_a_real_server_does_import_the_sdk(tmp_path: Path) -> None:
    """The other side of the coin: the probe can see the SDK when it is loaded."""
    code = (
        "import multi_agent_system as m\nfrom machinery.gateway import LLM\n"
        "LLM(m.Settings(base_url='http://127.0.0.1:9/v1'), None, None).client"
    )
    assert "openai" in modules_after(code, tmp_path)


def test_the_cost_preview_and_a_demo_batch_or_stream_do_not_import_the_sdk(tmp_path: Path) -> None:
    (tmp_path / "tasks.txt").write_text("one\ntwo\n")
    code = (
        "from machinery import cli as m\n"
        "assert m.main(['--estimate', 'Write a haiku']) == 0\n"
        "assert m.main(['--batch', 'tasks.txt', '--quiet', '--demo-scenario', 'approve']) == 0\n"
        "assert m.main(['Write a haiku about agents', '--stream', '--quiet']) == 0"
    )
    assert modules_after(code, tmp_path) == set()


def test_showing_drawing_and_stepping_load_nothing_heavy(tmp_path: Path) -> None:
    """A classroom with no network: --show, --diagram, a good --replay and --step never need the SDK.

    The recording replayed is made here, by the demo, so that it matches the prompts as they are now."""
    example = ROOT / "examples" / "haiku-approved.jsonl"
    code = (
        "import io, sys\nfrom pathlib import Path\nfrom machinery import cli as m\n"
        f"assert m.main(['--show', {str(example)!r}, '--quiet']) == 0\n"
        f"assert m.main(['--diagram', {str(example)!r}]) == 0\n"
        "assert m.main(['Write a haiku about agents', '--quiet', '--log-dir', 'made']) == 0\n"
        "(made,) = Path('made').glob('*.jsonl')\n"
        "assert m.main(['--replay', str(made), 'Write a haiku about agents', '--quiet']) == 0\n"
        "sys.stdin = io.StringIO('\\n' * 20)\n"
        "assert m.main(['Write a haiku about agents', '--step', '--quiet']) == 0"
    )
    assert modules_after(code, tmp_path) == set()
