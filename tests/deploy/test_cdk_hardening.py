"""The stack's defaults that keep the api's keys and the tasks safe: HTTPS, read-only roots.

``create`` is synthesized with a certificate (the production shape), ``import`` with
``-c allow_http=true`` (a test stack); see tests/deploy/conftest.py.
"""

from __future__ import annotations

import pytest

from tests.deploy.conftest import TEST_CERTIFICATE_ARN, Synthesis
from tests.deploy.test_cdk import app_containers, task_of

pytestmark = pytest.mark.parametrize("mode", ["create", "import"])


def listeners(synthesis: Synthesis) -> dict[int, dict[str, object]]:
    return {
        int(listener["Properties"]["Port"]): listener["Properties"]
        for listener in synthesis.of_type("AWS::ElasticLoadBalancingV2::Listener").values()
    }


def test_the_api_is_https_with_80_redirected_unless_http_is_allowed(
    syntheses: dict[str, Synthesis], mode: str
) -> None:
    """With a certificate: HTTPS on 443 and 80 redirected to it; allow_http: HTTP on 80 only."""
    found = listeners(syntheses[mode])
    if mode == "import":
        assert set(found) == {80} and found[80]["Protocol"] == "HTTP"
        return
    assert set(found) == {80, 443}
    assert found[443]["Protocol"] == "HTTPS"
    assert found[443]["Certificates"] == [{"CertificateArn": TEST_CERTIFICATE_ARN}]
    assert str(found[443]["SslPolicy"]).startswith("ELBSecurityPolicy-TLS")
    assert found[80]["Protocol"] == "HTTP"
    assert found[80]["DefaultActions"] == [
        {
            "Type": "redirect",
            "RedirectConfig": {"Port": "443", "Protocol": "HTTPS", "StatusCode": "HTTP_301"},
        }
    ]


def test_app_containers_have_read_only_roots_and_a_tmp_volume(
    syntheses: dict[str, Synthesis], mode: str
) -> None:
    """Both services run on a read-only root filesystem; /tmp is task storage, MODEL_DIR is EFS."""
    synthesis = syntheses[mode]
    for name, container in app_containers(synthesis).items():
        assert container["ReadonlyRootFilesystem"] is True, name
        volumes = {v["Name"]: v for v in task_of(synthesis, name)["Properties"]["Volumes"]}
        writable = {m["ContainerPath"]: m for m in container["MountPoints"] if not m["ReadOnly"]}
        tmp = writable["/tmp"]
        # No host path and no EFS: Fargate's ephemeral task storage, gone with the task.
        assert volumes[tmp["SourceVolume"]] == {"Name": tmp["SourceVolume"]}
        expected = {"/tmp", "/var/lib/vehicle-anomaly/models"} if name == "api" else {"/tmp"}
        assert set(writable) == expected
