"""CMake cache values: the one place that renders a Python value as a ``-D`` argument."""

from __future__ import annotations

CMakeValue = bool | int | str

__all__ = ["CMakeValue", "render_define", "render_value"]


def render_value(value: CMakeValue) -> str:
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    return str(value)


def render_define(key: str, value: CMakeValue) -> str:
    return f"-D{key}={render_value(value)}"
