"""The README's shell commands run as printed, in the environment its first command makes.

Every line of every fenced ``bash`` block of README.md is either run (with this environment's
``bin`` folder first on PATH, as ``source .venv/bin/activate`` puts it, in a scratch folder that
holds the checkout's sample scans, so that files they write stay out of the checkout) and must exit
with status 0, or matches one of :data:`SKIPPED`, each with its reason; a ``braintumor`` command
that is skipped still has its ``--help`` run, so that its sub-command exists. A line that is
neither fails the test: a new command in the README gets run or gets a reason.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BLOCK = re.compile(r"^```(?:bash|sh|shell|console)\n(.*?)^```", re.S | re.M)

# pattern (searched in the line) -> why the line is not run here
SKIPPED = {
    r"scripts/setup\.sh": "installs the environment (from the network) that these tests run in",
    r"braintumor serve": "starts a server that runs until stopped (tests/test_web.py serves on waitress)",
    r"curl .*127\.0\.0\.1:5000": "needs the server above running",
    r"braintumor (train|finetune)\b": "trains a network: minutes to hours (tests/test_training.py trains small ones)",
    r"\.\./shared": "needs the dataset beside the checkout (../shared), which a fresh clone lacks",
    r"--data DIR|Training/|runs/": "names a placeholder folder or a checkpoint that training writes",
    r"--db feedback\.sqlite": "needs the feedback database that 'serve --feedback' fills",
    r"^docker |^scripts/container-check\.sh": "builds or runs a container (no container engine in the tests)",
}


def readme_lines() -> list[str]:
    lines = []
    for block in BLOCK.findall(README.read_text(encoding="utf-8")):
        lines += [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]
    return lines


def skip_reason(line: str) -> str | None:
    return next((why for pattern, why in SKIPPED.items() if re.search(pattern, line)), None)


LINES = readme_lines()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A scratch folder laid out as the checkout is for these commands: tests/data/sample."""
    root = tmp_path_factory.mktemp("readme")
    (root / "tests" / "data").mkdir(parents=True)
    (root / "tests" / "data" / "sample").symlink_to(REPO / "tests" / "data" / "sample")
    return root


def run(line: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "BRAINTUMOR_NO_PROGRESS": "1"}
    return subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_readme_has_commands_and_every_one_is_run_or_has_a_reason():
    assert len(LINES) >= 15
    ran = [line for line in LINES if skip_reason(line) is None]
    assert any(line.startswith("braintumor predict") for line in ran)
    assert any(line.startswith("braintumor evaluate") for line in ran)


@pytest.mark.parametrize("line", [line for line in LINES if skip_reason(line) is None])
def test_a_readme_command_runs_as_printed(line, workdir):
    done = run(line, workdir)
    assert done.returncode == 0, f"{line}\n{done.stderr[-2000:]}"


SUBCOMMANDS = sorted({m.group(1) for line in LINES if skip_reason(line)
                      for m in [re.search(r"(?:^|&& |\.venv/bin/)braintumor (\w[\w-]*)", line)] if m})


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_a_skipped_readme_command_exists(sub, workdir):
    done = run(f"braintumor {sub} --help", workdir)
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr[-2000:]
