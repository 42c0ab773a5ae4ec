"""``release``, ``keys generate``, ``sign``, ``publish``, ``install``, ``download``: trust, from the build
host to the user's machine (docs/signing.md, docs/releases.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from locara_build.cli.app import JsonOpt, RecipeOpt, app, output, state
from locara_build.core import log
from locara_build.core.errors import ConfigError

__all__ = ["keys_app"]

keys_app = typer.Typer(help="Release signing keys (minisign format).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _plan(recipe: list[str] | None):  # noqa: ANN202 - Plan, imported lazily
    from locara_build.build.plan import make_plan

    st = state()
    return make_plan(st.project, st.work, recipe)


# --- release ----------------------------------------------------------------------------------------


@app.command("release")
def release_cmd(
    out: Annotated[Path | None, typer.Option("--out", help="Release folder. Default: <work>/releases/<version>.")] = None,
    key: Annotated[
        Path | None,
        typer.Option("--key", help="minisign secret key file. Default: $LOCARA_MINISIGN_KEY (the key file's contents)."),
    ] = None,
    expires_days: Annotated[int, typer.Option("--expires-days", help="Days until installers refuse this release.")] = 90,
    dist: Annotated[Path | None, typer.Option("--dist", help="Packaged artifacts. Default: <work>/dist/<version>.")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Release even if the version is not above the releases beside it; replace an existing one.")
    ] = False,
    require_all: Annotated[bool, typer.Option("--require-all", help="Fail if a planned recipe has no packaged artifact.")] = False,
    recipe: RecipeOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Release manifest + SHA256SUMS + minisign signatures + SLSA provenance over the packaged artifacts."""
    from locara_build.release.previous import notes_renderer
    from locara_build.release.release import make_release
    from locara_build.release.signing.keys import load_signing_key

    plan = _plan(recipe)
    work = state().work
    version = str(plan.version)
    signing_key = load_signing_key(key)
    target = out or work.release(version)
    result = make_release(
        plan,
        dist or work.dist(version),
        target,
        signing_key,
        expires_days=expires_days,
        force=force,
        require_all=require_all,
        notes=notes_renderer(plan, work, target.parent),
    )
    if output(json_, {"ok": True, **result.to_dict()}):
        return
    log.info(f"release {result.version} in {result.out} (signed by {result.key_id})")
    log.info(f"verify by hand: cd {result.out} && minisign -Vm SHA256SUMS -p KEY.pub && sha256sum -c SHA256SUMS")


# --- keys -------------------------------------------------------------------------------------------


@keys_app.command("generate")
def keys_generate(
    out: Annotated[Path, typer.Option("--out", help="Folder for the key files.")] = Path("."),
    name: Annotated[str, typer.Option("--name", help="Base name: NAME.key (secret) and NAME.pub.")] = "locara-release",
    unencrypted: Annotated[
        bool, typer.Option("--unencrypted", help="Write the secret key WITHOUT a password (like `minisign -G -W`).")
    ] = False,
    kdf: Annotated[
        str,
        typer.Option("--kdf", help="scrypt cost: sensitive (minisign's default, 1 GiB) or interactive (16 MiB; throwaway keys)."),
    ] = "sensitive",
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing key files.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Create a minisign keypair. The password comes from $LOCARA_MINISIGN_PASSWORD or is asked for twice."""
    from locara_build.release.signing.keys import KDF_CHOICES, read_password, write_keypair

    if kdf not in KDF_CHOICES:
        raise ConfigError(f"--kdf {kdf}: unknown.", hint=f"Use one of: {', '.join(KDF_CHOICES)}.")
    password = None
    if not unencrypted:
        password = read_password(confirm=True, prompt="Password for the new secret key: ")
        if not password:
            raise ConfigError(
                "no password for the new secret key.",
                hint="Set LOCARA_MINISIGN_PASSWORD, run in a terminal to be asked, or pass --unencrypted explicitly.",
            )
    secret_path, public_path = out / f"{name}.key", out / f"{name}.pub"
    key = write_keypair(secret_path, public_path, password=password, limits=KDF_CHOICES[kdf], force=force)
    data = {"ok": True, "key_id": key.id_hex, "secret_key": str(secret_path), "public_key": str(public_path),
            "encrypted": not unencrypted}
    if output(json_, data):
        return
    log.info(f"key {key.id_hex}: secret {secret_path} ({'encrypted' if password else 'UNENCRYPTED'}), public {public_path}")
    log.info("keep the secret key out of the repository; in CI put its contents in LOCARA_MINISIGN_KEY")


# --- sign a staged package ---------------------------------------------------------------------------


@app.command("sign")
def sign_cmd(
    folder: Annotated[Path, typer.Argument(help="A staged package folder (before it is archived).")],
    kind: Annotated[str, typer.Option("--kind", help="authenticode | macos | none (a recipe's `signing`).")],
    require_signing: Annotated[
        bool, typer.Option("--require-signing", help="Fail (exit 7) instead of leaving binaries unsigned.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Sign the binaries of a staged package: Authenticode (.exe/.dll) or codesign + notarization (Mach-O)."""
    from locara_build.release.signing import sign_staged

    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a folder.", hint="Pass the staged package folder.")
    report = sign_staged(kind, folder, require=require_signing)
    if output(json_, {"ok": True, **report.to_dict()}):
        return
    log.info(f"{kind}: {report.status}" + (f" ({report.reason})" if report.reason else "")
             + (f": {', '.join(report.files)}" if report.files else ""))


# --- publish ----------------------------------------------------------------------------------------


@app.command("publish")
def publish_cmd(
    to: Annotated[str, typer.Option("--to", help="A mirror directory, or github:OWNER/REPO.")],
    release_dir: Annotated[
        Path | None, typer.Argument(help="Release folder. Default: <work>/releases/<planned version>.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Publish even if older than the target's latest.")] = False,
    api_url: Annotated[
        str | None, typer.Option("--api-url", envvar="LOCARA_GITHUB_API_URL", help="GitHub API base URL (GitHub Enterprise).")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Upload a release (idempotent, resumable): to a static mirror folder or to GitHub Releases."""
    from locara_build.release.publish import publish

    if release_dir is None:
        release_dir = state().work.release(str(_plan(None).version))
    if not release_dir.is_dir():
        raise ConfigError(f"{release_dir}: no such release folder.", hint="Run `locara-build release` first.")
    result = publish(release_dir, to, force=force, api_url=api_url)
    if output(json_, {"ok": True, **result.to_dict()}):
        return
    log.summary(f"published {result.version}", ["target", "uploaded", "already there", "latest"],
                [(result.target, len(result.uploaded), len(result.skipped), "yes" if result.latest else "no")])


# --- install / download -----------------------------------------------------------------------------

FromOpt = Annotated[
    str | None,
    typer.Option("--from", envvar="LOCARA_INSTALL_FROM", help="Release mirror: URL, directory or github:OWNER/REPO."),
]
VersionOpt = Annotated[str, typer.Option("--version", help="A version, or latest.")]
BackendOpt = Annotated[str, typer.Option("--backend", help="auto | cpu | vulkan | cuda | rocm | metal | universal (one artifact with every backend); install also takes all (auto's artifact with every CPU variant, not only those this CPU runs).")]
TrustOpt = Annotated[
    list[Path] | None, typer.Option("--trust", help="Also trust this minisign public key (repeatable).")
]
FlavourOpt = Annotated[str, typer.Option("--flavour", help="Artifact flavour: release (default), or ci/dev test builds.")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Seconds without data before a download is abandoned.")]
NoBuiltinOpt = Annotated[
    bool, typer.Option("--no-builtin-keys", help="Trust only the --trust keys, not the project's built-in ones.")
]


def _default_prefix() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("locara", appauthor=False))


@app.command("install")
def install_cmd(
    from_: FromOpt = None,
    version: VersionOpt = "latest",
    backend: BackendOpt = "auto",
    prefix: Annotated[
        Path | None, typer.Option("--prefix", envvar="LOCARA_PREFIX", help="Install root. Default: the per-user data dir.")
    ] = None,
    trust: TrustOpt = None,
    no_builtin_keys: NoBuiltinOpt = False,
    allow_downgrade: Annotated[
        bool, typer.Option("--allow-downgrade", help="Install a version older than the newest one seen here.")
    ] = False,
    rollback: Annotated[bool, typer.Option("--rollback", help="Switch back to the previously installed version.")] = False,
    flavour: FlavourOpt = "release",
    keep: Annotated[int, typer.Option("--keep", help="Installed versions to keep (at least current + previous).")] = 2,
    timeout: TimeoutOpt = 30.0,
    no_store: Annotated[
        bool, typer.Option("--no-store", help="Download the whole archive even when the mirror has the release store (blobs + deltas).")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Verify a release with the pinned key(s), pick the artifact for this host, then build it from the
    installed version + the release store (only changed files are fetched, as deltas or blobs) or
    download and unpack the archive; verify every file; switch."""
    from locara_build.install.install import InstallOptions, install
    from locara_build.install.install import rollback as do_rollback

    prefix = prefix or _default_prefix()
    if rollback:
        result = do_rollback(prefix)
    else:
        result = install(
            InstallOptions(
                prefix=prefix, source=from_, version=version, backend=backend, flavour=flavour, trust=list(trust or []),
                builtin_keys=not no_builtin_keys, allow_downgrade=allow_downgrade, keep=keep, timeout=timeout,
                store=not no_store,
            )
        )
    if output(json_, {"ok": True, **result.to_dict()}):
        return
    log.info(f"{result.prefix / 'current'} -> {result.path.name} ({result.backend}: {result.reason})")
    log.info(f"start it: {result.prefix / 'current' / 'run.sh'} (or run.cmd on Windows)")


@app.command("download")
def download_cmd(
    from_: FromOpt = None,
    version: VersionOpt = "latest",
    backend: BackendOpt = "auto",
    dest: Annotated[Path, typer.Option("--dest", help="Where to put the verified archive.")] = Path("."),
    trust: TrustOpt = None,
    no_builtin_keys: NoBuiltinOpt = False,
    flavour: FlavourOpt = "release",
    timeout: TimeoutOpt = 30.0,
    json_: JsonOpt = False,
) -> None:
    """Fetch and verify the artifact for this host (signatures, expiry, sha256, provenance) without installing it."""
    from locara_build.install.install import InstallOptions, download

    path, art, why = download(
        InstallOptions(prefix=dest, source=from_, version=version, backend=backend, flavour=flavour,
                       trust=list(trust or []), builtin_keys=not no_builtin_keys, timeout=timeout),
        dest,
    )
    if output(json_, {"ok": True, "path": str(path), "sha256": art.sha256, "backend": art.backend, "reason": why}):
        return
    log.info(f"verified: {path} (sha256 {art.sha256})")
