"""Alias bombs in feeds, claims and routes files, read as ops read them: ``monitor check``,
``monitor claims add`` and a hot reload of claims.yaml.

Each runs in a child capped at 1 GiB of address space and 30 CPU seconds (and killed if it is
still there after 120 s, a hang guard), so a broken guard fails the test instead of eating the
machine; the child's own peak RSS and CPU seconds come from ``wait4`` in a small launcher (see
LAUNCHER). The time bound is on CPU seconds: wall seconds grow with the machine's load (the CI
machine has 2 cores and runs the tests with -n 2), the work of a refusal does not.
Before the guard a 500-byte claims.yaml ran out of memory (and routes.yaml ended in a
MemoryError traceback): pydantic and ``_plain`` walk the expansion, 9**9 nodes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.unit.test_yamlfile import laughs

ADDRESS_SPACE_CAP_BYTES = 1 << 30
CPU_CAP_SECONDS = 30  # RLIMIT_CPU: an expansion is killed by the kernel, whatever the load
DEADLINE_SECONDS = 120.0  # wall seconds: only a child that hangs without working waits this long
CPU_LIMIT_SECONDS = 15.0  # a refusal, interpreter start-up and imports included
PEAK_RSS_LIMIT_KB = 200_000  # the refusal itself peaks near 55 MB (interpreter and imports)
CLAIM = "  - id: steady\n    text: A claim that was tracked before the bomb\n"


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    cpu_seconds: float
    peak_rss_kb: int


# A small launcher between pytest and the measured process: a child forked from pytest starts
# with pytest's resident pages counted (hundreds of MB once the suite has loaded models), which
# its ru_maxrss would report; forked from this launcher it starts near 10 MB.
LAUNCHER = """
import os, resource, sys
cap, cpu, report, argv = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:]
pid = os.fork()
if pid == 0:
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    os.execv(argv[0], argv)
_, status, usage = os.wait4(pid, 0)
with open(report, "w") as out:
    out.write(f"{usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_capped(args: list[str]) -> Outcome:
    """Run ``args`` from the repository with the caps; its exit code, output, CPU seconds and
    peak RSS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env["MONITOR_MATCH__SEMANTIC"] = "false"
    with tempfile.TemporaryDirectory() as folder:
        report, out, err = (Path(folder, name) for name in ("rss", "out", "err"))
        with out.open("wb") as stdout, err.open("wb") as stderr:
            child = subprocess.Popen(
                [sys.executable, "-c", LAUNCHER, str(ADDRESS_SPACE_CAP_BYTES),
                 str(CPU_CAP_SECONDS), str(report), *args],
                cwd=REPO, env=env, stdout=stdout, stderr=stderr, start_new_session=True)
            killer = threading.Timer(DEADLINE_SECONDS, os.killpg, (child.pid, signal.SIGKILL))
            killer.start()
            try:
                code = child.wait()
            finally:
                killer.cancel()
        # Nothing reported: the launcher itself was killed (the hang guard).
        peak, cpu = (report.read_text() if report.exists() else "").split() or ("0", "inf")
        return Outcome(code, out.read_text(), err.read_text(), float(cpu), int(peak))


def bounded_refusal(outcome: Outcome, path: Path) -> str:
    """The one error line, after checking exit 2, CPU time and memory."""
    assert outcome.code == 2, (outcome.code, outcome.stderr[-2000:])
    assert outcome.cpu_seconds < CPU_LIMIT_SECONDS, outcome.cpu_seconds
    assert outcome.peak_rss_kb < PEAK_RSS_LIMIT_KB, outcome.peak_rss_kb
    line = outcome.stderr.strip().splitlines()[-1]
    assert line.startswith(f"monitor: error: {path}: line "), outcome.stderr
    return line


# Where the bomb sits in each file: under an entry's field that validation walks.
FILES = {
    "claims": ("claims:\n  - id: boom\n    text: A claim long enough to pass\n"
               "    keywords:\n      - first\n      - bomb:\n", "        "),
    "feeds": ("feeds:\n  - id: boom\n    source: Boom\n    url: https://boom.example/\n"
              "    tags:\n      - bomb:\n", "        "),
    "alerts": ("receivers:\n  - name: desk\n    urls: ['json://localhost']\nroute:\n"
               "  receiver: desk\n  routes:\n    - receiver: desk\n      matchers:\n"
               "        - bomb:\n", "            "),
}


@pytest.mark.parametrize("kind", sorted(FILES))
def test_check_refuses_an_alias_bomb_in_any_config_file_fast_with_bounded_memory(
        tmp_path: Path, kind: str) -> None:
    head, indent = FILES[kind]
    bomb = tmp_path / f"{kind}.yaml"
    bomb.write_text(head + laughs(9, indent=indent), encoding="utf-8")
    paths = {"feeds": REPO / "feeds.yaml", "claims": REPO / "claims.yaml",
             "alerts": REPO / "alerts" / "routes.yaml", kind: bomb}
    outcome = run_capped([sys.executable, "-m", "monitor", "check",
                          *(arg for name, path in paths.items()
                            for arg in (f"--{name}", str(path)))])
    first_line = len(head.splitlines()) + 1
    # The alias that crosses the limit is the second *l4, on level 5's line.
    assert bounded_refusal(outcome, bomb).startswith(
        f"monitor: error: {bomb}: line {first_line + 5}: alias *l4 makes the aliases stand for "
        "more than 100,000 nodes (a YAML alias bomb?)")


def test_claims_add_refuses_a_bombed_claims_file_and_leaves_it_alone(tmp_path: Path) -> None:
    bomb = tmp_path / "claims.yaml"
    text = "bomb:\n" + laughs(9, indent="  ") + "claims:\n" + CLAIM
    bomb.write_text(text, encoding="utf-8")
    outcome = run_capped([sys.executable, "-m", "monitor", "claims", "add", "--claims",
                          str(bomb), "--id", "new-claim", "--text", "Another claim worth tracking"])
    assert " line 7: alias *l4 " in bounded_refusal(outcome, bomb)
    assert bomb.read_text(encoding="utf-8") == text


RELOAD = """
import json, sys
from pathlib import Path
from monitor.match.registry import ClaimRegistry

path = Path(sys.argv[1])
registry = ClaimRegistry(path)
path.write_text(sys.argv[2], encoding="utf-8")  # another size: the change is seen
refreshed = registry.refresh()
print(json.dumps({"refreshed": refreshed,
                  "claims": [prepared.claim.id for prepared in registry.index.claims]}))
"""


def test_a_hot_reload_of_a_bombed_claims_file_keeps_the_claims_in_force(tmp_path: Path) -> None:
    claims = tmp_path / "claims.yaml"
    claims.write_text("claims:\n" + CLAIM, encoding="utf-8")
    bombed = "claims:\n" + CLAIM + "    tags: &tags [a]\nbomb:\n" + laughs(9, indent="  ")
    outcome = run_capped([sys.executable, "-c", RELOAD, str(claims), bombed])
    assert outcome.code == 0, outcome.stderr[-2000:]
    assert outcome.peak_rss_kb < PEAK_RSS_LIMIT_KB
    assert outcome.cpu_seconds < CPU_LIMIT_SECONDS, outcome.cpu_seconds
    assert json.loads(outcome.stdout) == {"refreshed": False, "claims": ["steady"]}
    assert "claims: keeping the 1 claims loaded before" in outcome.stderr
    assert f"{claims}: line 11: alias *l4 " in outcome.stderr
