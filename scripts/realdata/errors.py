"""Why fetching the real data stopped; each message names the archive or file at fault.

RealDataError
 ├── DownloadError   a registry client is missing, failed, or did not leave the pinned archive
 ├── ArchiveError    the archive lacks a data file it is pinned to hold
 └── ChecksumError   a data file's SHA-256 differs from the pinned one
"""

from __future__ import annotations


class RealDataError(Exception):
    """Fetching or converting a recording failed."""


class DownloadError(RealDataError):
    """A registry client is missing, failed, or did not leave the pinned archive."""


class ArchiveError(RealDataError):
    """The archive lacks a data file it is pinned to hold."""


class ChecksumError(RealDataError):
    """A data file's SHA-256 differs from the pinned one."""
