"""Reading signing credentials from the environment: a value names a file, or is the content."""

from __future__ import annotations

from pathlib import Path

__all__ = ["names_a_file"]


def names_a_file(value: str) -> bool:
    """Whether a secret's value names a file (else it is the content). Never raises: the value may be
    kilobytes of base64 that the OS refuses as a path, and an exception message would quote it."""
    if not value or "\n" in value or len(value) > 1024:
        return False
    try:
        return Path(value).is_file()
    except (OSError, ValueError):
        return False
