"""cdk-nag (AwsSolutions) on the app, and the findings this stack accepts, each with its reason.

cdk-nag 3 reports through CDK's policy-validation plugins (``Validations.of(app)``): an
unacknowledged finding makes ``app.synth()`` (and so ``cdk synth`` / ``cdk deploy``) fail with
the report. A finding is accepted with ``Validations.of(construct).acknowledge(...)``, which
covers the construct and everything under it; findings with a detail (``IAM5[Resource::*]``)
are acknowledged one by one.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def add_checks(app: App) -> None:
    """Run the AwsSolutions rule pack on every stack of ``app`` at synthesis."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """Accept ``rule``'s findings on ``construct`` (and its children), saying why."""
    if len(reason) < 20:
        raise ValueError(f"{rule}: say why it is acknowledged")
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))
