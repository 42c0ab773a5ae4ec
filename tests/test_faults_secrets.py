"""Fault suite: secrets never appear in output, logs, reports or artifacts.

Every credential variable locara-build knows (redact.SECRET_ENV) holds a sentinel; the minisign key
comes from $LOCARA_MINISIGN_KEY (its base64 line is a sentinel too). The upstream is hostile: its
CMakeLists prints every one of those variables into the build log and compiles them into the
shipped binary, and the server under smoke test prints them into its log. Then the commands that
use secrets run with -v, succeeding (weekly: build, smoke, package, release, publish to the GitHub
stand-in) and failing (a wrong key password, a refused token, a bad PKCS#12, an upstream URL with
credentials that cannot be reached). No sentinel may show up in any stdout / stderr, in any file
under the work dir or the project, or in anything uploaded.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from support.faults import HOSTILE_CMAKE, HOSTILE_MAIN, GitHubStandIn, closed_port, prepared_env, run_cli

from locara_build.core.redact import SECRET_ENV
from locara_build.release.signing import minisign
from locara_build.upstream.source import parse_source

PASSWORD = "SENTINEL-minisign-pw-5b1e"
SENTINELS = {
    "LOCARA_MINISIGN_PASSWORD": PASSWORD,
    "LOCARA_AUTHENTICODE_PASSWORD": "SENTINEL-authenticode-pw-91c4",
    "LOCARA_AUTHENTICODE_P12": base64.b64encode(b"SENTINEL-p12-bytes-0e77" * 3).decode(),
    "LOCARA_NOTARY_KEY": "-----BEGIN PRIVATE KEY-----\nSENTINEL-notary-key-3d02\n-----END PRIVATE KEY-----",
    "GITHUB_TOKEN": "ghs_SENTINELgithubtoken4f1a9",
    "LOCARA_GITHUB_TOKEN": "ghs_SENTINELlocaratoken8c2d7",
}
URL_PASSWORD = "SENTINEL-url-pw-77aa"
URL_TOKEN = "SENTINELurltoken0c3b"


def _grep(blob: bytes, needles: dict[str, bytes]) -> list[str]:
    return [name for name, needle in needles.items() if needle in blob]


def test_sentinel_secrets_never_leak(tmp_path: Path) -> None:
    assert set(SENTINELS) | {"LOCARA_MINISIGN_KEY"} == set(SECRET_ENV), "a new secret variable: add a sentinel"
    env = prepared_env(tmp_path)
    key = minisign.generate()
    key_text = key.to_text(PASSWORD, limits=minisign.INTERACTIVE)
    key_line = key_text.splitlines()[1]
    secrets = {**SENTINELS, "LOCARA_MINISIGN_KEY": key_text}
    needles = {k: v.encode() for k, v in SENTINELS.items() if k != "LOCARA_NOTARY_KEY"}
    needles |= {"notary": b"SENTINEL-notary-key-3d02", "minisign key": key_line.encode(), "p12 raw": b"SENTINEL-p12-bytes",
                "url password": URL_PASSWORD.encode(), "url token": URL_TOKEN.encode()}

    # the upstream turns hostile: b101 dumps the build's environment into the log and the binary
    cmake = env.up.read("CMakeLists.txt") + HOSTILE_CMAKE
    main_c = env.up.read("main.c") + HOSTILE_MAIN
    env.up.commit("build: add diagnostics (#6666)", {"CMakeLists.txt": cmake, "main.c": main_c}, tag="b101")

    outputs: list[tuple[str, str]] = []

    def cli(*args: str, expect: int, extra: dict[str, str] | None = None) -> None:
        res = run_cli(*env.base(), "-v", *args, env={**env.env, **secrets, **(extra or {})}, timeout=300)
        outputs.append((" ".join(args), res.stdout + res.stderr))
        assert res.returncode == expect, f"{args}: exit {res.returncode}\n{res.stderr[-4000:]}"

    with GitHubStandIn(SENTINELS["LOCARA_GITHUB_TOKEN"]) as gh:
        gh_env = {"LOCARA_GITHUB_API_URL": gh.base}
        # succeeding: the whole weekly, signed with the key from $LOCARA_MINISIGN_KEY, published to "GitHub"
        cli("--json", "weekly", "-r", "tiny", "--publish", f"github:{gh.repo}", expect=0, extra=gh_env)
        report = json.loads(outputs[-1][1].split("\n==>", 1)[0] if outputs[-1][1].startswith("{") else "{}") or None
        assert gh.state.releases and gh.state.releases[0]["draft"] is False
        assert report is None or report.get("status") == "released"
        # the hostile build really ran (and saw no secrets)
        build_logs = sorted((env.work / "logs").glob("build-tiny-*.log"))
        assert any(b"hostile: GITHUB_TOKEN=" in p.read_bytes() for p in build_logs)
        # failing: a refused token (another one than the stand-in accepts)
        (release,) = [p for p in (env.work / "releases").iterdir() if "b101" in p.name]
        cli("publish", "--to", f"github:{gh.repo}", str(release), expect=9,
            extra={**gh_env, "LOCARA_GITHUB_TOKEN": "", "GITHUB_TOKEN": SENTINELS["GITHUB_TOKEN"]})
        uploaded = b"".join(gh.state.bodies) + b"".join(a["data"] for a in gh.state.assets.values())
        headers_seen = "".join(gh.state.headers_seen)
    # failing: the key's password is wrong
    cli("release", "-r", "tiny", "--force", expect=2, extra={"LOCARA_MINISIGN_PASSWORD": PASSWORD + "-wrong"})
    # failing: Authenticode with a PKCS#12 that is not one
    staged = tmp_path / "staged"
    (staged / "bin").mkdir(parents=True)
    (staged / "bin" / "llama-server.exe").write_bytes(b"MZ" + bytes(510))
    cli("sign", str(staged), "--kind", "authenticode", "--require-signing", expect=7)
    # failing: an upstream URL carrying credentials, unreachable (sync and weekly)
    port = closed_port()
    cli("sync", "--upstream", f"http://locara:{URL_PASSWORD}@127.0.0.1:{port}/llama.cpp.git", expect=3)
    cli("sync", "--upstream", f"https://{URL_TOKEN}@127.0.0.1:{port}/llama.cpp.git", expect=3)
    cli("weekly", "-r", "tiny", "--upstream", f"http://locara:{URL_PASSWORD}@127.0.0.1:{port}/llama.cpp.git", expect=3)

    # the token was used (the stand-in only answers it), and never sent anywhere but the header
    assert SENTINELS["LOCARA_GITHUB_TOKEN"] in headers_seen
    leaks = {}
    for what, text in outputs:
        if hits := _grep(text.encode(), needles):
            leaks[f"output of `{what}`"] = hits
    for root in (env.work, env.project):
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink() and ".git/objects" not in str(path):
                if hits := _grep(path.read_bytes(), needles):
                    leaks[str(path)] = hits
    if hits := _grep(uploaded, needles):
        leaks["uploaded to GitHub"] = hits
    assert not leaks, f"secrets leaked: {json.dumps(leaks, indent=2)}"
    # and the lock never records credentials, even from a URL that had them
    assert parse_source(f"https://{URL_TOKEN}@github.com/ggml-org/llama.cpp").spec == "https://github.com/ggml-org/llama.cpp"
    assert URL_PASSWORD not in parse_source(f"https://u:{URL_PASSWORD}@example.org/x.git").spec
    assert os.environ.get("LOCARA_MINISIGN_PASSWORD") != PASSWORD  # (nothing leaked into this process either)
