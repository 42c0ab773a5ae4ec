"""macOS signing and notarization orchestration. Apple's codesign / ditto / xcrun notarytool exist
only on macOS, so these tests run stand-in executables that record their argv (the names of the
tests say so); the Linux path is the real one: "skipped: needs macOS", or exit 7 when required."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from locara_build.core.errors import SignError
from locara_build.release.signing import sign_staged
from locara_build.release.signing.macos import macho_files

API_KEY = "-----BEGIN PRIVATE KEY-----\nMIGTAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBHkwdwIBAQQg-standin-secret\n-----END PRIVATE KEY-----\n"

STAND_IN = r'''#!{python}
import json, os, sys, zipfile
from pathlib import Path
name = Path(sys.argv[0]).name
with open(os.environ["STANDIN_LOG"], "a") as log:
    log.write(json.dumps([name] + sys.argv[1:]) + "\n")
args = sys.argv[1:]
if name == "ditto":
    src, dst = Path(args[-2]), Path(args[-1])
    with zipfile.ZipFile(dst, "w") as zf:
        for p in sorted(src.rglob("*")):
            zf.write(p, Path(src.name) / p.relative_to(src))
elif name == "xcrun" and args[:2] == ["notarytool", "submit"]:
    assert zipfile.ZipFile(args[2]).namelist(), "submitted an empty zip"
    if "--key" in args:
        key = Path(args[args.index("--key") + 1]).read_text()
        assert "standin-secret" in key and oct(os.stat(args[args.index("--key") + 1]).st_mode & 0o777) == "0o600"
    status = os.environ.get("STANDIN_NOTARY_STATUS", "Accepted")
    print(json.dumps({{"id": "2efe2717-52ef-43a5-96dc-0797e4ca1041", "status": status, "message": "Processing complete"}}))
elif name == "xcrun" and args[:2] == ["notarytool", "log"]:
    print(json.dumps({{"status": "Invalid", "issues": [{{"path": "bin/llama-server", "message": "The binary is not signed with a valid Developer ID certificate."}}]}}))
'''


@pytest.fixture
def stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "stand-in-bin"
    bindir.mkdir()
    for tool in ("codesign", "ditto", "xcrun", "stapler"):
        (bindir / tool).write_text(STAND_IN.format(python=sys.executable))
        (bindir / tool).chmod(0o755)
    log = tmp_path / "argv.jsonl"
    monkeypatch.setenv("STANDIN_LOG", str(log))
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    monkeypatch.setenv("LOCARA_MACOS_SIGN_IDENTITY", "Developer ID Application: Locara Test (TEAM123456)")
    monkeypatch.setenv("LOCARA_NOTARY_KEY", API_KEY)
    monkeypatch.setenv("LOCARA_NOTARY_KEY_ID", "KEYID12345")
    monkeypatch.setenv("LOCARA_NOTARY_ISSUER", "69a6de70-0000-47e3-e053-5b8c7c11a4d1")
    return log


def _staged(tmp_path: Path) -> Path:
    top = tmp_path / "locara-server-2026.10.01-g0c1e570-r1-macos-arm64-metal"
    (top / "bin").mkdir(parents=True)
    macho = bytes.fromhex("cffaedfe0c000001") + b"\0" * 64  # MH_MAGIC_64, CPU_TYPE_ARM64
    (top / "bin" / "llama-server").write_bytes(macho)
    (top / "bin" / "llama-server").chmod(0o755)
    (top / "bin" / "libggml-metal.so").write_bytes(macho)  # a GGML_BACKEND_DL plugin
    (top / "bin" / "libllama.dylib").write_bytes(macho)
    (top / "bin" / "libllama.0.dylib").symlink_to("libllama.dylib")
    (top / "run.sh").write_text("#!/bin/sh\n")
    return top


def _calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_stand_in_codesign_and_notarytool_argv(stand_ins: Path, tmp_path: Path) -> None:
    top = _staged(tmp_path)
    assert [p.name for p in macho_files(top)] == ["libggml-metal.so", "libllama.dylib", "llama-server"]
    report = sign_staged("macos", top, require=True, host="macos")
    assert report.status == "signed" and report.files == ["bin/libggml-metal.so", "bin/libllama.dylib", "bin/llama-server"]
    calls = _calls(stand_ins)
    identity = "Developer ID Application: Locara Test (TEAM123456)"
    signs = [c for c in calls if c[0] == "codesign" and "--sign" in c]
    assert [Path(c[-1]).name for c in signs] == ["libggml-metal.so", "libllama.dylib", "llama-server"]
    for c in signs:
        assert c[1:-1] == ["--force", "--options", "runtime", "--timestamp", "--sign", identity]
    verifies = [c for c in calls if c[0] == "codesign" and "--verify" in c]
    assert len(verifies) == 3 and all("--strict" in c for c in verifies)
    (ditto,) = [c for c in calls if c[0] == "ditto"]
    assert ditto[1:4] == ["-c", "-k", "--keepParent"] and ditto[4] == str(top) and ditto[5].endswith(".zip")
    (submit,) = [c for c in calls if c[0] == "xcrun"]
    assert submit[1:3] == ["notarytool", "submit"] and submit[3] == ditto[5]
    assert submit[4:9] == ["--wait", "--timeout", "20m", "--output-format", "json"]
    assert submit[submit.index("--key-id") + 1] == "KEYID12345"
    key_path = Path(submit[submit.index("--key") + 1])
    assert not key_path.exists(), "the API key file is removed afterwards"
    flat = json.dumps(calls)
    assert "standin-secret" not in flat, "the API key goes in a 0600 file, never on a command line"
    assert "stapler" not in flat and "staple" not in flat, "bare Mach-O binaries cannot be stapled"


def test_stand_in_entitlements_only_when_asked(stand_ins: Path, tmp_path: Path) -> None:
    top = _staged(tmp_path)
    ent = tmp_path / "jit.plist"
    ent.write_text("<plist/>")
    sign_staged("macos", top, host="macos", entitlements=ent)
    signs = [c for c in _calls(stand_ins) if c[0] == "codesign" and "--sign" in c]
    assert all(c[c.index("--entitlements") + 1] == str(ent) for c in signs)


def test_stand_in_notarization_rejected_is_exit_7_with_the_log(stand_ins: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("STANDIN_NOTARY_STATUS", "Invalid")
    top = _staged(tmp_path)
    with pytest.raises(SignError) as err:
        sign_staged("macos", top, host="macos")
    assert err.value.exit_code == 7
    assert "status Invalid" in err.value.message and "not signed with a valid Developer ID" in err.value.message
    assert any(c[:3] == ["xcrun", "notarytool", "log"] for c in _calls(stand_ins))


def test_stand_in_signed_but_not_notarized_without_credentials(stand_ins: Path, tmp_path: Path, monkeypatch) -> None:
    for name in ("LOCARA_NOTARY_KEY", "LOCARA_NOTARY_KEY_ID", "LOCARA_NOTARY_ISSUER"):
        monkeypatch.delenv(name)
    top = _staged(tmp_path)
    assert sign_staged("macos", top, host="macos").status == "signed"
    assert not [c for c in _calls(stand_ins) if c[0] in ("xcrun", "ditto")]
    with pytest.raises(SignError, match="notary credentials"):
        sign_staged("macos", top, host="macos", require=True)


def test_elsewhere_skipped_needs_macos_or_exit_7(tmp_path: Path, cli) -> None:
    top = _staged(tmp_path)
    env = {"LOCARA_MACOS_SIGN_IDENTITY": "Developer ID Application: X (T)"}
    res = cli("--json", "sign", str(top), "--kind", "macos", env=env)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["status"] == "skipped" and report["reason"] == "skipped: needs macOS (codesign and notarytool exist only there)"
    res = cli("sign", str(top), "--kind", "macos", "--require-signing", env=env)
    assert res.returncode == 7 and "needs macOS" in res.stderr
