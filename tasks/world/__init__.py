"""The synthetic world: a miniature of the paper's data, written in the real public dataset formats.

`build_world(out, seed, size)` draws scenes of 1-4 glyph objects (24 COCO categories, each a shape and a
texture, with colour and size attributes) and writes COCO 2014 captions/instances + Karpathy split, COCO 2017
names, A-OKVQA, GQA, stage-1 webdataset shards, stage-2 `cc_sbu_align`, Localized-Narratives-style text,
the advanced-task manifest and a text-only corpus. See `tasks/world/build.py` for the layout.
"""

from tasks.world.build import GENERATOR_VERSION, WORLD_SIZES, WorldSize, build_world
from tasks.world.cache import cached_world, world_dir

__all__ = ["GENERATOR_VERSION", "WORLD_SIZES", "WorldSize", "build_world", "cached_world", "world_dir"]
