"""Release notes (RELEASE_NOTES.md) written by two real `weekly` runs of the stand-in pipeline:
a first release, then upstream moves on by three commits, a patch is added and the next release
names the range, the commits, the patch changes, each artifact's size change and its smoke coverage.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from support.faults import RECIPE, TAG, make_patch, prepared_env

from locara_build.release.notes import _delta


def _notes(env, version: str) -> str:
    return (env.work / "releases" / version / "RELEASE_NOTES.md").read_text()


def _section(text: str, title: str) -> list[str]:
    body = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in body.splitlines() if line.strip()]


def test_notes_of_a_first_release_and_of_an_upstream_bump(tmp_path: Path) -> None:
    env = prepared_env(tmp_path / "e", release=True)
    first = json.loads((env.work / "reports" / "weekly-latest.json").read_text())["version"]
    old_commit = env.up.rev(TAG)
    notes = _notes(env, first)
    assert notes.startswith(f"# locara-server {first}\n")
    upstream = _section(notes, "Upstream llama.cpp")
    assert upstream == [f"- First release: {TAG} ({old_commit[:12]}) from {upstream[0].split(' from ')[1]}"]
    assert _section(notes, "Patches") == [f"- `{env.patch_name}` (applied): stand-in: mark the banner as patched"]
    rows = [line for line in _section(notes, "Artifacts") if line.startswith("| `")]
    assert len(rows) == 1 and "| new |" in rows[0] and rows[0].endswith("| passed on CPU |"), rows

    subjects = ["docs: first change", "docs: second change", "ci: third change"]
    for i, subject in enumerate(subjects):
        env.up.commit(subject, {"README.md": f"stand-in {i}\n"}, tag="b101" if i == 2 else None)
    new_commit = env.up.rev("b101")
    second_patch = make_patch(env.up, env.project / "patches", old='    perror("execv");\n',
                              new='    perror("execv (locara)");\n',
                              subject="stand-in: say who built it")
    series = env.project / "patches" / "series"
    series.write_text(series.read_text() + f"{second_patch}\n")

    res = env.cli(*env.weekly_args())
    assert res.returncode == 0, res.stderr
    second = json.loads((env.work / "reports" / "weekly-latest.json").read_text())["version"]
    assert second != first
    notes = _notes(env, second)
    upstream = _section(notes, "Upstream llama.cpp")
    assert re.fullmatch(rf"- {TAG} \({old_commit[:12]}\) \(\S+\) -> b101 \({new_commit[:12]}\) \(\S+\)\.", upstream[0]), upstream
    assert upstream[1] == "- 3 upstream commit(s) in between."
    assert upstream[2] == "Notable upstream changes:"
    # newest first, each with its abbreviated hash, as `git log` gives them
    assert [re.sub(r"^- [0-9a-f]{7,} ", "", line) for line in upstream[3:]] == subjects[::-1]
    assert _section(notes, "Patches") == [
        f"- `{env.patch_name}` (unchanged): stand-in: mark the banner as patched",
        f"- `{second_patch}` (added): stand-in: say who built it",
    ]
    rows = [line for line in _section(notes, "Artifacts") if line.startswith("| `")]
    manifest = json.loads((env.work / "releases" / second / "release.json").read_text())
    previous = json.loads((env.work / "releases" / first / "release.json").read_text())
    (art,) = manifest["artifacts"]
    (old_art,) = previous["artifacts"]
    assert art["recipe"] == RECIPE and art["smoke"]["coverage"] == "full" and art["smoke"]["ran_on"] == "CPU"
    assert rows == [
        f"| `{art['file']}` | {art['size'] / (1 << 20):.1f} MiB | {_delta(art['size'], old_art['size'])} "
        f"| `{art['sha256'][:16]}…` | full | passed on CPU |"
    ]

    # the `release` stage re-issuing the same version (--force) writes the same notes, not none
    # (it used to drop RELEASE_NOTES.md: only weekly rendered them)
    weekly_notes = notes
    res = env.cli("release", "-r", RECIPE, "--key", str(env.key_file), "--force")
    assert res.returncode == 0, res.stderr
    assert _notes(env, second) == weekly_notes
    sums = (env.work / "releases" / second / "SHA256SUMS").read_text()
    assert "RELEASE_NOTES.md" in sums  # signed with the rest


def test_size_change_cell() -> None:
    assert _delta(1000, None) == "new"
    assert _delta(1000, 1000) == "same"
    assert _delta(12801735, 12801760) == "-25 B (-<0.1 %)"  # a BUILDINFO line, not "-0.0 KiB (-0.0 %)"
    assert _delta(1_100_000, 1_000_000) == "+97.7 KiB (+10.0 %)"
    assert _delta(2_000_000, 1_000_000) == "+976.6 KiB (+100.0 %)"
    assert _delta(1_000_000, 2_000_000) == "-976.6 KiB (-50.0 %)"
