"""A body decodes to what ``json.loads`` gives, and is refused with the same problem."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from api.body import decode_json
from api.errors import ProblemError

ACCEPTED = [
    b'{"vehicle_id": "VH-1", "feature_vector": [0.1, -2, 3e5, 1E-7, -0.0, 0]}',
    b'{"a": 1, "a": 2}',  # the last of duplicate keys, in both
    b' \n{"nested": {"list": [[], {}, null, true, false]}}\t',
    b'{"text": "\\u00e9\\n\\"quoted\\" \\ud83d\\ude00", "raw": "\xc3\xa9"}',
    b'{"lone": "\\ud800"}',  # an escaped lone surrogate: msgspec refuses, json reads it
    b"[NaN, Infinity, -Infinity]",  # json reads them; validation refuses them later
    b"[1e400, -1e400]",  # out of float range: infinite, as json.loads makes them
    b"[123456789012345678901234567890, -9223372036854775809]",  # past 64 bits
]

REFUSED = [
    b"",
    b"   ",
    b'{"vehicle_id": "\xff"}',  # not UTF-8
    b'\xef\xbb\xbf{"a": 1}',  # a byte-order mark
    b'{"a": 1,}',
    b"[" * 100_000 + b"]" * 100_000,  # nested too deeply
    b"[1" + b"0" * 5_000 + b"]",  # an integer past Python's int-from-string limit
]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("raw", ACCEPTED)
def test_a_body_decodes_to_what_json_loads_gives(raw: bytes) -> None:
    """Values, types (an int stays an int) and key order alike."""
    assert _same(decode_json(raw), json.loads(raw.decode("utf-8")))


@pytest.mark.parametrize("raw", REFUSED)
def test_a_bad_body_is_a_problem_not_a_crash(raw: bytes) -> None:
    """Each is a 400 malformed-json problem, or the 422 of a missing body."""
    with pytest.raises(ProblemError) as caught:
        decode_json(raw)
    assert caught.value.status in (400, 422)
