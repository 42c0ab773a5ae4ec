"""The artifact's CycloneDX SBOM (``sbom.cdx.json``), made with cyclonedx-python-lib.

What it lists:

* the artifact itself (``metadata.component``, an application named after the archive);
* llama.cpp at the upstream commit, ``pkg:github/ggml-org/llama.cpp@<sha>``, with our patches in
  its ``pedigree.patches`` (each one's text, name and sha256) and ``modified`` when there are any;
* every vendored component whose license ships in ``LICENSES/`` (version when the tree says it);
* the compiler and CMake that built it (``scope: excluded``: used, not shipped);
* every shipped file (``type: file``) with its sha256.

The document is deterministic: the serial number is a UUIDv5 of the artifact name and its file
hashes, the timestamp is the upstream commit time (SOURCE_DATE_EPOCH), and the library sorts
components. No build-host path appears in it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from packageurl import PackageURL

from locara_build.package.licenses import LicenseText

__all__ = ["SbomInput", "ShippedFile", "PatchInfo", "ToolInfo", "make_sbom", "validate_sbom", "SCHEMA_VERSION"]

SCHEMA_VERSION = "1.6"
_NAMESPACE = uuid.UUID("6f1d3c1e-6a53-4b52-8f0e-3c1f2a7b9d10")  # locara-build SBOM serials


@dataclass(frozen=True)
class ShippedFile:
    path: str  # inside the top folder, posix
    sha256: str
    size: int
    executable: bool = False


@dataclass(frozen=True)
class PatchInfo:
    name: str
    sha256: str
    subject: str
    text: str


@dataclass(frozen=True)
class ToolInfo:
    name: str
    version: str
    description: str = ""


@dataclass(frozen=True)
class SbomInput:
    artifact_name: str
    product: str
    version: str
    source_date_epoch: int
    upstream_url: str
    upstream_commit: str
    upstream_tag: str
    patches: Sequence[PatchInfo]
    licenses: Sequence[LicenseText]
    files: Sequence[ShippedFile]
    tools: Sequence[ToolInfo] = ()
    tool_version: str = ""
    recipe: str = ""
    recipe_hash: str = ""
    properties: dict[str, str] = field(default_factory=dict)


def _github(url: str) -> tuple[str, str] | None:
    for prefix in ("https://github.com/", "http://github.com/", "git@github.com:"):
        if url.startswith(prefix):
            parts = url[len(prefix) :].removesuffix(".git").strip("/").split("/")
            if len(parts) >= 2:
                return parts[0], parts[1]
    return None


def make_sbom(inp: SbomInput) -> str:
    """The SBOM as CycloneDX JSON (schema :data:`SCHEMA_VERSION`), ending with a newline."""
    from cyclonedx.model import (
        AttachedText,
        ExternalReference,
        ExternalReferenceType,
        HashAlgorithm,
        HashType,
        Property,
        XsUri,
    )
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import (
        Component,
        ComponentScope,
        ComponentType,
        Diff,
        Patch,
        PatchClassification,
        Pedigree,
    )
    from cyclonedx.model.license import LicenseExpression
    from cyclonedx.output.json import JsonV1Dot6

    def sha(hexdigest: str) -> HashType:
        return HashType(alg=HashAlgorithm.SHA_256, content=hexdigest)

    artifact = Component(
        name=inp.artifact_name,
        version=inp.version,
        type=ComponentType.APPLICATION,
        bom_ref="artifact",
        description=f"{inp.product}: llama.cpp's llama-server, packaged by locara-build (recipe {inp.recipe})",
        properties=[Property(name=f"locara:{k}", value=v) for k, v in sorted(inp.properties.items())]
        + ([Property(name="locara:recipe", value=inp.recipe)] if inp.recipe else [])
        + ([Property(name="locara:recipe_hash", value=inp.recipe_hash)] if inp.recipe_hash else []),
    )

    gh = _github(inp.upstream_url) or ("ggml-org", "llama.cpp")
    upstream_purl = PackageURL(type="github", namespace=gh[0], name=gh[1], version=inp.upstream_commit)
    patches = [
        Patch(
            type=PatchClassification.UNOFFICIAL,
            diff=Diff(text=AttachedText(content=p.text, content_type="text/x-diff")),
        )
        for p in inp.patches
    ]
    llama_license = next((lic for lic in inp.licenses if lic.component.name == "llama.cpp"), None)
    llama = Component(
        name="llama.cpp",
        group=gh[0],
        version=inp.upstream_tag or inp.upstream_commit,
        type=ComponentType.FRAMEWORK,
        bom_ref="llama.cpp",
        purl=upstream_purl,
        licenses=[LicenseExpression(llama_license.component.spdx if llama_license else "MIT")],
        description="llama.cpp / ggml: llama-server and its libraries" + (", with locara-build's patches" if patches else ""),
        external_references=[
            ExternalReference(type=ExternalReferenceType.VCS, url=XsUri(f"https://github.com/{gh[0]}/{gh[1]}")),
        ],
        properties=[Property(name="locara:upstream_commit", value=inp.upstream_commit)]
        + [Property(name=f"locara:patch:{p.name}", value=f"sha256:{p.sha256} {p.subject}") for p in inp.patches],
        pedigree=Pedigree(patches=patches, notes=f"{len(patches)} patch(es) from locara-build's patches/series") if patches else None,
        modified=False,
    )
    components = [llama]
    vendored_refs = []
    for lic in inp.licenses:
        comp = lic.component
        if comp.name == "llama.cpp":
            continue
        ref = f"vendored:{comp.name}"
        vendored_refs.append(ref)
        purl = None
        if comp.purl:
            ptype, _, rest = comp.purl.removeprefix("pkg:").partition("/")
            ns, _, name = rest.partition("/")
            purl = PackageURL(type=ptype, namespace=ns, name=name, version=lic.version or None)
        components.append(
            Component(
                name=comp.name,
                version=lic.version or None,
                type=ComponentType.LIBRARY,
                bom_ref=ref,
                purl=purl,
                licenses=[LicenseExpression(comp.spdx)] if comp.spdx != "NOASSERTION" else [],
                description=(comp.description or f"vendored in llama.cpp ({lic.source})"),
                external_references=[ExternalReference(type=ExternalReferenceType.WEBSITE, url=XsUri(comp.url))] if comp.url else [],
                properties=[
                    Property(name="locara:source_path", value=lic.source),
                    Property(name="locara:license_file", value=f"LICENSES/{lic.file_name}"),
                ],
            )
        )
    for tool in inp.tools:
        components.append(
            Component(
                name=tool.name,
                version=tool.version or None,
                type=ComponentType.APPLICATION,
                bom_ref=f"tool:{tool.name}",
                scope=ComponentScope.EXCLUDED,
                description=tool.description or "used to build the binaries; not shipped",
            )
        )
    file_refs = []
    for f in sorted(inp.files, key=lambda f: f.path):
        ref = f"file:{f.path}"
        file_refs.append(ref)
        components.append(
            Component(
                name=f.path,
                type=ComponentType.FILE,
                bom_ref=ref,
                hashes=[sha(f.sha256)],
                properties=[Property(name="locara:size", value=str(f.size))]
                + ([Property(name="locara:executable", value="true")] if f.executable else []),
            )
        )

    from cyclonedx.model.tool import ToolRepository

    tools = ToolRepository(
        components=[Component(name="locara-build", version=inp.tool_version or None, type=ComponentType.APPLICATION)]
    )
    blob = json.dumps([inp.artifact_name, inp.upstream_commit, sorted((f.path, f.sha256) for f in inp.files)], sort_keys=True)
    bom = Bom(
        serial_number=uuid.uuid5(_NAMESPACE, blob),
        version=1,
        metadata=BomMetaData(
            component=artifact,
            tools=tools,
            timestamp=datetime.fromtimestamp(inp.source_date_epoch, tz=UTC),
        ),
        components=components,
    )
    by_ref = {c.bom_ref.value: c for c in components}
    bom.register_dependency(artifact, [by_ref["llama.cpp"], *(by_ref[r] for r in file_refs)])
    bom.register_dependency(by_ref["llama.cpp"], [by_ref[r] for r in vendored_refs])
    text = JsonV1Dot6(bom).output_as_string(indent=2)
    # Re-serialise with sorted keys so the bytes never depend on the library's dict order.
    return json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def validate_sbom(text: str) -> None:
    """Raise ``ValueError`` naming the first schema violation (cyclonedx-python-lib's validator)."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        raise ValueError(str(error))
