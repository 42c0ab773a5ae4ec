"""Licenses gathered from a real llama.cpp tree, and the CycloneDX SBOM made from them (schema-validated)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from support.llama import COMMITS, vendored_llama

from locara_build.core.errors import SourceError
from locara_build.package.licenses import gather, readme
from locara_build.package.sbom import PatchInfo, SbomInput, ShippedFile, ToolInfo, make_sbom, validate_sbom


@pytest.fixture(scope="module")
def tree() -> Path:
    return vendored_llama("0.3.36")


def test_licenses_of_the_real_tree(tree: Path) -> None:
    found = {lic.component.name: lic for lic in gather(tree)}
    assert {
        "llama.cpp", "cpp-httplib", "nlohmann-json", "stb_image", "miniaudio", "subprocess.h",
        "base64.hpp", "sha1", "sha256", "xxhash", "rotate-bits", "llamafile-sgemm",
    } <= set(found)
    assert found["llama.cpp"].text == (tree / "LICENSE").read_text()
    assert found["llama.cpp"].component.spdx == "MIT"
    assert found["cpp-httplib"].version and found["nlohmann-json"].version.count(".") == 2
    # licenses that live in a header comment are extracted verbatim
    assert "ALTERNATIVE A - MIT License" in found["stb_image"].text and "Public Domain" in found["stb_image"].text
    assert found["subprocess.h"].text.lstrip().startswith("This is free and unencumbered software")
    assert "Mozilla Foundation" in found["llamafile-sgemm"].text
    # nothing from upstream's web UI or gguf-py (not in llama-server)
    assert not any("tools-ui" in n or "gguf-py" in n for n in found)
    text = readme(list(found.values()))
    assert "cpp-httplib" in text and "MIT" in text


def test_a_changed_header_is_noticed(tmp_path: Path, tree: Path) -> None:
    fake = tmp_path / "tree"
    (fake / "vendor" / "sheredom").mkdir(parents=True)
    (fake / "LICENSE").write_text((tree / "LICENSE").read_text())
    (fake / "vendor" / "sheredom" / "subprocess.h").write_text("/* relicensed, text moved elsewhere */\n")
    with pytest.raises(SourceError, match="subprocess.h"):
        gather(fake)
    assert {lic.component.name for lic in gather(fake, strict=False)} == {"llama.cpp"}


def test_unknown_license_files_are_still_shipped(tmp_path: Path, tree: Path) -> None:
    fake = tmp_path / "tree"
    (fake / "vendor" / "newlib").mkdir(parents=True)
    (fake / "LICENSE").write_text("MIT\n")
    (fake / "vendor" / "newlib" / "COPYING").write_text("new terms\n")
    (fake / "tools" / "ui" / "x").mkdir(parents=True)
    (fake / "tools" / "ui" / "x" / "LICENSE").write_text("not shipped\n")
    names = {lic.component.name: lic for lic in gather(fake)}
    assert names["vendor-newlib-COPYING"].text == "new terms\n"
    assert names["vendor-newlib-COPYING"].component.spdx == "NOASSERTION"
    assert not any("ui" in n for n in names)


def _input(tree: Path, files: list[ShippedFile], patches: list[PatchInfo]) -> SbomInput:
    return SbomInput(
        artifact_name="locara-server-2026.10.01-g0c1e570-r1-linux-x86_64-cpu",
        product="locara-server",
        version="2026.10.01-g0c1e570-r1",
        source_date_epoch=1790820708,
        upstream_url="https://github.com/ggml-org/llama.cpp",
        upstream_commit=COMMITS["0.3.36"],
        upstream_tag="",
        patches=patches,
        licenses=gather(tree),
        files=files,
        tools=[ToolInfo("gcc", "12.2.0"), ToolInfo("cmake", "4.1.0")],
        tool_version="0.1.0",
        recipe="linux-x86_64-cpu",
        recipe_hash="f" * 64,
    )


def test_sbom_is_valid_complete_and_deterministic(tree: Path) -> None:
    files = [
        ShippedFile("bin/llama-server", "1" * 64, 100, True),
        ShippedFile("bin/libllama.so.0", "2" * 64, 200),
        ShippedFile("ui/index.html", "3" * 64, 300),
    ]
    patches = [PatchInfo("0001-args-file.patch", "4" * 64, "server: read llama-server.args", "From x\nSubject: y\n\ndiff --git a/a b/a\n")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text = make_sbom(_input(tree, files, patches))
    validate_sbom(text)  # cyclonedx-python-lib's JSON schema validator (strict)
    assert text == make_sbom(_input(tree, list(reversed(files)), patches))
    doc = json.loads(text)
    assert doc["specVersion"] == "1.6"
    assert doc["serialNumber"].startswith("urn:uuid:")
    assert doc["metadata"]["timestamp"].startswith("2026-10-01T")
    comps = {c["bom-ref"]: c for c in doc["components"]}
    llama = comps["llama.cpp"]
    assert llama["purl"] == f"pkg:github/ggml-org/llama.cpp@{COMMITS['0.3.36']}"
    assert llama["pedigree"]["patches"][0]["type"] == "unofficial"
    assert "diff --git" in llama["pedigree"]["patches"][0]["diff"]["text"]["content"]
    assert any(p["name"] == "locara:patch:0001-args-file.patch" for p in llama["properties"])
    assert comps["vendored:cpp-httplib"]["purl"].startswith("pkg:github/yhirose/cpp-httplib@")
    assert comps["vendored:stb_image"]["licenses"] == [{"expression": "MIT OR Unlicense"}]
    assert comps["tool:gcc"]["scope"] == "excluded" and comps["tool:gcc"]["version"] == "12.2.0"
    for f in files:
        c = comps[f"file:{f.path}"]
        assert c["type"] == "file" and c["hashes"] == [{"alg": "SHA-256", "content": f.sha256}]
    deps = {d["ref"]: set(d.get("dependsOn", [])) for d in doc["dependencies"]}
    assert "llama.cpp" in deps["artifact"] and "file:bin/llama-server" in deps["artifact"]
    assert "vendored:cpp-httplib" in deps["llama.cpp"]


def test_validator_rejects_a_broken_sbom(tree: Path) -> None:
    doc = json.loads(make_sbom(_input(tree, [ShippedFile("bin/x", "1" * 64, 1)], [])))
    doc["components"][0]["type"] = "spaceship"
    with pytest.raises(ValueError):
        validate_sbom(json.dumps(doc))
