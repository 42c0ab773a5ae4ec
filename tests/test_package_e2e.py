"""The CI artifact end to end: package a real build of `linux-x86_64-cpu-ci`, unpack it alone, run it.

* layout exactly as docs say; every file listed in the SBOM (validated) and in the record;
* two packagings of one build (different umask, different time) are byte-identical, and the CLI's
  `package` gives the same bytes as the library call;
* no build-host path anywhere in the unpacked tree; binaries stripped, debug symbols in the
  -debug artifact; `ldd` resolves nothing from the build tree;
* `models fetch` gets the tiny model from a real HTTP server on 127.0.0.1; `run.sh` starts the
  unpacked server with it and answers a completion; `GET /` is the packaged UI;
* a package whose manifest's default is the tiny model starts with a bare `run.sh`.

The build comes from the session-wide `llama_pipeline` fixture (conftest.py), or from a work dir
prepared by hand (`LOCARA_PACKAGE_TEST_WORK`, see _ci_build()).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, run_cli
from support.httpserver import LoopbackServer, free_port

from locara_build.build.plan import Plan, RecipePlan, make_plan
from locara_build.core.errors import VerifyError
from locara_build.core.workdir import Project, WorkDir
from locara_build.package.launchers import args_file
from locara_build.package.models import load_manifest, parse_manifest
from locara_build.package.package import PackageResult, package
from locara_build.package.sbom import validate_sbom
from locara_build.smoke.smoke import server
from locara_build.smoke.tinymodel import VOCAB_RELPATH, tiny_model

pytestmark = pytest.mark.e2e
RECIPE = "linux-x86_64-cpu-ci"


# --- the build under test ---------------------------------------------------------------------


@dataclass(frozen=True)
class CiBuild:
    plan: Plan
    rp: RecipePlan
    project: Path
    work: Path


_BUILD: list[CiBuild] = []


def _ci_build(request: pytest.FixtureRequest | None = None) -> CiBuild:
    """The real CI build, once per session.

    The session pipeline fixture ``llama_pipeline`` (conftest.py -> tests/support/pipeline.py: sync +
    patches apply + build + smoke of linux-x86_64-cpu-ci in a temp work dir, shared ccache), unless
    ``LOCARA_PACKAGE_TEST_WORK`` names a work dir prepared by hand (``project/`` with a lock, the
    stamped source tree and a finished build of the recipe).
    """
    if _BUILD:
        return _BUILD[0]
    root = os.environ.get("LOCARA_PACKAGE_TEST_WORK")
    if root:  # a developer's prepared work dir (faster than a pipeline per session)
        work = Path(root)
        project = work / "project"
    else:
        if request is None:
            raise AssertionError("_ci_build() needs the fixture request the first time")
        pipeline = request.getfixturevalue("llama_pipeline")
        project, work = Path(pipeline.project), Path(pipeline.work)
    plan = make_plan(Project(project), WorkDir(work), [RECIPE])
    _BUILD.append(CiBuild(plan, plan.recipe(RECIPE), project, work))
    return _BUILD[0]


@dataclass(frozen=True)
class Packaged:
    build: CiBuild
    result: PackageResult
    dist: Path
    unpacked: Path  # the top folder, unpacked alone in an empty temp dir


_TMP = Path(tempfile.mkdtemp(prefix="locara-pkg-test-"))


@functools.cache
def _packaged() -> Packaged:
    b = _ci_build()  # already resolved by the `packaged` fixture
    dist = _TMP / "dist"
    result = package(b.plan, b.rp, out_dir=dist)
    dest = _TMP / "unpacked"
    dest.mkdir()
    with tarfile.open(result.artifact) as tar:
        tar.extractall(dest, filter="data")
    return Packaged(b, result, dist, dest / b.rp.artifact.name)


@pytest.fixture(scope="session")
def packaged(request: pytest.FixtureRequest) -> Packaged:
    _ci_build(request)
    return _packaged()


@functools.cache
def _tiny() -> tuple[Path, str, int]:
    b = _ci_build()
    model = tiny_model(b.plan.source_dir / VOCAB_RELPATH, _TMP / "models-src")
    data = model.read_bytes()
    return model, hashlib.sha256(data).hexdigest(), len(data)


@functools.cache
def _fetched_store() -> tuple[Path, Path]:
    """``models fetch`` (the real CLI) of the tiny model over HTTP into a fresh store: (store, manifest)."""
    model, sha, size = _tiny()
    srv_root = _TMP / "http"
    srv_root.mkdir(exist_ok=True)
    shutil.copyfile(model, srv_root / "tiny-llama.gguf")
    store = _TMP / "store"
    manifest = _TMP / "tiny-manifest.json"
    with LoopbackServer(srv_root) as srv:
        manifest.write_text(
            json.dumps(
                {
                    "schema": 1,
                    "default": "tiny-llama",
                    "models": [
                        {"id": "tiny-llama", "name": "Tiny random llama (tests)", "file": "tiny-llama.gguf", "sha256": sha,
                         "size": size, "urls": [srv.url("tiny-llama.gguf")], "license": "MIT", "args": ["-c", "1024"]}
                    ],
                }
            )
        )
        r = run_cli("--json", "models", "fetch", "--manifest", str(manifest), "--store", str(store))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["models"][0]["path"] == str(store / "sha256" / sha)
    return store, manifest


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user who just unpacked the archive: no build tree on any search path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LD_", "LOCARA_", "DYLD_"))}
    env.update(extra)
    return env


def run_sh(unpacked: Path, *args: str) -> list[str]:
    return [str(unpacked / "run.sh"), *args]


# --- layout ---------------------------------------------------------------------------------


def test_layout(packaged: Packaged) -> None:
    top = packaged.unpacked
    rp = packaged.build.rp
    assert packaged.result.artifact.name == rp.artifact.file
    assert rp.artifact.file == f"locara-server-{packaged.build.plan.version}-linux-x86_64-cpu-ci.tar.gz"
    with tarfile.open(packaged.result.artifact) as tar:
        names = tar.getnames()
    assert {n.split("/")[0] for n in names} == {rp.artifact.name}, "one top folder of the artifact's name"
    assert sorted(p.name for p in top.iterdir()) == sorted(
        ["bin", "ui", "models", "llama-server.args", "run.sh", "README.txt", "LICENSES", "BUILDINFO.json", "sbom.cdx.json"]
    )
    bin_names = sorted(p.name for p in (top / "bin").iterdir())
    assert "llama-server" in bin_names
    assert "libggml-cpu.so" in bin_names, "the CPU backend plugin (dlopen()ed, no DT_NEEDED points at it)"
    assert {"libllama.so.0", "libggml.so.0", "libggml-base.so.0"} <= set(bin_names)
    assert not any(n.endswith(".so") and n.startswith(("libllama.", "libggml.", "libggml-base.")) for n in bin_names), (
        "development symlinks (libllama.so -> ...) are not shipped"
    )
    assert not any(re.match(r"lib(c|m|stdc\+\+|gcc_s|gomp|ssl|crypto|vulkan)\.so", n) for n in bin_names), bin_names
    assert all(not p.is_symlink() for p in top.rglob("*"))
    assert sorted(p.name for p in (top / "ui").iterdir()) == ["app.js", "favicon.svg", "index.html", "style.css"]
    assert (top / "llama-server.args").read_bytes() == args_file()
    assert os.access(top / "run.sh", os.X_OK) and os.access(top / "bin" / "llama-server", os.X_OK)
    assert not os.access(top / "ui" / "index.html", os.X_OK)

    licenses = sorted(p.name for p in (top / "LICENSES").iterdir())
    for name in ("llama.cpp.txt", "cpp-httplib.txt", "nlohmann-json.txt", "README.txt", "locara-build.txt"):
        assert name in licenses
    assert (top / "LICENSES" / "llama.cpp.txt").read_text() == (packaged.build.plan.source_dir / "LICENSE").read_text()

    mf = load_manifest(top / "models" / "manifest.json")
    assert mf.models == load_manifest(REPO / "recipes" / "models.toml").models
    assert mf.default == "qwen2.5-0.5b-instruct-q4_k_m"


def test_buildinfo(packaged: Packaged) -> None:
    info = json.loads((packaged.unpacked / "BUILDINFO.json").read_text())
    plan, rp = packaged.build.plan, packaged.build.rp
    assert info["upstream"]["commit"] == plan.lock.commit
    assert info["upstream"]["repository"] == "https://github.com/ggml-org/llama.cpp"
    assert info["patches"]["hash"] == plan.patch_set_hash
    assert [p["sha256"] for p in info["patches"]["series"]] == [p.sha256 for p in plan.patches]
    assert info["recipe"]["name"] == RECIPE and info["recipe"]["hash"] == rp.recipe.recipe_hash
    assert info["build"]["compiler"]["cxx"]["version"]
    assert "-DGGML_BACKEND_DL=ON" in info["build"]["cmake_args"]
    assert any(a.startswith("-S") or a == "<src>" for a in info["build"]["cmake_args"])
    req = info["requirements"]
    assert req["glibc"].startswith(">= 2.")
    assert {"libc.so.6", "libstdc++.so.6", "libgomp.so.1"} <= set(req["system_libraries"])


def test_sbom_lists_every_file(packaged: Packaged) -> None:
    text = (packaged.unpacked / "sbom.cdx.json").read_text()
    validate_sbom(text)
    doc = json.loads(text)
    files = {c["name"]: c["hashes"][0]["content"] for c in doc["components"] if c["type"] == "file"}
    on_disk = {
        p.relative_to(packaged.unpacked).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in packaged.unpacked.rglob("*")
        if p.is_file() and p.name != "sbom.cdx.json"
    }
    assert files == on_disk
    comps = {c["bom-ref"]: c for c in doc["components"]}
    assert comps["llama.cpp"]["purl"] == f"pkg:github/ggml-org/llama.cpp@{packaged.build.plan.lock.commit}"
    assert len(comps["llama.cpp"].get("pedigree", {}).get("patches", [])) == len(packaged.build.plan.patches)
    assert any(ref.startswith("tool:") for ref in comps)

    record = json.loads(packaged.result.record_path.read_text())
    assert record["sha256"] == hashlib.sha256(packaged.result.artifact.read_bytes()).hexdigest()
    assert record["size"] == packaged.result.artifact.stat().st_size
    assert {f["path"] for f in record["files"]} == set(on_disk) | {"sbom.cdx.json"}
    assert record["recipe"] == RECIPE and record["file"] == packaged.result.artifact.name


# --- determinism ------------------------------------------------------------------------------


def test_two_packagings_are_byte_identical(packaged: Packaged, tmp_path: Path) -> None:
    """Again, through the CLI, under umask 077, later: the same bytes (and the same debug archive)."""
    b = packaged.build
    out = tmp_path / "again"
    cmd = (
        f"umask 077; exec {sys.executable} -m locara_build --project {b.project} --work-dir {b.work} "
        f"--json package --recipe {RECIPE} --out {out}"
    )
    r = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    again = out / packaged.result.artifact.name
    assert again.read_bytes() == packaged.result.artifact.read_bytes()
    assert (out / f"{again.name}.json").read_bytes() == packaged.result.record_path.read_bytes()
    assert packaged.result.debug_artifact is not None
    assert (out / packaged.result.debug_artifact.name).read_bytes() == packaged.result.debug_artifact.read_bytes()
    assert json.loads(r.stdout)["packages"][0]["sha256"] == packaged.result.sha256


def test_no_build_host_paths_inside(packaged: Packaged) -> None:
    b = packaged.build
    needles = {str(b.work), str(b.project), str(b.plan.source_dir), str(b.rp.cmake_dir), str(b.rp.output_dir)}
    needles |= {str(Path(n).resolve()) for n in needles}
    hits = []
    for path in packaged.unpacked.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [(path.name, n) for n in needles if n.encode() in data]
    assert hits == []


# --- the binaries -----------------------------------------------------------------------------


def _elves(top: Path) -> list[Path]:
    return [p for p in sorted((top / "bin").iterdir()) if p.read_bytes()[:4] == b"\x7fELF"]


def test_ldd_resolves_nothing_from_the_build_tree(packaged: Packaged) -> None:
    b = packaged.build
    bin_dir = packaged.unpacked / "bin"
    build_roots = [str(b.work), str(b.rp.cmake_dir), str(b.rp.output_dir)]
    for elf in _elves(packaged.unpacked):
        dyn = subprocess.run(["readelf", "-d", "-W", str(elf)], capture_output=True, text=True, env=clean_env(LC_ALL="C")).stdout
        runpaths = re.findall(r"\((?:RUNPATH|RPATH)\).*\[(.*)\]", dyn)
        assert all(rp == "$ORIGIN" for rp in runpaths), (elf.name, runpaths)
        out = subprocess.run(["ldd", str(elf)], capture_output=True, text=True, env=clean_env(LC_ALL="C")).stdout
        assert "not found" not in out, out
        for line in out.splitlines():
            m = re.match(r"\s*(\S+) => (\S+)", line)
            if not m:
                continue
            lib, where = m.groups()
            assert not any(where.startswith(r) for r in build_roots), line
            if (bin_dir / lib).exists():
                assert Path(where).resolve() == (bin_dir / lib).resolve(), f"{elf.name}: {lib} must come from bin/: {line}"
            else:
                assert where.startswith(("/lib", "/usr/lib")), f"{elf.name}: {line}"


def test_binaries_are_stripped_and_debug_symbols_kept(packaged: Packaged, tmp_path: Path) -> None:
    for elf in _elves(packaged.unpacked):
        sections = subprocess.run(["readelf", "-S", "-W", str(elf)], capture_output=True, text=True, env=clean_env(LC_ALL="C")).stdout
        assert ".symtab" not in sections, f"{elf.name} is not stripped"
        assert ".gnu_debuglink" in sections, f"{elf.name} does not point at its debug file"
    debug = packaged.result.debug_artifact
    assert debug is not None and debug.name == f"{packaged.build.rp.artifact.name}-debug.tar.gz"
    with tarfile.open(debug) as tar:
        tar.extractall(tmp_path, filter="data")
    dbg_dir = tmp_path / packaged.build.rp.artifact.name / "bin"
    assert sorted(p.name for p in dbg_dir.iterdir()) == sorted(f"{e.name}.debug" for e in _elves(packaged.unpacked))
    syms = subprocess.run(["readelf", "-s", "-W", str(dbg_dir / "llama-server.debug")], capture_output=True, text=True).stdout
    assert "main" in syms


# --- running it ------------------------------------------------------------------------------


def test_run_sh_serves_a_completion_and_the_ui(packaged: Packaged) -> None:
    store, manifest = _fetched_store()
    r = run_cli("models", "path", "tiny-llama", "--manifest", str(manifest), "--store", str(store))
    assert r.returncode == 0, r.stderr
    model = r.stdout.strip()
    port = free_port()
    log_path = _TMP / "logs" / "run-sh.log"
    with server(run_sh(packaged.unpacked, "-m", model, "--port", str(port)), port=port, log_path=log_path, timeout=120,
                env=clean_env(), cwd=_TMP, label="run.sh") as srv:
        resp = srv.session.post(srv.url + "/completion", json={"prompt": "Once upon a time", "n_predict": 8, "ignore_eos": True}, timeout=120)
        assert resp.status_code == 200, resp.text
        data = resp.json()
        assert data["tokens_predicted"] == 8 and isinstance(data["content"], str) and data["content"]
        index = srv.session.get(srv.url + "/", timeout=30)
        assert index.status_code == 200, f"GET / answered {index.status_code}: is --path ./ui from llama-server.args applied?"
        assert index.content == (packaged.unpacked / "ui" / "index.html").read_bytes()
        js = srv.session.get(srv.url + "/app.js", timeout=30)
        assert js.status_code == 200 and "javascript" in js.headers.get("content-type", "")
        assert srv.session.get(srv.url + "/health", timeout=30).json().get("status") == "ok"
    log_text = log_path.read_text(errors="replace")
    assert "127.0.0.1" in log_text


def test_run_sh_without_a_model_says_what_to_do(packaged: Packaged, tmp_path: Path) -> None:
    r = subprocess.run(run_sh(packaged.unpacked, "--no-download"), env=clean_env(LOCARA_MODEL_STORE=str(tmp_path / "empty")),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "locara-build models fetch qwen2.5-0.5b-instruct-q4_k_m --manifest" in r.stderr
    assert str(packaged.unpacked / "models" / "manifest.json") in r.stderr


def test_default_model_from_the_store(packaged: Packaged, tmp_path: Path) -> None:
    """Packaged with a manifest whose default is the tiny model: a bare `run.sh` finds it in the store."""
    b = packaged.build
    store, manifest = _fetched_store()
    result = package(b.plan, b.rp, out_dir=tmp_path / "dist", models=load_manifest(manifest), debug=False)
    with tarfile.open(result.artifact) as tar:
        tar.extractall(tmp_path / "u", filter="data")
    top = tmp_path / "u" / b.rp.artifact.name
    assert parse_manifest(json.loads((top / "models" / "manifest.json").read_text())).default == "tiny-llama"
    port = free_port()
    with server(run_sh(top, "--port", str(port)), port=port, log_path=tmp_path / "server.log", timeout=120,
                env=clean_env(LOCARA_MODEL_STORE=str(store)), cwd=tmp_path, label="run.sh (default model)") as srv:
        props = srv.session.get(srv.url + "/props", timeout=30).json()
        assert props["model_alias"] == "tiny-llama"
        assert Path(props["model_path"]) == store / "sha256" / _tiny()[1]
        assert props["default_generation_settings"]["n_ctx"] == 1024, "the model's recommended -c 1024 applies"
        resp = srv.session.post(srv.url + "/completion", json={"prompt": "Hello", "n_predict": 4, "ignore_eos": True}, timeout=120)
        assert resp.json()["tokens_predicted"] == 4


def test_a_changed_build_output_is_refused(packaged: Packaged, tmp_path: Path) -> None:
    """The build output is immutable: packaging checks every file against build.json first."""
    b = packaged.build
    work = tmp_path / "work"
    out = WorkDir(work).build_output(RECIPE, b.rp.build_key)
    shutil.copytree(b.rp.output_dir, out, symlinks=True)
    server_bin = out / "bin" / "llama-server"
    data = bytearray(server_bin.read_bytes())
    data[-1] ^= 1
    server_bin.write_bytes(bytes(data))
    plan = make_plan(Project(b.project), WorkDir(work), [RECIPE])
    with pytest.raises(VerifyError, match="changed after the build"):
        package(plan, plan.recipe(RECIPE), out_dir=tmp_path / "dist")
    assert not (tmp_path / "dist" / b.rp.artifact.file).exists()


def test_http_of_the_unpacked_ui_is_self_contained(packaged: Packaged) -> None:
    html = (packaged.unpacked / "ui" / "index.html").read_text()
    assert "<script>" not in html and " style=" not in html and "http://" not in html and "https://" not in html
    for f in ("app.js", "style.css"):
        text = (packaged.unpacked / "ui" / f).read_text()
        assert "http://" not in text and "https://" not in text and "@import" not in text
