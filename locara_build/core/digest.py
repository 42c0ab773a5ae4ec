"""Content hashes of files: one implementation for builds, packages, releases, downloads and models."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["sha256_file"]


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of a file's bytes, read in blocks (multi-GB models never sit in memory)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
