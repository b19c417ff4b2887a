"""Synthesized CDK templates for the deploy tests, one per MSK mode for the whole session.

Each mode is synthesized the way the CDK CLI does it: ``python deploy/cdk/app.py`` with
``CDK_OUTDIR`` and ``CDK_CONTEXT_JSON`` (cdk.json's context plus the test's values) in its
environment, so the tests also prove the app runs directly, without AWS credentials or Docker.
The two modes synthesize concurrently (jsii starts a Node.js process each; it takes seconds).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CDK_DIR = ROOT / "deploy" / "cdk"
TEST_IMAGE = "ghcr.io/vehicle-anomaly/vehicle-anomaly:0.1.0-test"
IMPORTED_CLUSTER_ARN = (
    "arn:aws:kafka:us-east-1:123456789012:cluster/fleet-kafka/"
    "0f1e2d3c-4b5a-6789-abcd-ef0123456789-2"
)
TEST_CERTIFICATE_ARN = (
    "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-4b5a-6789-abcd-ef0123456789"
)
# create: the production shape (HTTPS); import: a test stack's explicit plain HTTP.
MODES: dict[str, dict[str, Any]] = {
    "create": {"msk": "create", "certificate_arn": TEST_CERTIFICATE_ARN},
    "import": {
        "allow_http": "true",
        "msk": "import",
        "msk_cluster_arn": IMPORTED_CLUSTER_ARN,
        "msk_bootstrap_ssm_parameter": "/fleet/msk/bootstrap-brokers",
        "msk_security_group_id": "sg-0123456789abcdef0",
        "partitions": 6,  # the worker's max capacity follows it
    },
}
SYNTH_TIMEOUT_SECONDS = 240
# jsii prints a banner on every start under a Node.js major past its end of life (20 here);
# the variable takes the list of majors to stay quiet about ("1" would silence nothing).
# Set for this process too: aws_cdk.assertions.Template starts a jsii runtime in-process.
NODE_EOL_MAJORS = "18,20"
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", NODE_EOL_MAJORS)


@dataclass(frozen=True)
class Synthesis:
    """One synthesized mode: the stack's template, the validation report, how it went."""

    mode: str
    context: dict[str, Any]
    template: dict[str, Any]
    validation_report: dict[str, Any]
    metadata: dict[str, Any]
    returncode: int
    output: str
    seconds: float

    def acknowledgements(self, prefix: str = "Annotation::AwsSolutions-") -> dict[str, str]:
        """``{"<construct path> <rule>": reason}`` of the acknowledged validation findings."""
        found: dict[str, str] = {}
        for path, entries in self.metadata.items():
            for entry in entries:
                if entry.get("type") == "aws:cdk:acknowledged-rules":
                    for rule, reason in entry["data"].items():
                        if rule.startswith(prefix):
                            found[f"{path} {rule.removeprefix('Annotation::')}"] = reason
        return found

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return dict(self.template["Resources"])

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == kind}


def cdk_defaults() -> dict[str, Any]:
    return dict(json.loads((CDK_DIR / "cdk.json").read_text())["context"])


def _environment(outdir: Path, context: dict[str, Any]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    env.update(
        CDK_OUTDIR=str(outdir),
        CDK_CONTEXT_JSON=json.dumps(context),
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=NODE_EOL_MAJORS,
        JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION="1",
        JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION="1",
    )
    return env


@pytest.fixture(scope="session")
def syntheses(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Synthesis]:
    """Both MSK modes, synthesized once per session (concurrently)."""
    pytest.importorskip(
        "aws_cdk", reason="the deploy extra is not installed (uv sync --extra deploy)"
    )
    started = time.monotonic()
    running: dict[str, tuple[subprocess.Popen[str], Path, dict[str, Any]]] = {}
    for mode, overrides in MODES.items():
        outdir = tmp_path_factory.mktemp(f"cdk-{mode}")
        context = {**cdk_defaults(), "image": TEST_IMAGE, **overrides}
        process = subprocess.Popen(
            [sys.executable, str(CDK_DIR / "app.py")],
            cwd=CDK_DIR,
            env=_environment(outdir, context),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        running[mode] = (process, outdir, context)
    results: dict[str, Synthesis] = {}
    try:
        for mode, (process, outdir, context) in running.items():
            output, _ = process.communicate(timeout=SYNTH_TIMEOUT_SECONDS)
            stack_name = context["stack_name"]
            template_path = outdir / f"{stack_name}.template.json"
            if not template_path.exists():
                pytest.fail(f"cdk synth ({mode}) wrote no template:\n{output[-4000:]}")
            report_path = outdir / "validation-report.json"
            metadata_path = outdir / f"{stack_name}.metadata.json"
            results[mode] = Synthesis(
                mode=mode,
                context=context,
                template=json.loads(template_path.read_text()),
                validation_report=(
                    json.loads(report_path.read_text()) if report_path.exists() else {}
                ),
                metadata=(json.loads(metadata_path.read_text()) if metadata_path.exists() else {}),
                returncode=process.returncode,
                output=output,
                seconds=time.monotonic() - started,
            )
    finally:
        for process, _outdir, _context in running.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return results
