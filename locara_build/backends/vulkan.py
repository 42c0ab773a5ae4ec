from __future__ import annotations

from dataclasses import dataclass

from ..cmakevalue import CMakeValue


@dataclass(frozen=True)
class VulkanBackend:
    name: str = "vulkan"
    supported_os: frozenset[str] = frozenset({"linux", "windows"})

    def cmake_defines(self, recipe: object) -> dict[str, CMakeValue]:
        return {"GGML_VULKAN": True}

    def requirements(self, recipe: object) -> tuple[str, ...]:
        # ggml-vulkan.cpp uses VK_EXT_layer_settings (vk::LayerSettingEXT): headers >= 1.3.261.
        return ("glslc", "vulkan-headers>=1.3.261")


BACKEND = VulkanBackend()
