"""``package``: turn a finished build into the archive users download.

For each planned recipe, from its immutable build output (``RecipePlan.output_dir``) only — never
from the CMake build tree, never from system directories — this stages::

    <artifact>/bin/            llama-server + every library it loads, + the backend plugins
    <artifact>/ui/             the completion UI (locara_build/resources/ui)
    <artifact>/models/manifest.json
    <artifact>/llama-server.args
    <artifact>/run.sh | run.cmd
    <artifact>/LICENSES/       llama.cpp's and each vendored component's license (+ README.txt)
    <artifact>/BUILDINFO.json  upstream, patches, recipe, compiler, CMake args
    <artifact>/sbom.cdx.json   CycloneDX SBOM listing every other file with its sha256

and writes ``<work>/dist/<version>/<artifact file>`` (deterministic: :mod:`locara_build.package.archive`),
its record ``<artifact file>.json`` and, on Linux, ``<artifact>-debug.tar.gz`` with the separated
debug symbols (``bin/<file>.debug``; unpack it over the artifact and gdb finds them).

**What ships (bin/).** The roots are the recipe's ``ship.binaries`` and the ``GGML_BACKEND_DL``
plugins (platform ``plugin_globs``, e.g. ``libggml-*.so`` files with no soname of their own:
nothing links them, libggml dlopen()s them from the executable's directory). From the roots,
every needed library (``DT_NEEDED`` via ``readelf``; PE imports; Mach-O load commands) is followed:

* provided by the OS or the user's driver (:meth:`Platform.system_library`: glibc, libstdc++,
  libgcc_s, libgomp, OpenSSL 3, the Vulkan loader, the NVIDIA driver...): never shipped; listed in
  ``BUILDINFO.json`` ``requirements`` with the newest glibc / libstdc++ symbol versions used;
* found in the build output's ``bin/``: shipped under the name the loader asks for (a regular
  file, never a symlink), provided the needing binary's runpath is ``$ORIGIN`` and the name is
  allowed by ``ship.libraries`` / ``ship.runtime``;
* anything else: the package fails (the binary would not start on a user's machine).

Libraries in ``bin/`` that nothing loads are left out. Linux binaries are stripped
(``strip --strip-unneeded``) after their symbols were copied out (``objcopy --only-keep-debug`` +
``--add-gnu-debuglink``). Staged binaries are then signed per the recipe (:mod:`locara_build.release.signing`).
A staged file that mentions the work dir, the project or the source/build paths fails the package.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from locara_build import __version__
from locara_build.build import platforms
from locara_build.build.build import is_built, read_build_record, scan_path_leaks
from locara_build.build.plan import PRODUCT, Plan, RecipePlan
from locara_build.build.platforms import BinaryInfo, Platform
from locara_build.core import log
from locara_build.core import run as _run
from locara_build.core.digest import sha256_file
from locara_build.core.errors import BuildError, ConfigError, VerifyError, disk_full, is_no_space
from locara_build.core.workdir import WorkDir
from locara_build.package import archive, licenses
from locara_build.package.launchers import ARGS_FILE, DEFAULT_HOST, DEFAULT_PORT, args_file, render_launchers
from locara_build.package.models import ModelManifest, load_manifest
from locara_build.package.sbom import PatchInfo, SbomInput, ShippedFile, ToolInfo, make_sbom
from locara_build.pipeline import records
from locara_build.pipeline.records import BuildRecord, PackageRecord
from locara_build.upstream.lock import atomic_write_bytes
from locara_build.upstream.sourcetree import require_tree

__all__ = [
    "PackageResult",
    "ShippedBinary",
    "package",
    "resolve_binaries",
    "RECORD_SCHEMA",
    "BUILDINFO_SCHEMA",
    "debug_artifact_name",
]

RECORD_SCHEMA = PackageRecord.SCHEMA
#: The SBOM written beside an archive: ``<artifact file>.cdx.json`` (release ships it under that name).
SBOM_SUFFIX = ".cdx.json"
BUILDINFO_SCHEMA = 1
UI_FILES = ("index.html", "app.js", "style.css", "favicon.svg")
OUR_LICENSE = """\
locara-build (the web UI in ui/ and the launchers run.sh / run.cmd)

MIT License

Copyright (c) the locara-build authors

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT
NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES
OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN
CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShippedBinary:
    name: str  # file name in the artifact's bin/
    source: Path  # the file in the build output it is copied from (symlinks resolved)
    role: str  # binary | plugin | library
    info: BinaryInfo
    needed_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class PackageResult:
    recipe: str
    artifact: Path
    record_path: Path
    sha256: str
    size: int
    unpacked_size: int
    files: tuple[ShippedFile, ...]
    requirements: dict[str, Any]
    debug_artifact: Path | None
    seconds: float
    signing: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "artifact": str(self.artifact),
            "record": str(self.record_path),
            "sha256": self.sha256,
            "size": self.size,
            "unpacked_size": self.unpacked_size,
            "files": len(self.files),
            "requirements": self.requirements,
            "debug_artifact": str(self.debug_artifact) if self.debug_artifact else None,
            "seconds": round(self.seconds, 3),
            "signing": self.signing,
        }


def debug_artifact_name(artifact_name: str) -> str:
    return f"{artifact_name}-debug.tar.gz"


# --- which binaries ship ----------------------------------------------------------------------


def _matches(name: str, patterns: Iterable[str], case_insensitive: bool) -> bool:
    if case_insensitive:
        return any(fnmatch.fnmatchcase(name.lower(), p.lower()) for p in patterns)
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _inside(path: Path, root: Path, what: str) -> Path:
    real = path.resolve()
    try:
        real.relative_to(root.resolve())
    except ValueError:
        raise BuildError(
            f"{path} resolves to {real}, outside the build output {root}: a package takes files from the build output only.",
            hint="Rebuild (`locara-build build`); the build stage copies every shipped file into the output dir.",
        ) from None
    if not real.is_file():
        raise BuildError(f"{path} ({what}) is not a regular file.", hint="Rebuild (`locara-build build`).")
    return real


def resolve_binaries(bin_dir: Path, rp: RecipePlan, platform: Platform) -> tuple[list[ShippedBinary], dict[str, dict[str, Any]]]:
    """The files of ``bin_dir`` that ship (roots + what they load) and the system libraries they need.

    Returns ``(shipped, system)`` where ``system`` maps a library name to ``{"provided_by", "needed_by",
    "versions"}``.
    """
    recipe = rp.recipe
    fold = platform.loader_folds_case
    key = (lambda s: s.lower()) if fold else (lambda s: s)
    entries = {key(p.name): p for p in sorted(bin_dir.iterdir())}
    allowed = tuple(recipe.ship.libraries) + tuple(recipe.ship.runtime)

    roots: list[tuple[str, str]] = []
    for name in recipe.ship.binaries:
        exe = f"{name}{recipe.exe_suffix}"
        if key(exe) not in entries:
            raise BuildError(
                f"{bin_dir}: `{exe}` (ship.binaries of recipe `{recipe.name}`) is not in the build output.",
                hint=f"Rebuild (`locara-build build --recipe {recipe.name}`) or fix `ship.binaries` in {recipe.path}.",
            )
        roots.append((entries[key(exe)].name, "binary"))
    for path in entries.values():
        if path.is_symlink() or not path.is_file() or not _matches(path.name, platform.plugin_globs, fold):
            continue
        info = platform.inspect_binary(path)
        if info.soname in (None, path.name):  # a module: nothing links it by another name
            roots.append((path.name, "plugin"))

    shipped: dict[str, ShippedBinary] = {}
    needed_by: dict[str, list[str]] = {}
    system: dict[str, dict[str, Any]] = {}
    queue = list(roots)
    while queue:
        name, role = queue.pop(0)
        if key(name) in {key(n) for n in shipped}:
            continue
        src = _inside(entries[key(name)], bin_dir, role)
        info = platform.inspect_binary(src)
        absolute = [p for p in info.runpath if p.startswith("/")]
        if absolute:
            raise BuildError(
                f"{bin_dir / name} has an absolute runpath ({':'.join(info.runpath)}): it would load libraries "
                "from the build host's directories.",
                hint="Build with CMAKE_INSTALL_RPATH=$ORIGIN and CMAKE_BUILD_WITH_INSTALL_RPATH=ON (the platform defaults).",
            )
        shipped[name] = ShippedBinary(name=name, source=src, role=role, info=info)
        for need in info.needed:
            base = need.replace("\\", "/").rsplit("/", 1)[-1]
            why = platform.system_library(need)
            if why is not None:
                entry = system.setdefault(base, {"provided_by": why, "needed_by": [], "versions": []})
                entry["needed_by"] = sorted({*entry["needed_by"], name})
                entry["versions"] = sorted({*entry["versions"], *info.versions.get(base, ())})
                continue
            if key(base) not in entries:
                raise BuildError(
                    f"{bin_dir / name} needs `{need}`, which is neither in the build output's bin/ nor a library "
                    f"every {recipe.os} system provides: the package would not start on a user's machine.",
                    hint=f"Add it to `ship.libraries` / `ship.runtime` of {recipe.path} (the build stage then copies it), "
                    "or, if the OS provides it, to the platform's system libraries (locara_build/build/platforms).",
                )
            if not platform.finds_beside(info):
                raise BuildError(
                    f"{bin_dir / name} needs `{base}` from its own directory, but its runpath "
                    f"({':'.join(info.runpath) or 'none'}) does not say so: the loader would not find it after unpacking.",
                    hint="Build with CMAKE_INSTALL_RPATH=$ORIGIN (macOS: @loader_path) and CMAKE_BUILD_WITH_INSTALL_RPATH=ON.",
                )
            if not _matches(base, allowed, fold):
                raise ConfigError(
                    f"{bin_dir / name} needs `{base}`, but recipe `{recipe.name}` does not allow it in "
                    f"ship.libraries / ship.runtime ({', '.join(allowed) or 'empty'}).",
                    hint=f"Add a pattern for it to `ship.libraries` in {recipe.path}.",
                )
            needed_by.setdefault(base, []).append(name)
            queue.append((entries[key(base)].name, "library"))
    out = [
        ShippedBinary(b.name, b.source, b.role, b.info, tuple(sorted(set(needed_by.get(b.name, ())))))
        for b in sorted(shipped.values(), key=lambda b: b.name)
    ]
    unused = sorted(
        p.name
        for p in entries.values()
        if p.name not in shipped and not p.is_symlink() and p.name != "build.json" and _matches(p.name, allowed, fold)
    )
    if unused:
        log.detail(f"{recipe.name}: not loaded by the shipped binaries, left out: {', '.join(unused)}")
    return out, dict(sorted(system.items()))


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text))


def _requirements(system: dict[str, dict[str, Any]], recipe_requirements: dict[str, str]) -> dict[str, Any]:
    req: dict[str, Any] = {}
    versions = [v for entry in system.values() for v in entry["versions"]]
    glibc = [v.removeprefix("GLIBC_") for v in versions if re.fullmatch(r"GLIBC_\d+(\.\d+)*", v)]
    glibcxx = [v.removeprefix("GLIBCXX_") for v in versions if re.fullmatch(r"GLIBCXX_\d+(\.\d+)*", v)]
    if glibc:
        req["glibc"] = ">= " + max(glibc, key=_version_key)
    if glibcxx:
        req["libstdc++"] = "GLIBCXX >= " + max(glibcxx, key=_version_key)
    req["system_libraries"] = {name: entry["provided_by"] for name, entry in system.items()}
    req.update(dict(sorted(recipe_requirements.items())))
    return req


# --- staging ----------------------------------------------------------------------------------


def _sanitizer(plan: Plan, rp: RecipePlan) -> Any:
    """Replace the build host's paths (work dir, project, home) by placeholders in strings."""
    places = {
        str(plan.source_dir): "<src>",
        str(rp.cmake_dir): "<build>",
        str(rp.output_dir): "<output>",
        str(plan.work_dir): "<work>",
        str(plan.project_root): "<project>",
    }
    home = str(Path.home())
    if len(home) > 1:
        places.setdefault(home, "~")
    pairs = sorted(places.items(), key=lambda kv: len(kv[0]), reverse=True)

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            for needle, repl in pairs:
                value = value.replace(needle, repl)
            return value
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        return value

    return clean


def _source_label(source: str) -> str:
    """The lock's upstream source, unless it is a path on the build host."""
    source = source.removeprefix("archive:") if source.startswith("archive:") and "://" not in source else source
    if source.startswith(("/", "~")) or re.match(r"^[A-Za-z]:[\\/]", source) or source.startswith("file:"):
        return "<local path>"
    return source


def _compilers(record: BuildRecord) -> dict[str, Any]:
    comp = record.toolchain.get("compiler") or {}
    out = {}
    for lang, data in sorted(comp.items()):
        if isinstance(data, dict):
            out[lang] = {"id": data.get("id"), "version": data.get("version")}
    return out


def _buildinfo(plan: Plan, rp: RecipePlan, record: BuildRecord, requirements: dict[str, Any], models: ModelManifest) -> dict[str, Any]:
    clean = _sanitizer(plan, rp)
    r = rp.recipe
    toolchain = record.toolchain
    configure = list(record.configure.get("args") or ["cmake", *rp.configure_args])
    if configure and "/" in configure[0].replace("\\", "/"):
        configure[0] = Path(configure[0]).name  # the cmake that ran, not where it is installed
    configure = [
        re.sub(r"^(-DCMAKE_(?:MAKE_PROGRAM|[A-Z]+_COMPILER(?:_LAUNCHER)?)(?::[A-Z]+)?=)(/.*/)([^/]+)$", r"\1\3", a)
        for a in configure
    ]
    info = {
        "schema": BUILDINFO_SCHEMA,
        "product": PRODUCT,
        "artifact": rp.artifact.name,
        "version": str(plan.version),
        "recipe": {
            "name": r.name,
            "file": f"recipes/{r.path.name}",
            "hash": r.recipe_hash,
            "description": r.description,
            "os": r.os,
            "arch": r.arch,
            "backend": r.backend,
            "flavour": r.flavour,
        },
        "upstream": {
            "source": _source_label(plan.lock.source),
            "repository": "https://github.com/ggml-org/llama.cpp",
            "ref": plan.lock.ref,
            "tag": plan.lock.tag,
            "commit": plan.lock.known_commit,  # "" when the source recorded none (tree-only: see `described`)
            "commit_date": plan.lock.commit_date,
            "source_date_epoch": plan.source_date_epoch,
            **{k: v for k, v in plan.lock.upstream_record().items() if k not in ("source", "commit", "tag", "commit_date")},
        },
        "patches": {"hash": plan.patch_set_hash, "series": [p.to_dict() for p in plan.patches]},
        "build": {
            "key": rp.build_key,
            "targets": list(r.targets),
            "cmake_args": clean(list(configure)),
            "compiler": _compilers(record),
            "cmake": (toolchain.get("cmake") or {}).get("version"),
            "ninja": (toolchain.get("ninja") or {}).get("version"),
            "env": clean(dict(sorted(rp.env.items()))),
        },
        "requirements": requirements,
        "server": {
            "args_file": ARGS_FILE,
            "defaults": {"host": DEFAULT_HOST, "port": DEFAULT_PORT, "ui": "ui/"},
            "default_model": models.default,
        },
        "packaged_by": {"name": "locara-build", "version": __version__},
    }
    return clean(info)


def _ui_files() -> dict[str, bytes]:
    base = resources.files("locara_build").joinpath("resources", "ui")
    out = {}
    for name in UI_FILES:
        node = base.joinpath(name)
        if not node.is_file():
            raise BuildError(f"the completion UI file {name} is missing from the locara-build installation.", hint="Reinstall locara-build.")
        out[name] = node.read_bytes()
    return out


def _write(path: Path, data: bytes, executable: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, 0o755 if executable else 0o644)


def _verify_build(out: Path, record: BuildRecord) -> None:
    """The build output must be what its build.json says (it is immutable; a change is tampering)."""
    for entry in record.files:
        if entry.sha256 is None:  # a symlink
            continue
        path = out / entry.path
        if not path.is_file():
            raise VerifyError(f"{path} is listed in {out / 'build.json'} but missing.", hint=f"Delete {out} and rebuild.")
        if sha256_file(path) != entry.sha256:
            raise VerifyError(
                f"{path} changed after the build (sha256 differs from {out / 'build.json'}); refusing to package it.",
                hint=f"Delete {out} and run `locara-build build` again.",
            )


def _strip(platform: Platform, staged: Path, debug_dir: Path | None) -> Path | None:
    debug_file = debug_dir / f"{staged.name}.debug" if debug_dir is not None else None
    commands = platform.strip_commands(staged, debug_file)
    if not commands:
        return None
    if debug_file is not None:
        debug_file.parent.mkdir(parents=True, exist_ok=True)
    for argv in commands:
        _run.run(argv, env={"LC_ALL": "C"}, error=BuildError, what=Path(argv[0]).name, hint="Check binutils (strip, objcopy).")
    if debug_file is not None and debug_file.exists():
        os.chmod(debug_file, 0o644)
        return debug_file
    return None


# --- the stage --------------------------------------------------------------------------------


def package(
    plan: Plan,
    rp: RecipePlan,
    *,
    out_dir: Path | None = None,
    models: ModelManifest | None = None,
    debug: bool = True,
    require_signing: bool = False,
) -> PackageResult:
    """Package the finished build of ``rp`` into ``out_dir`` (default ``<work>/dist/<version>``)."""
    start = time.monotonic()
    recipe = rp.recipe
    platform = platforms.get(recipe.os)
    output = rp.output_dir
    if not is_built(output):
        raise BuildError(
            f"recipe `{rp.name}` has no finished build at {output} (build key {rp.build_key}).",
            hint=f"Run `locara-build build --recipe {rp.name}` first.",
        )
    record = read_build_record(output)
    _verify_build(output, record)
    require_tree(plan.source_dir, plan.lock.commit, plan.patch_set_hash)
    if models is None:
        models = load_manifest(plan.project_root / "recipes" / "models.toml")
    default_model = models.default_model
    if default_model is None:
        raise ConfigError(
            f"{models.source or 'the model manifest'}: no `default` model: the launchers need one to start without -m.",
            hint="Set `default = \"<model id>\"` at the top of recipes/models.toml.",
        )

    dist = out_dir or WorkDir(plan.work_dir).dist(str(plan.version))
    dist.mkdir(parents=True, exist_ok=True)
    name = rp.artifact.name
    staging_root = dist / f".staging-{name}"
    shutil.rmtree(staging_root, ignore_errors=True)
    top = staging_root / name
    debug_top = staging_root / "debug" / name
    record_path = PackageRecord.path(dist, rp.artifact.file)
    written: list[Path] = []  # archives this call put in place; the record, written last, commits them
    committed = False
    try:
        with log.step(f"package {rp.name}"):
            binaries, system = resolve_binaries(output / "bin", rp, platform)
            requirements = _requirements(system, dict(recipe.requirements))
            for b in binaries:
                dest = top / "bin" / b.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(b.source, dest)
                os.chmod(dest, 0o755 if b.role == "binary" else 0o644)
                if not any(fnmatch.fnmatch(b.name, pat) for pat in recipe.ship.runtime):
                    # third-party runtimes (e.g. NVIDIA's cudart/cuBLAS) ship byte-for-byte as redistributed
                    _strip(platform, dest, (debug_top / "bin") if debug else None)

            ui_files = _ui_files() if "completion" in recipe.ship.ui else {}
            if "chat" in recipe.ship.ui:  # upstream's chat UI, built with npm from its package-lock.json (cached)
                from locara_build.package.chatui import CHAT_PAGE, chat_ui_files, link_completion_to_chat

                chat = chat_ui_files(plan.source_dir, Path(plan.work_dir) / "cache")
                if "index.html" in ui_files:
                    ui_files["index.html"] = link_completion_to_chat(ui_files["index.html"])
                else:
                    ui_files["index.html"] = chat[CHAT_PAGE]
                ui_files.update(chat)
            for fname, data in ui_files.items():
                _write(top / "ui" / fname, data)
            _write(top / "models" / "manifest.json", models.to_json().encode())
            _write(top / ARGS_FILE, args_file())
            for fname, data in render_launchers(recipe.os, platform.launchers, artifact=name, model=default_model,
                                             chat="chat" in recipe.ship.ui).items():
                _write(top / fname, data, executable=fname.endswith((".sh", ".command")))

            gathered = licenses.gather(plan.source_dir)
            for lic in gathered:
                _write(top / "LICENSES" / lic.file_name, lic.text.encode())
            _write(top / "LICENSES" / "locara-build.txt", OUR_LICENSE.encode())
            _write(top / "LICENSES" / "README.txt", licenses.readme(gathered).encode())

            buildinfo = _buildinfo(plan, rp, record, requirements, models)
            _write(top / "BUILDINFO.json", (json.dumps(buildinfo, indent=2, sort_keys=True) + "\n").encode())

            from locara_build.release.signing import sign_staged

            signing = sign_staged(recipe.signing, top, require=require_signing).to_dict()

            files = _shipped_files(top)
            sbom = make_sbom(
                SbomInput(
                    artifact_name=name,
                    product=PRODUCT,
                    version=str(plan.version),
                    source_date_epoch=plan.source_date_epoch,
                    upstream_url="https://github.com/ggml-org/llama.cpp",
                    upstream_commit=plan.lock.commit,
                    upstream_tag=plan.lock.tag,
                    patches=[PatchInfo(p.name, p.sha256, p.subject, p.path.read_text("utf-8", "replace")) for p in plan.patches],
                    licenses=gathered,
                    files=files,
                    tools=_tools(record),
                    tool_version=__version__,
                    recipe=rp.name,
                    recipe_hash=recipe.recipe_hash,
                    properties={"os": recipe.os, "arch": recipe.arch, "backend": recipe.backend, "flavour": recipe.flavour},
                )
            )
            _write(top / "sbom.cdx.json", sbom.encode())

            needles = {str(plan.work_dir), str(plan.project_root), str(plan.source_dir), str(rp.cmake_dir), str(output)}
            leaks = scan_path_leaks(top, needles)
            if leaks:
                raise BuildError(
                    f"{rp.name}: build-host paths inside the package: "
                    + ", ".join(f"{leak['file']} ({leak['path']})" for leak in leaks)
                    + ".",
                    hint="Binaries: build with -ffile-prefix-map (cmake_args.prefix_map_flags). Text files: report a bug.",
                )

            entries = archive.entries_from_tree(top)
            unpacked = sum(e.size() for e in entries if not e.is_dir)
            written.append(dist / rp.artifact.file)
            artifact_path = archive.write_archive(dist / rp.artifact.file, rp.artifact.format, name, entries, plan.source_date_epoch)
            debug_path: Path | None = None
            if debug and debug_top.is_dir() and any(debug_top.rglob("*.debug")):
                written.append(dist / debug_artifact_name(name))
                debug_path = archive.write_tar_gz(
                    dist / debug_artifact_name(name), name, archive.entries_from_tree(debug_top), plan.source_date_epoch
                )
            digest = sha256_file(artifact_path)
            size = artifact_path.stat().st_size
            # the SBOM beside the archive too: release ships it without opening the archive
            sbom_path = dist / f"{rp.artifact.file}{SBOM_SUFFIX}"
            written.append(sbom_path)
            atomic_write_bytes(sbom_path, sbom.encode())
            os.chmod(sbom_path, 0o644)
            rec = {
                "schema": PackageRecord.SCHEMA,
                "file": rp.artifact.file,
                "name": name,
                "format": rp.artifact.format,
                "sha256": digest,
                "size": size,
                "unpacked_size": unpacked,
                "version": str(plan.version),
                "recipe": rp.name,
                "recipe_hash": recipe.recipe_hash,
                "os": recipe.os,
                "arch": recipe.arch,
                "backend": recipe.backend,
                "flavour": recipe.flavour,
                "build_key": rp.build_key,
                "build_started_at": record.started_at,
                "build_finished_at": record.finished_at,
                "upstream": {"commit": plan.lock.commit, "tag": plan.lock.tag},
                "source_date_epoch": plan.source_date_epoch,
                "requirements": requirements,
                "files": [
                    {"path": f.path, "sha256": f.sha256, "size": f.size, "mode": "0755" if f.executable else "0644"} for f in files
                ]
                + [{"path": "sbom.cdx.json", "sha256": sha256_file(top / "sbom.cdx.json"), "size": len(sbom.encode()), "mode": "0644"}],
                "debug": (
                    {"file": debug_path.name, "sha256": sha256_file(debug_path), "size": debug_path.stat().st_size} if debug_path else None
                ),
                "sbom": {"file": sbom_path.name, "sha256": sha256_file(sbom_path), "size": sbom_path.stat().st_size},
                "signing": signing,
                "smoke": smoke_of(rp),
                "zlib": archive.zlib_version(),
                "packaged_by": {"name": "locara-build", "version": __version__},
            }
            rec["files"].sort(key=lambda f: f["path"])
            package_record = records.from_dict(PackageRecord, rec, where=f"package record of {rp.name}")
            records.write(package_record, record_path)
            committed = True
    except OSError as exc:
        if is_no_space(exc):
            raise disk_full(exc, dist, f"package {rp.name}", kept=f"Earlier packages in {dist} are untouched.") from None
        raise
    finally:
        if not committed and written:  # failed or interrupted after an archive went in: no half package
            for path in (record_path, *written):
                path.unlink(missing_ok=True)
        shutil.rmtree(staging_root, ignore_errors=True)
    return PackageResult(
        recipe=rp.name,
        artifact=artifact_path,
        record_path=record_path,
        sha256=digest,
        size=size,
        unpacked_size=unpacked,
        files=tuple(files),
        requirements=requirements,
        debug_artifact=debug_path,
        seconds=time.monotonic() - start,
        signing=signing,
    )


def smoke_of(rp: RecipePlan) -> dict[str, str]:
    """What the smoke test of this very build showed (status, coverage, device), for the package
    record, release.json and the release notes; ``not run`` when it was not smoke-tested."""
    from locara_build.smoke.smoke import smoke_summary
    from locara_build.smoke.smokeplan import valid_smoke_record

    return smoke_summary(valid_smoke_record(rp))


def _shipped_files(top: Path) -> list[ShippedFile]:
    out = []
    for path in sorted(top.rglob("*")):
        if path.is_file() and path.name != "sbom.cdx.json":
            st = path.stat()
            out.append(ShippedFile(path.relative_to(top).as_posix(), sha256_file(path), st.st_size, bool(st.st_mode & stat.S_IXUSR)))
    return out


def _tools(record: BuildRecord) -> list[ToolInfo]:
    tools = []
    seen = set()
    for lang, data in _compilers(record).items():
        ident = (data.get("id") or lang).lower()
        label = {"gnu": "gcc", "clang": "clang", "appleclang": "apple-clang", "msvc": "msvc"}.get(ident, ident)
        if (label, data.get("version")) in seen:
            continue
        seen.add((label, data.get("version")))
        tools.append(ToolInfo(label, data.get("version") or "", f"{lang.upper()} compiler that built the binaries; not shipped"))
    toolchain = record.toolchain
    for tool in ("cmake", "ninja"):
        version = (toolchain.get(tool) or {}).get("version")
        if version:
            tools.append(ToolInfo(tool, version, "build tool; not shipped"))
    return tools
