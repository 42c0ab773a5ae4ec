"""``models``: fetch models named in a manifest into the content-addressed store; list, locate, verify."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from locara_build.cli.app import JsonOpt, app, output, state
from locara_build.core import log
from locara_build.core.errors import ConfigError, LocaraError, VerifyError

if TYPE_CHECKING:  # imported inside the commands: the store and downloads cost start-up time
    from locara_build.package.models import Model, ModelManifest

models_app = typer.Typer(
    help="Models: fetch (verified, resumable) into the content-addressed store, list, locate, verify.",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")

ManifestOpt = Annotated[
    Path | None,
    typer.Option(
        "--manifest",
        help="Model manifest: a package's models/manifest.json or a models.toml. Default: the project's recipes/models.toml.",
    ),
]
StoreOpt = Annotated[
    Path | None,
    typer.Option("--store", help="Model store. Default: $LOCARA_MODEL_STORE, else <work dir>/models."),
]


def _store(flag: Path | None) -> Path:
    return flag.expanduser().resolve() if flag else state().work.models


def _manifest(flag: Path | None) -> ModelManifest:
    from locara_build.package.models import load_manifest

    if flag is not None:
        return load_manifest(flag.expanduser().resolve())
    try:
        project = state().project
    except ConfigError:
        raise ConfigError(
            "no model manifest: not inside a locara-build project and no --manifest given.",
            hint="Pass --manifest <unpacked artifact>/models/manifest.json, or --url URL --sha256 HEX.",
        ) from None
    return load_manifest(project.models_path)


@models_app.command("fetch")
def fetch_cmd(
    model_id: Annotated[str | None, typer.Argument(metavar="[ID]", help="Model id in the manifest (default: its default model).")] = None,
    url: Annotated[str | None, typer.Option("--url", help="Fetch this URL instead of a manifest entry (needs --sha256).")] = None,
    sha256: Annotated[str | None, typer.Option("--sha256", help="Expected sha256 of --url's file.")] = None,
    size: Annotated[int | None, typer.Option("--size", help="Expected size in bytes of --url's file.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Fetch every model in the manifest.")] = False,
    manifest: ManifestOpt = None,
    store: StoreOpt = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds without data before a download is abandoned.")] = 30.0,
    json_: JsonOpt = False,
) -> None:
    """Download a model into the store (<store>/sha256/<hex>): resumable, verified, atomic; never keeps a bad file."""
    from locara_build.core import httpfetch
    from locara_build.package.models import adhoc_model, fetch_model

    if timeout <= 0:
        raise ConfigError(f"--timeout {timeout:g}: must be more than 0 seconds.", hint="For example --timeout 30.")
    fetcher = functools.partial(httpfetch.fetch, timeout=(httpfetch.DEFAULT_TIMEOUT[0], timeout))
    root = _store(store)
    models: list[Model]
    if url is not None:
        if sha256 is None:
            raise ConfigError("--url needs --sha256: a model is only stored after its sha256 is checked.", hint="Pass --sha256 HEX.")
        if all_:
            raise ConfigError("--url and --all do not go together.", hint="Use one or the other.")
        models = [adhoc_model(url, sha256, size, model_id)]
    else:
        if sha256 is not None or size is not None:
            raise ConfigError("--sha256/--size only apply with --url.", hint="Drop them, or pass --url.")
        mf = _manifest(manifest)
        if all_:
            models = list(mf.models)
        elif model_id is not None:
            models = [mf.get(model_id)]
        elif mf.default_model is not None:
            models = [mf.default_model]
        else:
            raise ConfigError(
                f"{mf.source}: no model id given and the manifest has no default.",
                hint=f"Name one: {', '.join(m.id for m in mf.models)}.",
            )
    results: list[dict[str, Any]] = []
    for m in models:
        with log.download_progress(m.id, m.size if m.size >= 0 else None) as update:
            outcome = fetch_model(m, root, progress=update, fetch=fetcher)
        verb = "downloaded" if outcome.downloaded else "already in the store"
        if outcome.resumed_from:
            verb += f" (resumed at {outcome.resumed_from} bytes)"
        log.info(f"{m.id}: {verb}: {outcome.path}")
        results.append(
            {
                "id": m.id,
                "file": m.file,
                "sha256": m.sha256,
                "size": outcome.path.stat().st_size,
                "path": str(outcome.path),
                "downloaded": outcome.downloaded,
                "url": outcome.url,
                "resumed_from": outcome.resumed_from,
            }
        )
    output(json_, {"ok": True, "store": str(root), "models": results})


@models_app.command("list")
def list_cmd(manifest: ManifestOpt = None, store: StoreOpt = None, json_: JsonOpt = False) -> None:
    """The manifest's models and whether each is in the store; then anything else the store holds."""
    from locara_build.package.models import list_store, store_has

    root = _store(store)
    try:
        mf: ModelManifest | None = _manifest(manifest)
    except ConfigError:
        if manifest is not None:
            raise
        mf = None
    listed = []
    known: set[str] = set()
    for m in mf.models if mf else ():
        path = store_has(root, m)
        known.add(m.sha256)
        listed.append(
            {
                "id": m.id,
                "name": m.label,
                "file": m.file,
                "size": m.size,
                "license": m.license,
                "default": bool(mf and mf.default == m.id),
                "present": path is not None,
                "path": str(path) if path else None,
            }
        )
    others = [
        {"sha256": b.sha256, "size": b.size, "path": str(b.path), "id": b.meta.get("id"), "file": b.meta.get("file")}
        for b in list_store(root)
        if b.sha256 not in known
    ]
    if output(json_, {"store": str(root), "models": listed, "other_blobs": others}):
        return
    rows = [
        (e["id"] + (" *" if e["default"] else ""), f"{e['size'] / 2**20:.0f} MiB", e["license"], "yes" if e["present"] else "no")
        for e in listed
    ]
    if rows:
        log.summary(f"models in {mf.source if mf else ''} (* = default)", ["id", "size", "license", "in store"], rows)
    if others:
        log.summary("other models in the store", ["sha256", "id", "file", "size"],
                    [(o["sha256"][:16], o["id"] or "", o["file"] or "", f"{o['size'] / 2**20:.0f} MiB") for o in others])
    log.info(f"store: {root}")


@models_app.command("path")
def path_cmd(
    model_id: Annotated[str | None, typer.Argument(metavar="[ID]", help="Model id (default: the manifest's default model).")] = None,
    manifest: ManifestOpt = None,
    store: StoreOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Print the store path of a model (exit 8 when it is not fetched yet), e.g. `llama-server -m "$(locara-build models path)"`."""
    from locara_build.package.models import blob_path, store_has

    root = _store(store)
    mf = _manifest(manifest)
    m = mf.get(model_id) if model_id else mf.default_model
    if m is None:
        raise ConfigError(f"{mf.source}: no default model.", hint="Name a model id.")
    path = store_has(root, m)
    if path is None:
        raise VerifyError(
            f"{m.id} is not in the model store {root} (expected {blob_path(root, m.sha256)}).",
            hint=f"Run `locara-build models fetch {m.id}`" + (f" --manifest {manifest}" if manifest else "") + ".",
        )
    if not output(json_, {"id": m.id, "path": str(path)}):
        typer.echo(str(path))


@models_app.command("verify")
def verify_cmd(
    store: StoreOpt = None,
    keep: Annotated[bool, typer.Option("--keep", help="Report corrupt files but do not delete them.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Re-hash every model in the store; a file whose content no longer matches its name is deleted (exit 8)."""
    from locara_build.package.models import verify_store

    root = _store(store)
    good, bad = verify_store(root, remove=not keep)
    output(json_, {"store": str(root), "ok": [b.sha256 for b in good], "corrupt": [str(b.path) for b in bad]})
    log.info(f"{root}: {len(good)} model file(s) verified")
    if bad:
        raise VerifyError(
            f"{root}: {len(bad)} model file(s) did not match their sha256: "
            + ", ".join(str(b.path) for b in bad)
            + (" (kept, --keep)" if keep else " (deleted)")
            + ".",
            hint="Fetch them again with `locara-build models fetch`.",
        )


__all__ = ["models_app", "LocaraError"]
