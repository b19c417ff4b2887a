"""Fetching the pinned archives with the registries' own clients, and taking the files out.

Archives are kept in ``CACHE/archives`` and fetched only when missing. Every data file is
checked against its pinned SHA-256 each time it is read, so a changed archive stops the run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from .errors import ArchiveError, ChecksumError, DownloadError
from .sources import Archive, Source


def pip_command() -> list[str]:
    """How to run pip: $PIP, else this interpreter's pip, else pip3 or pip on PATH."""
    explicit = os.environ.get("PIP", "").strip()
    if explicit:
        return [explicit]
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    for name in ("pip3", "pip"):
        found = shutil.which(name)
        if found:
            return [found]
    raise DownloadError("pip is needed to download from PyPI: install it, or set PIP=/path/to/pip")


def npm_command() -> list[str]:
    found = shutil.which("npm")
    if found is None:
        raise DownloadError(
            "npm is needed to download from the npm registry: install Node.js "
            "(e.g. apt-get install npm, brew install node)"
        )
    return [found]


def fetch_command(archive: Archive, dest: Path) -> list[str]:
    """The registry client's command that leaves ``archive`` in ``dest``."""
    if archive.registry == "pypi":
        return [
            *pip_command(),
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--dest",
            str(dest),
            *archive.pip_options,
            archive.spec,
        ]
    return [*npm_command(), "pack", archive.spec, "--pack-destination", str(dest)]


def run(argv: list[str]) -> None:
    print("+", " ".join(argv), file=sys.stderr, flush=True)
    try:
        # the clients' progress goes to stderr: stdout carries only what was written
        result = subprocess.run(argv, stdout=sys.stderr, check=False)
    except OSError as error:
        raise DownloadError(f"cannot run {argv[0]}: {error.strerror or error}") from None
    if result.returncode != 0:
        raise DownloadError(f"{' '.join(argv[:2])} exited with status {result.returncode}")


def fetch(archive: Archive, cache: Path) -> Path:
    """The archive's path in ``cache/archives``, downloading it first if it is not there."""
    archives = cache / "archives"
    target = archives / archive.filename
    if target.exists():
        return target
    archives.mkdir(parents=True, exist_ok=True)
    # download into a scratch directory, so an interrupted download leaves no partial archive
    with tempfile.TemporaryDirectory(prefix=".download-", dir=archives) as scratch:
        run(fetch_command(archive, Path(scratch)))
        left = Path(scratch) / archive.filename
        if not left.is_file():
            found = ", ".join(sorted(p.name for p in Path(scratch).iterdir())) or "nothing"
            raise DownloadError(
                f"{archive.spec}: expected {archive.filename} from the registry, got {found}"
            )
        left.replace(target)
    return target


def read_member(path: Path, member: str) -> bytes:
    """One file's bytes out of a wheel, zip or tar archive."""
    try:
        if path.suffix in (".whl", ".zip"):
            with zipfile.ZipFile(path) as wheel:
                return wheel.read(member)
        with tarfile.open(path) as tar:
            handle = tar.extractfile(member)
            if handle is None:
                raise ArchiveError(f"{path.name}: {member} is not a regular file")
            return handle.read()
    except KeyError:
        raise ArchiveError(f"{path.name}: has no {member}") from None
    except (zipfile.BadZipFile, tarfile.TarError, OSError) as error:
        raise ArchiveError(
            f"{path}: cannot read the archive ({error}); delete it to download it again"
        ) from None


def verify(data: bytes, expected: str, where: str) -> None:
    """Refuse data whose SHA-256 is not the pinned one."""
    got = hashlib.sha256(data).hexdigest()
    if got != expected:
        raise ChecksumError(
            f"{where}: SHA-256 is {got}, but {expected} is pinned; "
            "the archive is not the one these recordings were checked on"
        )


def load(source: Source, cache: Path) -> list[bytes]:
    """The source's data files, in order, each checked against its SHA-256."""
    path = fetch(source.archive, cache)
    found = []
    for item in source.files:
        data = read_member(path, item.member)
        verify(data, item.sha256, f"{path.name}: {item.member}")
        found.append(data)
    return found
