"""docs/cli.md is generated from the real command tree; it must match (and every command has help)."""

from __future__ import annotations

from pathlib import Path

import typer

from locara_build.cli import app
from locara_build.cli.clidoc import render

REPO = Path(__file__).resolve().parent.parent


def test_cli_reference_is_current() -> None:
    expected = render(app)
    actual = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert actual == expected, "docs/cli.md is stale: run `python -m locara_build.cli.clidoc > docs/cli.md`"


def test_every_command_has_help_and_exit_codes_are_documented() -> None:
    root = typer.main.get_command(app)

    def walk(cmd, path):
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                yield from walk(sub, [*path, name])
        else:
            yield " ".join(path), cmd

    commands = dict(walk(root, []))
    for name in ("sync", "plan", "doctor", "build", "smoke", "package", "release", "publish", "install",
                 "weekly", "ci render", "patches check", "patches apply", "patches refresh", "patches bisect",
                 "models fetch", "keys generate"):
        assert name in commands, f"missing command: {name}"
    for name, cmd in commands.items():
        assert (cmd.help or "").strip(), f"`{name}` has no help text"
    text = render(app)
    for code in range(0, 11):
        assert f"| {code} |" in text
