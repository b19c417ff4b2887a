"""compose.yaml: valid Compose, and the same system that `make run` (scripts/run-local.py) starts.

The schema check needs no Docker (check-jsonschema ships the Compose Specification schema);
Compose v2's ``config`` needs no engine either: ``docker compose`` where the plugin is installed,
else the standalone ``docker-compose`` v2 that `make test` installs into .tools/test-bin.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
RUN_LOCAL = ROOT / "scripts" / "run-local.py"
APP_SERVICES = {"api": "api", "worker": "consumer"}
INTERPOLATION = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def load_compose() -> dict[str, Any]:
    return dict(YAML(typ="safe", pure=True).load(COMPOSE.read_text()))


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} with nothing set: the default ("<VAR>" for required ones)."""

    def replace(match: re.Match[str]) -> str:
        name, operator, default = match.groups()
        return default if operator in (":-", "-") else f"<{name}>"

    return INTERPOLATION.sub(replace, value.replace("$$", "$"))


def run_local_facts() -> dict[str, Any]:
    """What `make run` starts, read from scripts/run-local.py's source (not run).

    Tolerant of how the script is written: the ``[python, "-m", <module>]`` commands it
    builds, the keys of its ``service_env`` dict, and ``create_topics(..., partitions=N)``.
    """
    tree = ast.parse(RUN_LOCAL.read_text())
    modules: set[object] = set()  # constants of the source, str when it has the expected shape
    service_env: set[object] = set()
    partitions: list[Any] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.List) and len(node.elts) == 3:
            flag, module = node.elts[1], node.elts[2]
            if isinstance(flag, ast.Constant) and flag.value == "-m":
                assert isinstance(module, ast.Constant)
                modules.add(module.value)
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "service_env" for t in node.targets
        ):
            assert isinstance(node.value, ast.Dict)
            service_env |= {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "create_topics":
            partitions += [k.value.value for k in node.keywords if k.arg == "partitions"]  # type: ignore[attr-defined]  # a Constant in that file
    assert modules and service_env and partitions, "scripts/run-local.py changed shape"
    fields = Settings.model_fields
    return {
        "modules": modules,
        "service_env": service_env,
        "partitions": partitions[0],
        # run-local.py takes the topic names from Settings, whose defaults compose repeats.
        "topics": {
            name.upper(): fields[name].default
            for name in ("telemetry_topic", "anomaly_topic", "alert_topic", "dlq_topic")
        },
    }


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def make_run() -> dict[str, Any]:
    return run_local_facts()


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: interpolate(str(v)) for k, v in env.items()}


def test_compose_matches_the_compose_specification() -> None:
    """check-jsonschema validates compose.yaml against its vendored Compose Spec schema."""
    checker = shutil.which("check-jsonschema") or str(
        Path(sys.executable).parent / "check-jsonschema"
    )
    if not Path(checker).exists():
        pytest.skip("check-jsonschema is not installed (dev dependency)")
    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def compose_v2() -> list[str] | None:
    """The Compose v2+ command: ``docker compose`` (the plugin), else a v2+ ``docker-compose``.

    `make test` installs the standalone binary into .tools/test-bin (scripts/install-test-tools);
    a v1 ``docker-compose`` (Debian bookworm's 1.29) does not know the Compose Specification.
    """
    candidates: list[list[str]] = []
    if docker := shutil.which("docker"):
        candidates.append([docker, "compose"])
    if standalone := shutil.which("docker-compose"):
        candidates.append([standalone])
    for command in candidates:
        probe = subprocess.run(
            [*command, "version", "--short"], capture_output=True, text=True, check=False
        )
        major = probe.stdout.strip().removeprefix("v").partition(".")[0]
        if probe.returncode == 0 and major.isdigit() and int(major) >= 2:
            return command
    return None


def test_docker_compose_config_accepts_it() -> None:
    """Compose v2's `config` resolves the file: interpolation, merges, depends_on, env_file."""
    command = compose_v2()
    if command is None:
        pytest.skip(
            "no Compose v2 (docker compose plugin or docker-compose v2); make test installs it"
        )
    result = subprocess.run(
        [*command, "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "API_KEYS": "compose-test-key",
            "MODEL_SIGNING_KEY": "compose-test-signing",
        },
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_services_run_what_make_run_runs(compose: dict[str, Any], make_run: dict[str, Any]) -> None:
    """api and worker are `python -m api` / `python -m consumer`, as run-local.py starts them."""
    assert make_run["modules"] == set(APP_SERVICES.values())
    services = compose["services"]
    for service, module in APP_SERVICES.items():
        assert services[service]["command"] == ["python", "-m", module]
        assert services[service]["build"]["dockerfile"] == "Dockerfile"
    assert services["api"]["image"] == services["worker"]["image"]


def test_same_environment_as_make_run(compose: dict[str, Any], make_run: dict[str, Any]) -> None:
    """The settings run-local.py sets are set for both services; Kafka is the kafka service."""
    services = compose["services"]
    fields = {name.upper() for name in Settings.model_fields}
    expected = make_run["service_env"] & fields  # PYTHONUNBUFFERED & co. are in the image
    for service in APP_SERVICES:
        env = environment(services[service])
        assert expected <= set(env), expected - set(env)
        host, _, port = env["KAFKA_BOOTSTRAP_SERVERS"].partition(":")
        assert host == "kafka"
        kafka_env = environment(services["kafka"])
        assert f"//kafka:{port}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
        for name, default in make_run["topics"].items():
            assert env[name] == default


def test_topics_created_like_make_run(compose: dict[str, Any], make_run: dict[str, Any]) -> None:
    """kafka-init creates run-local.py's four topics with its partition count."""
    init = compose["services"]["kafka-init"]
    script = interpolate("\n".join(init["command"]))
    init_env = environment(init)
    assert "--create --if-not-exists" in script
    assert f"--partitions {make_run['partitions']}" in script
    for name, default in make_run["topics"].items():
        assert f'"${name}"' in script
        assert init_env[name] == default
    assert init["image"] == compose["services"]["kafka"]["image"]
    assert re.fullmatch(r"apache/kafka:4\.1\.\d+", init["image"])


def test_model_volume_is_shared(compose: dict[str, Any]) -> None:
    """Both services mount one named volume at their MODEL_DIR."""
    mounts = set()
    for service in APP_SERVICES:
        spec = compose["services"][service]
        model_dir = environment(spec)["MODEL_DIR"]
        (volume,) = [v for v in spec["volumes"] if v.endswith(":" + model_dir)]
        mounts.add(volume)
    assert len(mounts) == 1
    (mount,) = mounts
    assert mount.split(":")[0] in compose["volumes"]


def test_every_variable_is_a_setting(compose: dict[str, Any]) -> None:
    """The services' variables, and every ${VAR} in the file, are Settings fields."""
    fields = {name.upper() for name in Settings.model_fields}
    for service in APP_SERVICES:
        names = set(compose["services"][service]["environment"])
        assert names <= fields, names - fields
    interpolated = {m.group(1) for m in INTERPOLATION.finditer(COMPOSE.read_text())}
    assert interpolated <= fields, interpolated - fields


def test_health_checks_and_start_order(compose: dict[str, Any]) -> None:
    """Every service has a health check; the apps wait for a healthy broker and the topics."""
    services = compose["services"]
    for name, spec in services.items():
        assert spec.get("healthcheck", {}).get("test"), f"{name} has no health check"
    for service, module in APP_SERVICES.items():
        spec = services[service]
        assert spec["depends_on"] == {
            "kafka": {"condition": "service_healthy"},
            "kafka-init": {"condition": "service_completed_successfully"},
        }
        probe = " ".join(spec["healthcheck"]["test"])
        port = environment(spec)["API_PORT" if module == "api" else "CONSUMER_PORT"]
        assert f"127.0.0.1:{port}/healthz" in probe
        assert spec["env_file"] == [{"path": ".env", "required": False}]
    assert services["kafka-init"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert "kafka-broker-api-versions.sh" in " ".join(services["kafka"]["healthcheck"]["test"])
