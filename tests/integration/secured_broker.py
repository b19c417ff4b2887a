"""A broker with TLS, SASL/SCRAM-SHA-512 and ACLs: ``scripts/kafka-local`` in its secured mode.

:func:`secured_broker` starts one on free ports with its own data directory (the CA, the broker
certificate and the users' passwords are generated there at run time), grants each service
principal the ACLs the README's table documents (:func:`documented_acls`), and stops it at
the end.
The principal ``outsider`` has a password and no ACL at all; ``groupless`` has the worker's
ACLs but Read on its consumer group.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import subprocess
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.kafka import client_options
from shared.settings import Settings
from tests.integration.broker import (
    KAFKA_LOCAL,
    REPO_ROOT,
    BrokerStartError,
    _LocalBroker,
    free_ports,
)

RAW, ANOMALIES, DLQ, ALERTS = (
    "telemetry.raw",
    "telemetry.anomalies",
    "telemetry.dlq",
    "telemetry.alerts",
)
GROUP = "anomaly-scorer"
PRINCIPALS = ("worker", "api", "cli", "outsider", "groupless")


def documented_acls() -> tuple[tuple[str, str, str, str], ...]:
    """(principal, operation, resource type, name): the rows of the README's ACL table."""
    text = (REPO_ROOT / "README.md").read_text()
    table = text.split("<!-- kafka-acls: begin -->", 1)[1].split("<!-- kafka-acls: end -->", 1)[0]
    rows = [line.strip("|").split("|") for line in table.strip().splitlines()[2:]]
    return tuple((p.strip(), o.strip(), k.strip(), n.strip()) for p, o, k, n in rows)


@dataclass(frozen=True)
class SecuredBroker:
    """A running secured broker: its address, the CA clients trust, and the users' passwords."""

    bootstrap: str
    data_dir: Path
    passwords: dict[str, str]
    env: dict[str, str]

    @property
    def ca_file(self) -> Path:
        return self.data_dir / "security" / "ca.pem"

    def client_env(self, user: str, password: str | None = None) -> dict[str, str]:
        """The Kafka settings of a client that signs in as ``user`` (``password``: another)."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": user,
            "KAFKA_SASL_PASSWORD": password or self.passwords[user],
            "KAFKA_SSL_CAFILE": str(self.ca_file),
        }

    def settings(self, user: str) -> Settings:
        """Settings of a client signed in as ``user`` (``admin``: the super user)."""
        options: dict[str, Any] = {
            key.lower(): value for key, value in self.client_env(user).items()
        }
        return Settings(**options, _env_file=None)

    def acl(self, *args: str) -> str:
        """``scripts/kafka-local acl ARGS`` (Kafka's AclCommand as the super user)."""
        result = subprocess.run(
            [str(KAFKA_LOCAL), "acl", *args],
            env=self.env,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise BrokerStartError(
                f"kafka-local acl {args} failed:\n{result.stdout}{result.stderr}"
            )
        return result.stdout


def grant(broker: SecuredBroker, rows: Iterable[tuple[str, str, str, str]]) -> None:
    """Grant ``rows``, one AclCommand per principal and operation, three at a time."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for principal, operation, kind, name in rows:
        grouped.setdefault((principal, operation), []).extend([f"--{kind}", name])
    commands = [
        ("--add", "--allow-principal", f"User:{principal}", "--operation", operation, *resources)
        for (principal, operation), resources in grouped.items()
    ]
    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(lambda command: broker.acl(*command), commands))


def grant_documented(broker: SecuredBroker) -> None:
    """The README's ACLs; and for ``groupless`` the worker's, but Read on its group."""
    rows = documented_acls()
    groupless = [
        ("groupless", operation, kind, name)
        for principal, operation, kind, name in rows
        if principal == "worker" and kind != "group"
    ]
    grant(broker, [*rows, *groupless])


@contextlib.contextmanager
def secured_broker(data_root: Path) -> Iterator[SecuredBroker]:
    """Start a secured ``kafka-local`` on free ports; the documented ACLs granted; stop it."""
    passwords = {user: secrets.token_hex(16) for user in PRINCIPALS}
    port, controller_port = free_ports(2)
    local = _LocalBroker(data_root, port, controller_port)
    local.env["KAFKA_LOCAL_SECURITY"] = "sasl_ssl"
    local.env["KAFKA_LOCAL_USERS"] = " ".join(f"{u}:{p}" for u, p in passwords.items())
    try:
        result = local.start()
        if result.returncode != 0:
            raise BrokerStartError(
                f"kafka-local start (sasl_ssl) failed, exit {result.returncode}:\n{result.stdout}"
            )
        print(result.stdout, file=sys.stderr, end="")
        data_dir = Path(local.env["KAFKA_LOCAL_DATA"])
        admin_password = (data_dir / "security" / "admin.password").read_text().strip()
        broker = SecuredBroker(
            f"127.0.0.1:{port}", data_dir, {**passwords, "admin": admin_password}, local.env
        )
        grant_documented(broker)
        asyncio.run(create_service_topics(broker))
        yield broker
    finally:
        local.stop()


async def create_service_topics(broker: SecuredBroker, partitions: int = 3) -> None:
    """The raw, anomalies, dead-letter and alerts topics, created by the super user."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(**client_options(broker.settings("admin")))
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, partitions, 1) for name in (RAW, ANOMALIES, DLQ, ALERTS)]
        )
    finally:
        await admin.close()
