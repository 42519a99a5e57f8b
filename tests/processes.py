"""Running a snippet of Python in a fresh interpreter, as a container would start it: the tests
that need a process of their own (import order, logging set-up, tracing) share this one way."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_python(script, *args, env, timeout=120):
    """Run `script` with `python -c` in the repository, with exactly `env`; it must exit 0."""
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return result
