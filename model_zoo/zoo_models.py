"""The tiny zoo's models as harness adapters, loaded from a built zoo (`mgbench zoo build`).

`zoo.json` in the zoo folder (default: `<cache>/zoo`, option `zoo=DIR`) names each model's folder. The
MiniGPT-4 family loads through `MiniGPT4Adapter(checkpoint=...)`, BLIP-2 and BLIP-2 FT through
`Blip2Adapter(checkpoint=...)`: the zoo adds no model code of its own, only where the trained weights are.
"""

from __future__ import annotations

import json
from pathlib import Path

from model_zoo.blip2 import Blip2Adapter
from model_zoo.minigpt4 import MiniGPT4Adapter

ZOO_FILE = "zoo.json"


class ZooNotBuiltError(FileNotFoundError):
    """The zoo (or one model of it) is not there; the message says how to build it."""


def default_zoo_dir() -> Path:
    from harness.config import default_cache_dir

    return default_cache_dir() / "zoo"


def zoo_model_path(name: str, zoo: str | Path | None = None) -> Path:
    """The folder of zoo model `name`, from `<zoo>/zoo.json`."""
    folder = Path(zoo) if zoo else default_zoo_dir()
    manifest = folder / ZOO_FILE
    if not manifest.exists():
        raise ZooNotBuiltError(f"{name}: the tiny zoo is not built ({manifest} is missing); run `mgbench zoo build`"
                               + (f" --out {folder}" if zoo else ""))
    models = json.loads(manifest.read_text(encoding="utf-8")).get("models", {})
    path = models.get(name)
    if path is None or not Path(path).exists():
        raise ZooNotBuiltError(f"{name}: not in the tiny zoo at {folder} (it has {sorted(models)}); "
                               "run `mgbench zoo build`")
    return Path(path)


class ZooMiniGPT4(MiniGPT4Adapter):
    """`minigpt4-tiny`: tiny MiniGPT-4 after stage 2."""

    zoo_name = "minigpt4-tiny"

    def __init__(self, zoo: str | None = None, dtype: str = "float32", device: str = "auto"):
        super().__init__(checkpoint=str(zoo_model_path(self.zoo_name, zoo)), dtype=dtype, device=device)


class ZooMiniGPT4Stage1(ZooMiniGPT4):
    """`minigpt4-tiny-stage1`: before stage 2 (Table 3, Fig. 5)."""

    zoo_name = "minigpt4-tiny-stage1"


class ZooMiniGPT4NoQFormer(ZooMiniGPT4):
    zoo_name = "minigpt4-tiny-noqformer"


class ZooMiniGPT43Layers(ZooMiniGPT4):
    zoo_name = "minigpt4-tiny-3layers"


class ZooMiniGPT4FtQFormer(ZooMiniGPT4):
    zoo_name = "minigpt4-tiny-ftqformer"


class ZooMiniGPT4LocNa(ZooMiniGPT4):
    zoo_name = "minigpt4-tiny-locna"


class ZooMiniGPT4FtVicuna(ZooMiniGPT4):
    zoo_name = "minigpt4-tiny-ftvicuna"


class ZooBlip2(Blip2Adapter):
    """`blip2-tiny`: the tiny BLIP-2 OPT the zoo pre-trains (and takes MiniGPT-4's vision side from)."""

    zoo_name = "blip2-tiny"

    def __init__(self, zoo: str | None = None, dtype: str = "float32", device: str = "auto"):
        super().__init__(checkpoint=str(zoo_model_path(self.zoo_name, zoo)), dtype=dtype, device=device)


class ZooBlip2FT(ZooBlip2):
    """`blip2-tiny-ft`: BLIP-2 FT, fine-tuned on the stage-2 data."""

    zoo_name = "blip2-tiny-ft"
