"""Pointer files (LATEST, CANDIDATE) are data to validate: any bytes, one answer or one error."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import PointerFileError, RegistryError
from shared.registry import ModelRegistry
from shared.registry_files import read_pointer


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"20240115100000\n", "20240115100000"),
        (b"20240115100000-2", "20240115100000-2"),
        (b"", None),
        (b"  \n", None),
    ],
)
def test_a_version_name_or_nothing_reads_as_such(
    tmp_path: Path, content: bytes, expected: str | None
) -> None:
    """A version name (whitespace stripped) is returned; an empty file names nothing."""
    (tmp_path / "LATEST").write_bytes(content)
    assert read_pointer(tmp_path / "LATEST") == expected


def test_an_absent_pointer_is_none(tmp_path: Path) -> None:
    """No file: no version."""
    assert read_pointer(tmp_path / "CANDIDATE") is None


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe", b"\x00\x00", b"../etc/passwd", b"LATEST", b"2" * 14 + b"x", b"1" * 5000],
)
def test_any_other_content_is_a_registry_error(tmp_path: Path, content: bytes) -> None:
    """Bytes that are not UTF-8 or not a version name raise PointerFileError, nothing else."""
    (tmp_path / "LATEST").write_bytes(content)
    with pytest.raises(PointerFileError) as raised:
        read_pointer(tmp_path / "LATEST")
    assert isinstance(raised.value, RegistryError)
    assert "LATEST" in str(raised.value)
    assert len(str(raised.value)) < 200


def test_the_registry_reads_both_pointers_through_it(tmp_path: Path) -> None:
    """active_version and candidate_version refuse bad content the same way."""
    registry = ModelRegistry(tmp_path)
    (tmp_path / "LATEST").write_bytes(b"\xff")
    (tmp_path / "CANDIDATE").write_bytes(b"nonsense")
    with pytest.raises(PointerFileError):
        registry.active_version()
    with pytest.raises(PointerFileError):
        registry.candidate_version()
