"""What `make run` needs before it starts anything: Java 17+, Maven the first time, free ports."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from runlocal.common import VAR


def java_command() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and os.access(Path(home) / "bin" / "java", os.X_OK):
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def java_major(java: str) -> int | None:
    try:
        output = subprocess.run(
            [java, "-XshowSettings:properties", "-version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stderr
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"java\.specification\.version = (?:1\.)?(\d+)", output)
    return int(match.group(1)) if match else None


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def check_prerequisites(api_host: str, api_port: int, consumer_port: int) -> None:
    """Name everything that is missing, then stop; start nothing."""
    missing = []
    java = java_command()
    if java is None:
        missing.append(
            "Java 17 or newer, for the local Kafka broker: install a JDK "
            "(e.g. apt-get install openjdk-17-jre-headless, brew install openjdk@17) or set JAVA_HOME"
        )
    else:
        major = java_major(java)
        if major is None or major < 17:
            missing.append(
                f"Java 17 or newer ({java} is version {major or 'unknown'}): "
                "put a newer java on PATH or set JAVA_HOME"
            )
    home = Path(os.environ.get("KAFKA_LOCAL_HOME") or VAR / "kafka")
    if not (home / "lib" / ".kafka-local-complete").exists() and shutil.which("mvn") is None:
        missing.append(
            "Maven (mvn), needed once to fetch the Kafka broker's jars from Maven Central "
            "(e.g. apt-get install maven, brew install maven)"
        )
    for name, host, port in (
        ("API_PORT", api_host, api_port),
        ("CONSUMER_PORT", "0.0.0.0", consumer_port),  # noqa: S104 (the worker binds all interfaces)
    ):
        if not port_free(port, host if host not in ("", "localhost") else "127.0.0.1"):
            missing.append(
                f"port {port} is in use ({name}): is `make run` already running? "
                f"Stop it, or choose another port with {name}=..."
            )
    if missing:
        for item in missing:
            print(f"make run: missing: {item}", file=sys.stderr)
        raise SystemExit(1)
