"""``install --backend auto`` tries backends in the order the backends registry declares (each
backend's ``auto_rank``), not an order written into hostdetect."""

from __future__ import annotations

import dataclasses

import pytest
from support.records_kit import release_artifact

from locara_build.build import backends, hostdetect
from locara_build.build.hostdetect import HostInfo, VulkanDevice, choose_artifact

# a host on which cuda, rocm, vulkan, universal and cpu would all fit
EVERYTHING = HostInfo(
    os="linux", arch="x86_64", cuda_driver="580.95.05", gpus=("NVIDIA H100",), amd_gpus=("gfx1100",),
    vulkan_devices=(VulkanDevice("NVIDIA H100", "PHYSICAL_DEVICE_TYPE_DISCRETE_GPU"),),
)
ARTS = [release_artifact(backend=b) for b in ("cpu", "universal", "vulkan", "rocm", "cuda")]


def test_every_backend_declares_a_distinct_auto_rank_and_hostdetect_can_judge_each() -> None:
    ranks = {name: b.auto_rank for name, b in backends.REGISTRY.items()}
    assert set(ranks) == {"cpu", "cuda", "vulkan", "metal", "rocm", "universal"}
    assert all(r is None or isinstance(r, int) for r in ranks.values())
    ranked = [r for r in ranks.values() if r is not None]
    assert len(ranked) == len(set(ranked)), f"auto ranks collide: {ranks}"
    order = backends.auto_order()
    assert [ranks[n] for n in order] == sorted(ranked)
    assert order == ("cuda", "rocm", "vulkan", "metal", "universal", "cpu")  # today's preference
    assert set(order) <= set(hostdetect._AUTO_FITS), "a ranked backend hostdetect cannot judge"


def test_the_auto_pick_follows_the_registry_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    assert choose_artifact(ARTS, EVERYTHING)[0].backend == "cuda"
    # vulkan ranked above cuda: vulkan wins on the same host
    monkeypatch.setitem(backends.REGISTRY, "vulkan", dataclasses.replace(backends.REGISTRY["vulkan"], auto_rank=1))  # type: ignore[type-var]
    assert backends.auto_order()[0] == "vulkan"
    art, why = choose_artifact(ARTS, EVERYTHING)
    assert art.backend == "vulkan" and why.startswith("Vulkan: NVIDIA H100")
    # cuda never picked automatically (rank None) -- but still when asked for
    monkeypatch.setitem(backends.REGISTRY, "vulkan", dataclasses.replace(backends.REGISTRY["vulkan"], auto_rank=None))  # type: ignore[type-var]
    monkeypatch.setitem(backends.REGISTRY, "cuda", dataclasses.replace(backends.REGISTRY["cuda"], auto_rank=None))  # type: ignore[type-var]
    assert "cuda" not in backends.auto_order()
    assert choose_artifact(ARTS, EVERYTHING)[0].backend == "rocm"
    assert choose_artifact(ARTS, EVERYTHING, backend="cuda")[0].backend == "cuda"
