"""The whole trust chain on a REAL package: a real build of `linux-x86_64-cpu-ci` is packaged,
`locara-build release` signs it, Debian's `minisign -Vm` and `sha256sum -c` accept the release,
`locara-build publish` puts it on a mirror served over HTTP on 127.0.0.1, `locara-build install`
verifies it with the pinned + given key and installs it into a prefix, and `current/run.sh` serves
a completion with a tiny model.

The build comes from ``$LOCARA_PACKAGE_TEST_WORK`` when set (a work dir with ``project/`` and a
finished build, as the packaging tests use), else from the session-wide `llama_pipeline` fixture
(conftest.py / tests/support/pipeline.py: sync from the PyPI sdist, patches apply, build, smoke).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import requests
from conftest import run_cli
from support.httpserver import LoopbackServer, free_port
from support.release_kit import make_keys, snapshot

from locara_build.build.plan import make_plan
from locara_build.core.workdir import Project, WorkDir

pytestmark = pytest.mark.e2e
RECIPE = "linux-x86_64-cpu-ci"


def _build(request: pytest.FixtureRequest) -> tuple[Path, Path]:
    given = os.environ.get("LOCARA_PACKAGE_TEST_WORK")
    if given:  # a finished build prepared beforehand: minutes saved when iterating locally
        return Path(given) / "project", Path(given)
    p = request.getfixturevalue("llama_pipeline")
    return Path(p.project), Path(p.work)


def test_release_publish_install_serves_completions(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    project, work = _build(request)
    plan = make_plan(Project(project), WorkDir(work), [RECIPE])
    rp = plan.recipe(RECIPE)
    from locara_build.package.package import package

    dist = tmp_path / "dist"
    timings: dict[str, float] = {}
    t = time.monotonic()
    pkg = package(plan, rp, out_dir=dist)
    timings["package"] = time.monotonic() - t
    assert pkg.artifact.name == rp.artifact.file

    keys = make_keys(tmp_path / "keys")
    base = ("--project", str(project), "--work-dir", str(work))
    out = tmp_path / "releases" / str(plan.version)
    t = time.monotonic()
    res = run_cli(*base, "--json", "release", "--recipe", RECIPE, "--dist", str(dist), "--out", str(out),
                  "--key", str(keys.key_file))
    timings["release"] = time.monotonic() - t
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["artifacts"][0]["flavour"] == "ci"
    for name in ("SHA256SUMS", "release.json"):
        v = subprocess.run(["minisign", "-Vm", name, "-p", str(keys.pub)], cwd=out, capture_output=True, text=True)
        assert v.returncode == 0 and f"version:{plan.version}" in v.stdout, v.stderr
    assert subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=out, capture_output=True).returncode == 0
    doc = json.loads((out / "release.json").read_text())
    buildinfo = json.loads(subprocess.run(
        ["tar", "-xOzf", str(out / rp.artifact.file), f"{rp.artifact.name}/BUILDINFO.json"],
        capture_output=True, check=True).stdout)
    assert doc["upstream"]["commit"] == plan.lock.commit and json.dumps(buildinfo).count(plan.lock.commit)
    # what packaging computed and what signing did reach release.json (not the recipe's static values),
    # and provenance carries the real build's start and end
    (art,) = doc["artifacts"]
    assert art["requirements"]["glibc"] == buildinfo["requirements"]["glibc"] and art["requirements"]["glibc"].startswith(">= 2.")
    assert art["system_libraries"]["libc.so.6"] == "glibc" and "system_libraries" not in art["requirements"]
    assert all(isinstance(v, str) for v in art["requirements"].values())  # what installers read: flat strings
    assert art["signing"] == "none" and art["signing_status"] == {"status": "none"}
    build = json.loads((rp.output_dir / "build.json").read_text())
    from locara_build.release.provenance import verify_envelope

    statement, _ = verify_envelope((out / art["provenance"]).read_bytes(), [keys.secret.public_key], what=art["provenance"])
    meta = statement["predicate"]["runDetails"]["metadata"]
    assert (meta["startedOn"], meta["finishedOn"]) == (build["started_at"], build["finished_at"])
    assert meta["startedOn"] < meta["finishedOn"]  # a real build takes seconds, even from a warm cache

    mirror = tmp_path / "mirror"
    res = run_cli(*base, "publish", "--to", str(mirror), str(out))
    assert res.returncode == 0, res.stderr
    assert snapshot(mirror / str(plan.version)) == snapshot(out)

    prefix = tmp_path / "prefix"
    with LoopbackServer(mirror) as srv:
        t = time.monotonic()
        res = run_cli("--json", "install", "--from", srv.base_url, "--prefix", str(prefix), "--flavour", "ci",
                      "--trust", str(keys.pub))
        timings["install"] = time.monotonic() - t
        assert res.returncode == 0, res.stderr
        info = json.loads(res.stdout)
        # release flavour only by default: this mirror has only a ci build
        res = run_cli("install", "--from", srv.base_url, "--prefix", str(tmp_path / "p2"), "--trust", str(keys.pub))
        assert res.returncode == 2 and "no release artifact" in res.stderr
    assert info["version"] == str(plan.version) and info["backend"] == "cpu"
    assert os.readlink(prefix / "current") == f"versions/{plan.version}"

    # the installed server answers a completion (tiny random-weight model, no download)
    from locara_build.smoke.tinymodel import VOCAB_RELPATH, tiny_model

    model = tiny_model(plan.source_dir / VOCAB_RELPATH, tmp_path / "model")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LD_", "LOCARA_"))}
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen([str(prefix / "current" / "run.sh"), "-m", str(model), "--port", str(port), "-c", "512"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.3)
        else:
            raise AssertionError("the installed server never became healthy:\n" + (tmp_path / "server.log").read_text()[-3000:])
        r = requests.post(f"{url}/completion", json={"prompt": "Once upon a time", "n_predict": 8}, timeout=60)
        assert r.status_code == 200
        body = r.json()
        assert body["tokens_predicted"] == 8 and isinstance(body["content"], str)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    print("timings:", {k: f"{v:.1f}s" for k, v in timings.items()})
