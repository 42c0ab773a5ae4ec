"""The ``llama-server.args`` patch, for real and fast: the PATCHED ``tools/server/main.cpp`` of upstream
0c1e570 compiled with g++ against a stub ``llama_server()`` that prints the argv it receives."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from support.llama import vendored_llama
from support.upstream import ARGS_PATCH, MAIN_CPP, REPO

STUB = r"""
#include <cstdio>
int llama_server(int argc, char ** argv);
int llama_server(int argc, char ** argv) {
    for (int i = 0; i < argc; ++i) {
        std::printf("%s\n", argv[i]);
    }
    return argv[argc] == nullptr ? 0 : 99;  // argv must stay NULL-terminated
}
"""


@pytest.fixture(scope="module")
def server_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The patched main.cpp (patch applied with git to the real upstream file) linked with the stub."""
    d = tmp_path_factory.mktemp("args-patch")
    src = d / "src"
    (src / "tools" / "server").mkdir(parents=True)
    shutil.copy(vendored_llama("0.3.36") / MAIN_CPP, src / MAIN_CPP)
    subprocess.run(["git", "apply", "--whitespace=error-all", str(REPO / "patches" / ARGS_PATCH)], cwd=src, check=True)
    (d / "stub.cpp").write_text(STUB)
    exe = d / "llama-server"
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-O1",
                    str(src / MAIN_CPP), str(d / "stub.cpp"), "-o", str(exe)], check=True)
    return exe


@pytest.fixture
def pkg(tmp_path: Path, server_bin: Path) -> Path:
    """A package: pkg/bin/llama-server (the args file goes at the root or beside the binary)."""
    root = tmp_path / "pkg"
    (root / "bin").mkdir(parents=True)
    shutil.copy(server_bin, root / "bin" / "llama-server")
    return root


def run(exe: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
        expect: int = 0) -> tuple[list[str], str]:
    full = {k: v for k, v in os.environ.items() if k != "LLAMA_ARGS_FILE"}
    full.update(env or {})
    res = subprocess.run([str(exe), *args], env=full, cwd=cwd or "/", capture_output=True, text=True, timeout=30)
    assert res.returncode == expect, (res.returncode, res.stdout, res.stderr)
    return res.stdout.splitlines(), res.stderr


def test_the_patch_changes_only_main_cpp_and_says_why() -> None:
    text = (REPO / "patches" / ARGS_PATCH).read_text()
    assert re.findall(r"^diff --git a/(\S+) ", text, re.M) == [MAIN_CPP]
    assert "Subject: [PATCH] server: read default arguments from llama-server.args" in text
    for needle in ("llamafile's `.args` convention", "Upstream status: not upstreamable as is",
                   "`--args-file` option", "/proc/self/exe", "_NSGetExecutablePath", "GetModuleFileNameW"):
        assert needle in text, needle
    assert "#include" in text and "<filesystem>" in text  # C++17, standard library only


def test_without_an_args_file_argv_is_untouched(pkg: Path) -> None:
    exe = pkg / "bin" / "llama-server"
    argv, err = run(exe, "-m", "model.gguf", "--port", "1")
    assert argv == [str(exe), "-m", "model.gguf", "--port", "1"]
    assert "default arguments" not in err


def test_args_beside_the_binary_go_first_so_the_command_line_wins(pkg: Path) -> None:
    exe = pkg / "bin" / "llama-server"
    (pkg / "bin" / "llama-server.args").write_text("-c\n4096\n--port\n8080\n")
    argv, err = run(exe, "--port", "9090")
    assert argv == [str(exe), "-c", "4096", "--port", "8080", "--port", "9090"]  # the later --port wins in llama.cpp
    assert f"default arguments from {pkg / 'bin' / 'llama-server.args'}" in err


def test_package_root_args_comments_blank_lines_crlf_bom_and_relative_paths(pkg: Path, tmp_path: Path) -> None:
    exe = pkg / "bin" / "llama-server"
    (pkg / "llama-server.args").write_bytes(
        b"\xef\xbb\xbf# defaults for this package\r\n"
        b"\r\n"
        b"  --path  \r\n"
        b"./ui\r\n"
        b"   # an indented comment\r\n"
        b"-m\r\n"
        b"../models/tiny.gguf\r\n"
        b"--alias\r\n"
        b"my model\r\n"
        b"--host\r\n"
        b"127.0.0.1\r\n"
    )
    argv, _ = run(exe, cwd=tmp_path)  # the working directory does not matter
    assert argv == [str(exe), "--path", str(pkg / "ui"), "-m", str(tmp_path / "models" / "tiny.gguf"),
                    "--alias", "my model", "--host", "127.0.0.1"]


def test_the_file_beside_the_binary_wins_over_the_package_root(pkg: Path) -> None:
    (pkg / "bin" / "llama-server.args").write_text("--beside\n")
    (pkg / "llama-server.args").write_text("--root\n")
    argv, _ = run(pkg / "bin" / "llama-server")
    assert argv[1:] == ["--beside"]


def test_the_marker_places_the_command_line(pkg: Path) -> None:
    (pkg / "llama-server.args").write_text("-c\n4096\n...\n--port\n8080\n...\n")
    argv, _ = run(pkg / "bin" / "llama-server", "-c", "8", "-v")
    assert argv[1:] == ["-c", "4096", "-c", "8", "-v", "--port", "8080"]  # only the first ... counts
    argv, _ = run(pkg / "bin" / "llama-server")
    assert argv[1:] == ["-c", "4096", "--port", "8080"]


def test_llama_args_file_names_another_file_or_disables(pkg: Path, tmp_path: Path) -> None:
    exe = pkg / "bin" / "llama-server"
    (pkg / "llama-server.args").write_text("--from-package\n")
    other = tmp_path / "conf" / "my.args"
    other.parent.mkdir()
    other.write_text("--path\n./www\n")
    argv, err = run(exe, "-x", env={"LLAMA_ARGS_FILE": "conf/my.args"}, cwd=tmp_path)  # relative to the cwd
    assert argv[1:] == ["--path", str(tmp_path / "conf" / "www"), "-x"]
    assert str(other) in err
    argv, err = run(exe, "-x", env={"LLAMA_ARGS_FILE": ""})
    assert argv[1:] == ["-x"] and "default arguments" not in err
    out, err = run(exe, "-x", env={"LLAMA_ARGS_FILE": str(tmp_path / "missing.args")}, expect=1)
    assert out == [] and f"LLAMA_ARGS_FILE={tmp_path / 'missing.args'}: cannot read it" in err


def test_a_symlinked_binary_uses_the_real_package(pkg: Path, tmp_path: Path) -> None:
    (pkg / "llama-server.args").write_text("--path\n./ui\n")
    link_dir = tmp_path / "on-path"
    link_dir.mkdir()
    (link_dir / "llama-server").symlink_to(pkg / "bin" / "llama-server")
    argv, _ = run(link_dir / "llama-server", "--port", "1")
    assert argv == [str(link_dir / "llama-server"), "--path", str(pkg / "ui"), "--port", "1"]  # argv[0] as given
