from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from locara_build.build.cmakevalue import CMakeValue

if TYPE_CHECKING:
    from locara_build.build.tooltypes import HostSetup, Tool


@dataclass(frozen=True)
class VulkanBackend:
    name: str = "vulkan"
    supported_os: frozenset[str] = frozenset({"linux", "windows"})
    auto_rank: int | None = 30  # install --backend auto: see Backend.auto_rank

    def cmake_defines(self, recipe: object) -> dict[str, CMakeValue]:
        return {"GGML_VULKAN": True}

    def requirements(self, recipe: object) -> tuple[str, ...]:
        # ggml-vulkan.cpp uses VK_EXT_layer_settings (vk::LayerSettingEXT): headers >= 1.3.261.
        return ("glslc", "vulkan-headers>=1.3.261")

    def host_setup(self, recipe: object, host_os: str, tools: Mapping[str, Tool]) -> HostSetup:
        from locara_build.build.tooltypes import HostSetup

        headers = tools.get("vulkan-headers")
        if headers is not None and headers.found and headers.path and headers.extra.get("origin") != "system":
            # headers provisioned outside the compiler's default include path (docs/recipes.md)
            return HostSetup(defines={"Vulkan_INCLUDE_DIR": headers.path},
                             notes=(f"Vulkan headers {headers.version} from {headers.path}",))
        return HostSetup()

    # --- toolchain hooks (locara_build.build.toolchains) --------------------------------------------

    def plan_cmake_defines(self, recipe: object) -> dict[str, CMakeValue]:
        """``Vulkan_INCLUDE_DIR`` + ``SPIRV-Headers_DIR`` when this host's own headers cannot build
        ggml-vulkan (shown in the plan)."""
        import locara_build.build.platforms.host as platforms
        from locara_build.build.toolchains import vulkan

        return dict(vulkan.plan_defines(platforms.host_os()))

    def prepare(self, recipe: object) -> None:
        """Provision the pinned trixie headers when the plan points at them (cached; seconds)."""
        import locara_build.build.platforms.host as platforms
        from locara_build.build.toolchains import vulkan

        if vulkan.planned_include_dir(platforms.host_os()) == vulkan.provisioned_dir() / "usr" / "include":
            vulkan.provision(platforms.host_arch())


BACKEND = VulkanBackend()
