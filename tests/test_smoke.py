"""The smoke stage against stand-in servers (a small Python program installed as bin/llama-server):
the happy path (every endpoint + the llama-server.args run + smoke.json), a server that never gets
healthy (exit 6 after the timeout, log tail, server stopped), one that dies, a port already taken,
unmet smoke.expect, skipped recipes. The real llama-server is smoke-tested in test_e2e_llama.py."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest
from support import fakeserver
from support.pipeline import TINY_RECIPE, StandIn, stand_in_project
from support.records_kit import write_build_record


def install_stand_in(tiny: StandIn, mode: str = "ok") -> Path:
    """A finished "build" of the tiny recipe whose bin/llama-server is the stand-in."""
    out = Path(tiny.plan()["output_dir"])
    (out / "bin").mkdir(parents=True)
    exe = out / "bin" / "llama-server"
    exe.write_text(fakeserver.script(mode))
    exe.chmod(0o755)
    write_build_record(out, recipe="tiny", build_key=tiny.plan()["build_key"])
    return out


@pytest.fixture
def tiny(tmp_path: Path) -> StandIn:
    return stand_in_project(tmp_path)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "stand-in.gguf"
    path.write_bytes(b"GGUF not really")
    return path


@pytest.fixture
def ui(tmp_path: Path) -> Path:
    d = tmp_path / "ui"
    d.mkdir()
    (d / "index.html").write_text("<!doctype html><html><body>locara test page</body></html>\n")
    return d


def _no_process_runs(path: Path) -> bool:
    needle = str(path).encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if needle in (proc / "cmdline").read_bytes():
                    return False
            except OSError:
                pass
    return True


def test_smoke_passes_and_records_results(tiny: StandIn, model: Path, ui: Path) -> None:
    out = install_stand_in(tiny)
    res = tiny.cli("smoke", "-r", "tiny", "--model", str(model), "--ui", str(ui), "--json")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)["smoke"][0]
    assert summary["status"] == "passed" and summary["tokens_per_second"] == 123.4
    record = json.loads((out / "smoke.json").read_text())
    assert record["status"] == "passed" and record["build_key"] == out.name
    server = record["server"]
    assert server["completion"]["tokens"] == 16
    assert server["chat"]["completion_tokens"] == 16 and server["chat"]["finish_reason"] == "length"
    assert server["ui"]["checked"] is True and server["ui"]["status"] == 200
    assert "--path" in server["argv"] and str(ui) in server["argv"]
    # the second run started with no arguments: model and port came from llama-server.args
    second = record["args_file"]
    assert second["completion"]["tokens"] == 16
    assert second["args_file"][:2] == ["-m", f"./models/{model.name}"] and second["args_file"][-1] == "..."
    assert Path(second["model_path"]).name == model.name
    assert Path(second["log"]).read_text().count("listening on") == 1
    # the immutable output got smoke.json and nothing else; no scratch copies left
    assert sorted(p.name for p in out.iterdir()) == ["bin", "build.json", "smoke.json"]
    assert sorted(p.name for p in (out / "bin").iterdir()) == ["llama-server"]
    assert list((tiny.work / "tmp").iterdir()) == []
    assert _no_process_runs(out / "bin" / "llama-server")


def test_never_healthy_exits_6_after_timeout_with_log_tail(tiny: StandIn, model: Path) -> None:
    out = install_stand_in(tiny, "never-healthy")
    start = time.monotonic()
    res = tiny.cli("smoke", "-r", "tiny", "--model", str(model), "--timeout", "3")
    took = time.monotonic() - start
    assert res.returncode == 6, res.stderr
    assert "did not become healthy within 3s" in res.stderr
    assert "HTTP 503" in res.stderr  # what /health last said
    assert "stand-in: loading model" in res.stderr  # the log tail
    assert "Server log: " in res.stderr and str(tiny.work / "logs") in res.stderr
    assert took < 60
    assert not (out / "smoke.json").exists()
    assert _no_process_runs(out / "bin" / "llama-server")  # always stopped


def test_server_that_dies_exits_6(tiny: StandIn, model: Path) -> None:
    out = install_stand_in(tiny, "exit")
    res = tiny.cli("smoke", "-r", "tiny", "--model", str(model))
    assert res.returncode == 6, res.stderr
    assert "exited with status 3 before becoming healthy" in res.stderr
    assert "failed to load model" in res.stderr
    assert not (out / "smoke.json").exists()


def test_port_already_taken_is_a_clear_error(tiny: StandIn, model: Path) -> None:
    install_stand_in(tiny)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        res = tiny.cli("smoke", "-r", "tiny", "--model", str(model), "--port", str(port))
    assert res.returncode == 6, res.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in res.stderr
    assert "--port" in res.stderr  # the hint


def test_wrong_token_count_fails(tiny: StandIn, model: Path) -> None:
    install_stand_in(tiny, "wrong-tokens")
    res = tiny.cli("smoke", "-r", "tiny", "--model", str(model))
    assert res.returncode == 6, res.stderr
    assert "asked for 16 tokens and got 15" in res.stderr


def test_expect_patterns_must_match_the_log(tmp_path: Path, model: Path) -> None:
    recipe = TINY_RECIPE.replace("[smoke]\n", '[smoke]\nexpect = ["loading model", "using device Vulkan0"]\n')
    tiny = stand_in_project(tmp_path, recipe_text=recipe)
    install_stand_in(tiny)
    res = tiny.cli("smoke", "-r", "tiny", "--model", str(model))
    assert res.returncode == 6, res.stderr
    assert "does not match smoke.expect ['using device Vulkan0']" in res.stderr


def test_skipped_recipe_records_why(tmp_path: Path, model: Path) -> None:
    tiny = stand_in_project(tmp_path, recipe_text=TINY_RECIPE.replace("[smoke]\n", '[smoke]\nskip = "needs a GPU"\n'))
    out = install_stand_in(tiny)
    res = tiny.cli("smoke", "-r", "tiny", "--model", str(model), "--json")
    assert res.returncode == 0, res.stderr
    record = json.loads((out / "smoke.json").read_text())
    assert record["status"] == "skipped" and record["reason"] == "needs a GPU"


def test_smoke_needs_a_build(tiny: StandIn, model: Path) -> None:
    res = tiny.cli("smoke", "-r", "tiny", "--model", str(model))
    assert res.returncode == 6, res.stderr
    assert "locara-build build -r tiny" in res.stderr


def test_smoke_server_api_on_an_unpacked_bin_dir(tmp_path: Path, tiny: StandIn, model: Path, ui: Path) -> None:
    """What packaging reuses: smoke_server()/smoke_args_file() on any bin/ dir."""
    from locara_build.smoke.smoke import SmokeOptions, smoke_args_file, smoke_server

    out = install_stand_in(tiny)
    opts = SmokeOptions(n_predict=4, timeout=30, ui_dir=ui)
    first = smoke_server(out / "bin", model, options=opts, log_path=tmp_path / "s1.log")
    assert first["completion"]["tokens"] == 4 and first["ui"]["checked"]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    second = smoke_args_file(out / "bin", model, options=opts, log_path=tmp_path / "s2.log", scratch=scratch)
    assert second["completion"]["tokens"] == 4
    assert list(scratch.iterdir()) == []
    assert os.path.getsize(tmp_path / "s2.log") > 0


# --- smoke.device: the GPU a backend needs, and what is smoke-tested without it -----------------

DEVICE_RECIPE = TINY_RECIPE.replace('backend = "cpu"', 'backend = "cuda"').replace(
    "[smoke]\n", "[smoke]\ndevice = \"nvidia-gpu\"\nexpect = ['using device CUDA0 \\(']\n"
)


def _device_project(tmp_path: Path, *, backend_dl: bool) -> StandIn:
    text = DEVICE_RECIPE.replace("[cmake]\n", f"[cmake]\nGGML_BACKEND_DL = {'true' if backend_dl else 'false'}\n")
    return stand_in_project(tmp_path, recipe_text=text)


def _path_without_nvidia_smi() -> str:
    """PATH minus any dir holding nvidia-smi: these tests mean a host with no NVIDIA GPU."""
    return os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep) if not (Path(d) / "nvidia-smi").exists())


def _stand_in_nvidia_smi(tmp_path: Path) -> dict[str, str]:
    """A stand-in nvidia-smi (no GPU exists here) answering the query locara-build makes."""
    bin_dir = tmp_path / "fake-nvidia-bin"
    bin_dir.mkdir()
    tool = bin_dir / "nvidia-smi"
    tool.write_text("#!/bin/sh\necho '580.95.05, NVIDIA L4'\n")
    tool.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{_path_without_nvidia_smi()}"}


def test_gpu_recipe_without_a_gpu_is_smoke_tested_on_the_cpu_backends(tmp_path: Path, model: Path, ui: Path) -> None:
    tiny = _device_project(tmp_path, backend_dl=True)
    out = install_stand_in(tiny)  # logs no CUDA device: smoke.expect would fail if it were checked
    res = tiny.cli("smoke", "-r", "tiny", "--model", str(model), "--ui", str(ui), "--json",
                   env={"PATH": _path_without_nvidia_smi()})
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)["smoke"][0]
    assert summary["status"] == "passed" and summary["coverage"] == "cpu-fallback" and summary["ran_on"] == "CPU"
    assert "CUDA kernels not exercised" in summary["reason"]
    assert "CUDA kernels not exercised" in res.stderr  # said to the person running it too
    record = json.loads((out / "smoke.json").read_text())
    assert record["device"] == {"needs": "nvidia-gpu", "found": None}
    assert record["server"]["completion"]["tokens"] == 16 and record["server"]["ui"]["checked"]
    assert record["args_file"]["completion"]["tokens"] == 16  # the no-arguments run too
    assert record["server"]["expect"] == []


def test_gpu_recipe_with_the_backend_linked_in_is_skipped_without_a_gpu(tmp_path: Path, model: Path) -> None:
    tiny = _device_project(tmp_path, backend_dl=False)
    out = install_stand_in(tiny)
    res = tiny.cli("smoke", "-r", "tiny", "--model", str(model), "--json", env={"PATH": _path_without_nvidia_smi()})
    assert res.returncode == 0, res.stderr
    record = json.loads((out / "smoke.json").read_text())
    assert record["status"] == "skipped"
    assert "GGML_BACKEND_DL off" in record["reason"] and "NVIDIA GPU" in record["reason"]
    assert "server" not in record  # nothing was started


def test_gpu_recipe_on_a_gpu_host_checks_expect_stand_in_nvidia_smi(tmp_path: Path, model: Path) -> None:
    """No NVIDIA GPU exists on these hosts, so nvidia-smi is a stand-in; the server is the stand-in too."""
    tiny = _device_project(tmp_path, backend_dl=True)
    env = _stand_in_nvidia_smi(tmp_path)
    out = install_stand_in(tiny, "gpu")
    res = tiny.cli("smoke", "-r", "tiny", "--model", str(model), "--json", env=env)
    assert res.returncode == 0, res.stderr
    record = json.loads((out / "smoke.json").read_text())
    assert record["status"] == "passed" and record["coverage"] == "full"
    assert record["device"] == {"needs": "nvidia-gpu", "found": "NVIDIA L4, driver 580.95.05"}
    assert record["ran_on"] == "CUDA0 (NVIDIA L4)"
    assert record["server"]["expect"] == ["using device CUDA0 \\("]
    assert not record.get("reason")

    # a GPU is there but the server did not use it: smoke.expect is enforced and fails the smoke
    (out / "smoke.json").unlink()
    (out / "bin" / "llama-server").write_text(fakeserver.script("ok"))
    res = tiny.cli("smoke", "-r", "tiny", "--model", str(model), env=env)
    assert res.returncode == 6, res.stderr
    assert "does not match smoke.expect" in res.stderr and "using device CUDA0" in res.stderr


def test_changed_smoke_settings_or_a_new_gpu_invalidate_the_smoke_record(tmp_path: Path, model: Path, monkeypatch) -> None:
    """A smoke result is reused (stages.SMOKE.done) only for the same build, smoke settings and device situation."""
    from locara_build.build import hostdetect
    from locara_build.build.plan import make_plan
    from locara_build.core.workdir import Project, WorkDir
    from locara_build.pipeline.stages import SMOKE

    tiny = _device_project(tmp_path, backend_dl=True)
    install_stand_in(tiny)
    monkeypatch.setenv("PATH", _path_without_nvidia_smi())
    res = tiny.cli("smoke", "-r", "tiny", "--model", str(model))
    assert res.returncode == 0, res.stderr

    def done() -> bool:
        plan = make_plan(Project(tiny.project), WorkDir(tiny.work), ["tiny"])
        return SMOKE.done(plan, plan.recipes[0]) is not None

    assert done()
    monkeypatch.setattr(hostdetect, "find_device", lambda kind, **_: "NVIDIA L4, driver 580.95.05")
    assert not done()  # a GPU appeared: smoke it on the GPU this time
    monkeypatch.undo()
    monkeypatch.setenv("PATH", _path_without_nvidia_smi())
    recipe = tiny.project / "recipes" / "tiny.toml"
    recipe.write_text(recipe.read_text().replace("timeout = 5", "timeout = 6"))
    assert not done()  # other smoke settings


def test_release_notes_say_what_each_smoke_test_covered() -> None:
    from locara_build.release.notes import smoke_cell

    assert smoke_cell({"smoke": {"status": "passed", "coverage": "full", "ran_on": "Vulkan0 (llvmpipe)"}}) == "passed on Vulkan0 (llvmpipe)"
    fallback = {"status": "passed", "coverage": "cpu-fallback", "ran_on": "CPU", "reason": "no GPU | CUDA kernels not exercised"}
    assert smoke_cell({"smoke": fallback}) == "CPU only (no GPU \\| CUDA kernels not exercised)"  # table-safe
    assert smoke_cell({"smoke": {"status": "skipped", "reason": "needs a GPU"}}) == "skipped: needs a GPU"
    assert smoke_cell({}) == "not run"


def test_unknown_smoke_device_is_a_recipe_error_with_a_suggestion(tmp_path: Path) -> None:
    tiny = stand_in_project(tmp_path, recipe_text=TINY_RECIPE.replace("[smoke]\n", '[smoke]\ndevice = "nvidia"\n'))
    res = tiny.cli("plan", "-r", "tiny")
    assert res.returncode != 0
    assert "unknown smoke device `nvidia`" in res.stderr and "nvidia-gpu" in res.stderr
