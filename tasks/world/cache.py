"""The default world, built on first use under the user's cache folder and reused after that.

A build goes to a temporary sibling folder and is renamed into place when complete, so an interrupted
build never leaves a half world where the next run would find it; two processes that race both build,
and the second rename loses harmlessly to the first.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from tasks.world.build import GENERATOR_VERSION, WORLD_SIZES, build_world


def world_dir(cache_dir: Path, seed: int = 0, size: str = "default") -> Path:
    return Path(cache_dir) / "world" / f"v{GENERATOR_VERSION}-seed{seed}-{size}"


def cached_world(cache_dir: Path, seed: int = 0, size: str = "default", progress: bool = True) -> Path:
    """The world for (seed, size) under `cache_dir`, built now if it is not there yet."""
    if size not in WORLD_SIZES:
        raise ValueError(f"unknown world size {size!r}; choose one of {sorted(WORLD_SIZES)}")
    final = world_dir(cache_dir, seed, size)
    if (final / "world.json").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.building-"))
    try:
        build_world(tmp, seed=seed, size=size, progress=progress)
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished first (the target exists and is not empty)
            if not (final / "world.json").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
