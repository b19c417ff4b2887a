"""The ingest route's error mapping: a directory that cannot be written is a 503 that says so."""

from __future__ import annotations

import errno
from pathlib import Path

from api.routes.ingest import unwritable_registry
from shared.errors import RegistryError, error_kind


def test_a_read_only_directory_is_named_read_only() -> None:
    """EROFS, EACCES and EPERM read as "read-only", with the directory and the OS's words."""
    for code in (errno.EROFS, errno.EACCES, errno.EPERM):
        error = unwritable_registry(Path("/models"), OSError(code, "Read-only file system"))
        assert isinstance(error, RegistryError)
        assert "/models is read-only" in str(error)
        assert error_kind(error).status == 503


def test_another_write_failure_is_a_503_too() -> None:
    """A full disk is no 500 either: the same problem type, its own words."""
    error = unwritable_registry(Path("/models"), OSError(errno.ENOSPC, "No space left on device"))
    assert "cannot be written" in str(error)
    assert "No space left" in str(error)
