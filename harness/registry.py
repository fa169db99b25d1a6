"""Lazy registries of models and tasks by name.

An entry is a "module:Attribute" string, imported only when that name is chosen, so listing models never
imports torch-heavy adapters. Third-party packages add entries through the entry-point groups
`mgbench.models` and `mgbench.tasks` (value: "module:Attribute").
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any


class UnknownNameError(KeyError):
    """Raised for a name that is not registered; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0])


class Registry:
    def __init__(self, kind: str, entry_point_group: str, builtins: dict[str, str]):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._entries: dict[str, str] = {}
        for name, target in builtins.items():
            self.register(name, target)
        self._entry_points_loaded = False

    def register(self, name: str, target: str) -> None:
        if ":" not in target:
            raise ValueError(f"{self.kind} {name!r}: target must be 'module:Attribute', got {target!r}")
        self._entries[name] = target

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in metadata.entry_points(group=self.entry_point_group):
            self._entries.setdefault(ep.name, ep.value)

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._entries)

    def target(self, name: str) -> str:
        self._load_entry_points()
        if name not in self._entries:
            known = ", ".join(self.names()) or "(none)"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known {self.kind}s: {known}")
        return self._entries[name]

    def load(self, name: str) -> Any:
        """Import and return the registered attribute (usually a class)."""
        module_name, _, attr = self.target(name).partition(":")
        module = importlib.import_module(module_name)
        try:
            obj = module
            for part in attr.split("."):
                obj = getattr(obj, part)
        except AttributeError as exc:
            raise ImportError(f"{self.kind} {name!r}: {module_name} has no attribute {attr!r}") from exc
        return obj


MODELS = Registry(
    "model",
    "mgbench.models",
    {
        "dummy": "model_zoo.dummy:DummyAdapter",
        "dummy-blind": "model_zoo.dummy:BlindDummyAdapter",
        # Real checkpoints: --model-option minigpt4.blip2=DIR minigpt4.llm=DIR minigpt4.projection=PTH
        # (or minigpt4.checkpoint=DIR for one of ours).
        "minigpt4": "model_zoo.minigpt4:MiniGPT4Adapter",
        # Tiny random models (the paper's structure, shrunk): for tests and for trying the pipeline.
        "minigpt4-tiny-random": "model_zoo.tiny:TinyMiniGPT4",
        "minigpt4-noqformer-tiny-random": "model_zoo.tiny:TinyMiniGPT4NoQFormer",
        "minigpt4-3layers-tiny-random": "model_zoo.tiny:TinyMiniGPT43Layers",
        "minigpt4-lora-tiny-random": "model_zoo.tiny:TinyMiniGPT4LoRA",
        # BLIP-2 (OPT or FlanT5) from a Hugging Face folder: --model-option blip2.checkpoint=DIR; BLIP-2 FT is the
        # same adapter on a fine-tuned folder.
        "blip2": "model_zoo.blip2:Blip2Adapter",
        "blip2-tiny-random": "model_zoo.tiny_blip2:TinyBlip2",
        "blip2-flant5-tiny-random": "model_zoo.tiny_blip2:TinyBlip2FlanT5",
        # The tiny zoo trained on the synthetic world by `mgbench zoo build` (loaded from ~/.cache/mgbench/zoo).
        "minigpt4-tiny": "model_zoo.zoo_models:ZooMiniGPT4",
        "minigpt4-tiny-stage1": "model_zoo.zoo_models:ZooMiniGPT4Stage1",
        "minigpt4-tiny-noqformer": "model_zoo.zoo_models:ZooMiniGPT4NoQFormer",
        "minigpt4-tiny-3layers": "model_zoo.zoo_models:ZooMiniGPT43Layers",
        "minigpt4-tiny-ftqformer": "model_zoo.zoo_models:ZooMiniGPT4FtQFormer",
        "minigpt4-tiny-locna": "model_zoo.zoo_models:ZooMiniGPT4LocNa",
        "minigpt4-tiny-ftvicuna": "model_zoo.zoo_models:ZooMiniGPT4FtVicuna",
        "blip2-tiny": "model_zoo.zoo_models:ZooBlip2",
        "blip2-tiny-ft": "model_zoo.zoo_models:ZooBlip2FT",
        # Any OpenAI-compatible chat endpoint with vision: --model-option openai-vision.model=NAME
        # [openai-vision.base_url=URL]; the key is read from $OPENAI_API_KEY (or api_key_env).
        "openai-vision": "model_zoo.openai_vision:OpenAIVisionAdapter",
    },
)

TASKS = Registry(
    "task",
    "mgbench.tasks",
    {
        "smoke_colours": "tasks.smoke:SmokeColours",
        "smoke_colours_mc": "tasks.smoke:SmokeColoursMC",
        "aokvqa_mc": "tasks.vqa_tasks:AokvqaMC",
        "aokvqa_mc_ll": "tasks.vqa_tasks:AokvqaMCRanked",
        "aokvqa_da": "tasks.vqa_tasks:AokvqaDA",
        "gqa_testdev": "tasks.vqa_tasks:GqaTestdev",
        "chair_long": "tasks.caption_tasks:Chair",
        "chair_short": "tasks.caption_tasks:ChairShort",
        "coco_caption_metrics": "tasks.caption_tasks:CocoCaptionMetrics",
        "coco_coverage": "tasks.judged_tasks:CocoCoverage",
        "coco_coverage_val": "tasks.judged_tasks:CocoCoverageVal",
        "failure_caption": "tasks.judged_tasks:FailureCaption",
        "failure_poem": "tasks.judged_tasks:FailurePoem",
        "advanced_meme": "tasks.judged_tasks:AdvancedMeme",
        "advanced_recipe": "tasks.judged_tasks:AdvancedRecipe",
        "advanced_ad": "tasks.judged_tasks:AdvancedAd",
        "advanced_poem": "tasks.judged_tasks:AdvancedPoem",
    },
)


def parse_names(value: str | list[str] | tuple[str, ...], registry: Registry) -> list[str]:
    """Split "a,b" (or take a list), validate every name, keep order, drop duplicates."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names: list[str] = []
    for raw in items:
        name = raw.strip()
        if not name:
            continue
        if name == "all":
            names.extend(n for n in registry.names() if n not in names)
            continue
        registry.target(name)  # raises with the list of known names
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError(f"no {registry.kind} names given")
    return names
