"""Extra toolchains: discovery and provisioning of what some recipes need beyond cmake and a host
compiler: Vulkan headers new enough for ggml-vulkan (:mod:`.vulkan`), zig for Windows cross-builds
(:mod:`.zig`), wine for Windows smoke tests (:mod:`.wine`), the CUDA toolkit's cuBLAS, driver stub and
runtime libraries (:mod:`.cuda`).

Stages ask through :mod:`locara_build.build.provision`, which forwards to the recipe's platform
(``locara_build.build.platforms``) and backend (``locara_build.build.backends``) objects, which may implement
these optional methods (a missing one contributes nothing)::

    plan_cmake_defines(recipe) -> dict  CMake entries that depend on this host's toolchains; the plan
                                        shows them in configure_args (e.g. -DVulkan_INCLUDE_DIR)
    plan_env(recipe) -> dict            environment for configure + build; the plan shows it
    prepare(recipe) -> None             provision what the two above promised (build calls it first)
    smoke_env(recipe) -> dict           environment for the server under test (smoke)
    smoke_emulator(recipe) -> list      command prefix that runs the server when the recipe says none
                                        (qemu-aarch64-static for arm64 on an x86-64 host)
    smoke_wrapper(recipe) -> list       command prefix before the emulator (xvfb-run for a Vulkan
                                        .exe under wine on a host without an X display)
    smoke_device_gap(recipe) -> str|None  why the smoke device this host has is out of the
                                        emulated build's reach (smoke says cpu-fallback and why)
    runtime_dirs(recipe) -> list[Path]  where ``ship.runtime`` libraries are found (package)

Hooks run only for recipes this host can build (``Platform.can_build_on``): planning a macOS
recipe on Linux asks nothing of the host. Provisioned files live in :func:`toolchains_dir`.
"""

from __future__ import annotations

from locara_build.build.toolchains._common import Finding, toolchains_dir

__all__ = ["Finding", "toolchains_dir"]
