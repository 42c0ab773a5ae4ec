"""Release versions: ``YYYY.MM.DD-<upstream id>-r<N>``.

``<upstream id>`` is the upstream tag (``b7123``, ``v0.4.0``) or ``g`` + the short commit;
``YYYY.MM.DD`` is the upstream commit's date (UTC) and ``N`` the locara revision on top of that
commit. The string sorts upward week to week; exact ordering uses (commit time, revision),
which release.json carries in full.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import total_ordering

from locara_build.core.errors import ConfigError

__all__ = ["Version", "make_version", "parse_utc"]

# matched with re.fullmatch: `$` would accept a trailing newline. The identifier never starts with a
# dot and never holds `..`, so a version is always one plain path component (versions/<version>).
_RE = re.compile(r"(?P<date>\d{4}\.\d{2}\.\d{2})-(?P<ident>[A-Za-z0-9_](?:[A-Za-z0-9_]|\.(?!\.))*)-r(?P<rev>\d{1,9})")


@total_ordering
@dataclass(frozen=True)
class Version:
    commit_time: datetime  # UTC
    ident: str
    revision: int

    def __str__(self) -> str:
        return f"{self.commit_time:%Y.%m.%d}-{self.ident}-r{self.revision}"

    @property
    def key(self) -> tuple[float, int]:
        return (self.commit_time.timestamp(), self.revision)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.key < other.key

    @classmethod
    def parse(cls, text: str, commit_time: str | None = None) -> Version:
        """Parse a version string; ``commit_time`` (ISO, from release.json) refines same-day order."""
        m = _RE.fullmatch(text) if isinstance(text, str) else None
        if not m:
            raise ConfigError(
                f"{text!r} is not a locara-build version (expected YYYY.MM.DD-<tag|gSHORT>-rN).",
                hint="Use a version listed in the release's release.json, or `latest`.",
            )
        try:
            when = datetime.strptime(m["date"], "%Y.%m.%d").replace(tzinfo=UTC)
        except ValueError:
            raise ConfigError(f"{text!r}: {m['date']} is not a date.", hint="Use a version listed in release.json.") from None
        if commit_time is not None:
            exact = parse_utc(commit_time, "upstream.commit_date")
            if exact.date() == when.date():
                when = exact
        return cls(when, m["ident"], int(m["rev"]))


def parse_utc(text: object, field: str) -> datetime:
    """An ISO 8601 time *with* a timezone (``Z`` or ``+hh:mm``), as UTC; else ConfigError naming ``field``."""
    if not isinstance(text, str) or len(text) > 64:
        raise ConfigError(f"`{field}` must be an ISO 8601 time string, not {text!r:.80}.", hint="Report the release.")
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"`{field}` is not an ISO 8601 time: {text!r}.", hint="Report the release.") from None
    if when.tzinfo is None:
        raise ConfigError(f"`{field}` has no timezone: {text!r} (expected e.g. 2026-10-01T10:00:00Z).", hint="Report the release.")
    return when.astimezone(UTC)


def make_version(commit_date: str, tag: str, commit: str, revision: int) -> Version:
    when = datetime.fromisoformat(commit_date.replace("Z", "+00:00")).astimezone(UTC)
    ident = tag if tag else f"g{commit[:7]}"
    return Version(when, ident, revision)
