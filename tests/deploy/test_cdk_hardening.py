"""The stack's defaults that keep the api's keys safe: HTTPS with port 80 redirected.

``create`` is synthesized with a certificate (the production shape), ``import`` with
``-c allow_http=true`` (a test stack); see tests/deploy/conftest.py.
"""

from __future__ import annotations

import pytest

from tests.deploy.conftest import TEST_CERTIFICATE_ARN, Synthesis

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
