from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests explore new random inputs on every developer run; in CI they replay one fixed
# sequence (derandomize), so a red CI always means a change, never a lucky draw. A counterexample
# found locally goes into the test's NASTY examples, which every run tries first.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_configure(config: pytest.Config) -> None:
    # Keep the developer's real git identity and global config out of the tests' repos.
    os.environ.setdefault("GIT_AUTHOR_NAME", "locara test")
    os.environ.setdefault("GIT_AUTHOR_EMAIL", "test@locara.invalid")
    os.environ.setdefault("GIT_COMMITTER_NAME", "locara test")
    os.environ.setdefault("GIT_COMMITTER_EMAIL", "test@locara.invalid")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A private copy of this repo's project files (recipes/, patches/, ci/) that a test may change."""
    dest = tmp_path / "project"
    dest.mkdir()
    for name in ("recipes", "patches", "ci"):
        if (REPO / name).exists():
            shutil.copytree(REPO / name, dest / name)
    return dest


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    return d


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 600, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point in a child process (support/cli.py: the one runner)."""
    from support.cli import run_cli as one_runner

    return one_runner(*args, cwd=cwd, env=env, timeout=timeout, input=input)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def llama_pipeline(tmp_path_factory: pytest.TempPathFactory):
    """The real sync -> patches apply -> build -> smoke of linux-x86_64-cpu-ci, once per session
    (tests/support/pipeline.py); its build output is shared by the tests that need a real server."""
    from support.pipeline import llama_pipeline as run_pipeline

    return run_pipeline(tmp_path_factory.mktemp("llama-pipeline"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """On a developer machine a test may skip when a tool it drives is not installed (the reason says
    which). In CI (`CI=true`) `.ci/run` installs every such tool first, so a skip there means a broken
    setup: it is reported as a failure instead of passing silently."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every tool these tests need is installed: {reason}"
