"""The memory attacks of one key holder, replayed over real HTTP against ``python -m api``.

Each test sends what exhausted the process before (concurrent bodies of tens of megabytes)
while it probes ``/healthz``, and checks the answers, that every probe was answered, and the
process's peak resident memory (``VmHWM``) against a generous bound. How fast ``/healthz``
answers under these attacks is measured by ``bench/api_attack.py``, not asserted here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from tests.integration.api_helpers import AUTH, Server, start_api, stop_api

MiB = 1024 * 1024
# The Fargate task has 1 GiB; the process must stay well inside it.
PEAK_BOUND = 900 * MiB


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    api = start_api(tmp_path_factory.mktemp("attacks"))
    yield api
    stop_api(api)


async def _probe(client: httpx.AsyncClient, stop: asyncio.Event) -> list[int]:
    statuses = []
    while not stop.is_set():
        statuses.append((await client.get("/healthz", timeout=30)).status_code)
        await asyncio.sleep(0.05)
    return statuses


async def _post(client: httpx.AsyncClient, path: str, body: bytes) -> int | str:
    try:
        response = await client.post(
            path, content=body, headers={**AUTH, "Content-Type": "application/json"}, timeout=120
        )
    except httpx.TransportError as error:  # refused from Content-Length while still sending
        return type(error).__name__
    if response.status_code == 503:
        assert int(response.headers["Retry-After"]) >= 1
    return response.status_code


async def _attack(server: Server, path: str, body: bytes, copies: int) -> list[int | str]:
    async with httpx.AsyncClient(base_url=server.base_url) as probe_client:
        stop = asyncio.Event()
        probe = asyncio.create_task(_probe(probe_client, stop))
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            answers = await asyncio.gather(*(_post(client, path, body) for _ in range(copies)))
        stop.set()
        probes = await probe
    assert probes and set(probes) == {200}
    return list(answers)


async def test_four_60_mb_score_bodies_are_refused(server: Server) -> None:
    """Four concurrent 60 MB /score bodies: 413 from Content-Length, memory stays flat."""
    before = server.peak_rss_bytes()
    body = b'{"vehicle_id": "VH-1", "pad": "' + b"x" * (60 * MiB) + b'"}'
    answers = await _attack(server, "/score", body, 4)
    assert all(a in (413, "WriteError", "RemoteProtocolError", "ReadError") for a in answers)
    refused = [
        line for line in server.log_lines() if line.get("path") == "/score" and line.get("status")
    ]
    assert [line["status"] for line in refused] == [413] * 4  # whatever the client saw
    assert server.peak_rss_bytes() < before + 64 * MiB


async def test_eight_big_ingests_are_bounded(server: Server) -> None:
    """Eight concurrent /ingest of 10,000 x 256 features: some train, the rest get 503."""
    rng = np.random.default_rng(0)
    rows = np.round(rng.normal(size=(10_000, 256)), 6).tolist()
    body = json.dumps(
        {
            "records": [
                {
                    "vehicle_id": f"VH-{i % 50}",
                    "timestamp": f"2024-01-15T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
                    "feature_vector": row,
                }
                for i, row in enumerate(rows)
            ],
            "params": {"detector": "point", "n_estimators": 10},
        }
    ).encode()
    del rows
    answers = await _attack(server, "/ingest", body, 8)
    assert set(answers) <= {201, 503}
    assert 201 in answers
    assert 503 in answers
    assert server.peak_rss_bytes() < PEAK_BOUND


def test_server_survived(server: Server) -> None:
    """After the attacks the api still answers and logged no 500."""
    assert httpx.get(server.base_url + "/healthz").status_code == 200
    assert not [line for line in server.log_lines() if line.get("status") == 500]
