"""Each measurement in a process of its own, so that peak memory and start-up are its alone."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any


def run_json_child(script: str, args: list[str], what: str) -> dict[str, Any]:
    """Run ``script`` with ``args`` in a new interpreter; the JSON object on its last line.
    SystemExit naming ``what`` and the child's stderr when it fails."""
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                         check=False, timeout=1800)
    if out.returncode:
        raise SystemExit(f"{what} failed:\n{out.stderr}")
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures
