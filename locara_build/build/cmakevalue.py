"""CMake cache values: the one place that renders a Python value as a ``-D`` argument."""

from __future__ import annotations

CMakeValue = bool | int | str

__all__ = ["CMakeValue", "is_on", "render_define", "render_value"]


def render_value(value: CMakeValue) -> str:
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    return str(value)


def render_define(key: str, value: CMakeValue) -> str:
    return f"-D{key}={render_value(value)}"


def is_on(value: object) -> bool:
    """Whether a recipe's CMake switch is on (``true``, ``"ON"``, ``1``, ``"YES"``), as CMake reads it."""
    return str(value).upper() in ("TRUE", "ON", "1", "YES")
