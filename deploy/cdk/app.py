#!/usr/bin/env python3
"""The vehicle-anomaly CDK app: ``cdk synth`` / ``cdk deploy`` from this directory, or run directly.

``python deploy/cdk/app.py`` writes the CloudFormation template to ``deploy/cdk/cdk.out``
without AWS credentials or Docker (pass ``-c image=...`` through the CLI, or set it in
``cdk.json``, to use a registry image; without one the image is built from the repository's
Dockerfile at deploy time). Context (``-c key=value``) is documented in ``docs/deploy.md``
and ``stacks/config.py``; ``cdk.json`` holds the defaults.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # `python deploy/cdk/app.py` from anywhere
    sys.path.insert(0, str(HERE))

import aws_cdk as cdk  # noqa: E402
from stacks.config import DeployConfig  # noqa: E402
from stacks.nag import add_checks  # noqa: E402
from stacks.service import VehicleAnomalyStack  # noqa: E402


def default_context() -> dict[str, Any]:
    """The ``context`` of cdk.json: what the CDK CLI would pass, for runs without the CLI."""
    return dict(json.loads((HERE / "cdk.json").read_text())["context"])


def build_app(
    context: Mapping[str, Any] | None = None, outdir: str | None = None
) -> tuple[cdk.App, VehicleAnomalyStack]:
    """The app with its one stack and the cdk-nag AwsSolutions checks.

    ``context`` overrides cdk.json's defaults (like ``-c``). Under the CDK CLI, which passes
    cdk.json and ``-c`` values itself, leave it ``None``.
    """
    if context is not None or "CDK_CONTEXT_JSON" not in os.environ:
        merged = {**default_context(), **(context or {})}
        app = cdk.App(context=merged, outdir=outdir)
    else:
        app = cdk.App(outdir=outdir)
    config = DeployConfig.from_context(app.node.try_get_context)
    env = cdk.Environment(
        account=os.environ.get("CDK_DEFAULT_ACCOUNT") or config.account,
        region=os.environ.get("CDK_DEFAULT_REGION") or config.region,
    )
    stack = VehicleAnomalyStack(
        app,
        config.stack_name,
        config=config,
        env=env,
        description="vehicle-anomaly: api + worker on Fargate, EFS model registry, MSK (IAM auth)",
    )
    cdk.Tags.of(stack).add("project", "vehicle-anomaly")
    add_checks(app)
    return app, stack


def main() -> None:
    outdir = os.environ.get("CDK_OUTDIR") or str(HERE / "cdk.out")
    app, _stack = build_app(outdir=outdir)
    app.synth()


if __name__ == "__main__":
    main()
