"""Where a paper task finds its data: `--data-root` (real data, laid out like the world) or the world.

Every paper task names its files relative to a data root, in the layout the synthetic world writes
(`coco/annotations/...`, `coco/dataset_coco.json`, `aokvqa/...`, `gqa/...`; see tasks/world/build.py).
Without `--data-root` the default world is built on first use under the cache folder and reused.
"""

from __future__ import annotations

from pathlib import Path

from harness.task import TaskContext
from tasks.world import cached_world


def data_root(ctx: TaskContext) -> Path:
    if ctx.data_root is not None:
        root = Path(ctx.data_root)
        if not root.is_dir():
            raise ValueError(f"--data-root {root}: not a folder")
        return root
    return cached_world(ctx.cache_dir, seed=0, size="default", progress=True)


def data_path(ctx: TaskContext, relative: str) -> Path:
    path = data_root(ctx) / relative
    if not path.exists():
        raise ValueError(f"{path}: missing (expected under the data root in the world's layout)")
    return path
