"""Where the tiny zoo's perception loses which object is which: an attention probe on frozen image features.

A description names each object with its place and colour ("In the top left corner there is a small red dog"),
so a reader of the image tokens must find the category of the object at a given place, or of a given colour.
This probe asks exactly that of a layer's tokens (the ViT's patch tokens, or the Q-Former's query outputs):
a learned query for the key (one of 9 places on a 3 x 3 grid, or one of the world's colours) attends over the
tokens, and a linear layer names the category from what it read. The same probe with the key withheld is the
baseline: it can only name a category the picture likely holds. `bound - unbound` is what the layer keeps of
which object is which; near 0, every reader after it names the picture's categories as a bag, and a
description repeats one of them in every sentence. The probe reads a layer the way its next reader can: by
content alone for the ViT's patch tokens (the Q-Former's cross-attention has no positions; reading the token
index instead, a probe finds places the Q-Former cannot), by content and order for the Q-Former's outputs.

Fresh world scenes (their own random stream) with two or more categories and no colour twice; each object is
one example. Run by `pytest -m benchmark tests/benchmarks/test_perception_binding.py` on the built zoo.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import torch
from torch import nn

from tasks.world.scenes import region, sample_scene, scene_image
from tasks.world.vocab import CATEGORIES, COLOURS

KEYS = ("place", "colour")
CATEGORY_NAMES = sorted({c.name for c in CATEGORIES})
COLOUR_NAMES = list(COLOURS)
PLACES = [(v, h) for v in ("top", "middle", "bottom") for h in ("left", "center", "right")]  # `region`'s


def binding_scenes(n: int, seed: int = 0) -> list:
    """`n` scenes with two or more categories and every colour once, from the probe's own random stream."""
    rng = random.Random(f"mgbench-binding:{seed}")
    out = []
    while len(out) < n:
        scene = sample_scene(rng, 0)
        colours = [o.colour for o in scene.objects]
        if len(scene.categories()) >= 2 and len(set(colours)) == len(colours):
            out.append(scene)
    return out


def object_key(scene, obj, key: str) -> int:
    """The object's place on a 3 x 3 grid (0-8, row by row) or its colour's index."""
    if key == "colour":
        return COLOUR_NAMES.index(obj.colour)
    return PLACES.index(region(scene, obj))


def n_keys(key: str) -> int:
    return len(COLOUR_NAMES) if key == "colour" else len(PLACES)


class AttentionProbe(nn.Module):
    """A query per key value attends over the tokens (content + a learned per-position term); a linear layer
    names the category from the attended values. With `use_key` False every example gets the same query. With
    `ordered` False the per-position term stays 0: the probe reads tokens by content alone, as the Q-Former's
    cross-attention reads the ViT's (a token's index is not something such a reader sees)."""

    def __init__(self, dim: int, tokens: int, keys: int, labels: int, use_key: bool, width: int = 64,
                 ordered: bool = True):
        super().__init__()
        self.use_key = use_key
        self.query = nn.Embedding(keys, width)
        self.key, self.value = nn.Linear(dim, width), nn.Linear(dim, 2 * width)
        self.position = nn.Parameter(torch.zeros(tokens, width), requires_grad=ordered)
        self.out = nn.Linear(2 * width, labels)
        self.scale = width ** -0.5

    def forward(self, tokens: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        q = self.query(keys if self.use_key else torch.zeros_like(keys))
        scores = torch.einsum("btd,bd->bt", self.key(tokens) + self.position, q) * self.scale
        return self.out(torch.einsum("bt,btd->bd", scores.softmax(-1), self.value(tokens)))


def probe_accuracy(train: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                   test: tuple[torch.Tensor, torch.Tensor, torch.Tensor], keys: int, labels: int,
                   use_key: bool, epochs: int = 30, seed: int = 0, ordered: bool = True) -> float:
    """Train the probe on (tokens, keys, labels) and return its accuracy on `test`. Tokens are standardised
    with the training set's statistics."""
    torch.manual_seed(seed)
    x, k, y = train
    mu, sd = x.mean((0, 1)), x.std((0, 1)) + 1e-5
    probe = AttentionProbe(x.shape[2], x.shape[1], keys, labels, use_key, ordered=ordered)
    opt = torch.optim.AdamW(probe.parameters(), lr=2e-3, weight_decay=0.01)
    x = (x - mu) / sd
    for _ in range(epochs):
        order = torch.randperm(len(y))
        for start in range(0, len(y), 128):
            b = order[start:start + 128]
            opt.zero_grad()
            nn.functional.cross_entropy(probe(x[b], k[b]), y[b]).backward()
            opt.step()
    with torch.no_grad():
        tx, tk, ty = test
        return (probe((tx - mu) / sd, tk).argmax(-1) == ty).float().mean().item()


Layers = Callable[[Sequence], dict[str, torch.Tensor]]  # RGB images -> {layer name: (B, tokens, dim)}
# Layers whose next reader sees the tokens' order: the LLM reads the Q-Former's outputs at positions; the
# Q-Former's cross-attention reads the ViT's patch tokens by content alone (no position enters its keys).
ORDERED_LAYERS = ("qformer_queries",)


def perception_binding(layers: Layers, train_scenes: int = 2048, test_scenes: int = 512, seed: int = 0,
                       epochs: int = 30, ordered: Sequence[str] = ORDERED_LAYERS) -> dict[str, dict[str, float]]:
    """{layer: {"place": bound, "place_unbound": ..., "colour": ..., "colour_unbound": ...}} for every layer
    `layers` returns, on fresh scenes. The probe sees token order only for the layers in `ordered`."""
    def examples(scenes: list) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
        feats: dict[str, list[torch.Tensor]] = {}
        for start in range(0, len(scenes), 64):
            chunk = scenes[start:start + 64]
            for name, tokens in layers([scene_image(s) for s in chunk]).items():
                feats.setdefault(name, []).extend(t for s, t in zip(chunk, tokens, strict=True) for _ in s.objects)
        pairs = [(s, o) for s in scenes for o in s.objects]
        keys = {key: torch.tensor([object_key(s, o, key) for s, o in pairs]) for key in KEYS}
        labels = torch.tensor([CATEGORY_NAMES.index(o.name) for _, o in pairs])
        return {n: torch.stack(v) for n, v in feats.items()}, keys, labels

    scenes = binding_scenes(train_scenes + test_scenes, seed)
    (train_x, train_k, train_y), (test_x, test_k, test_y) = examples(scenes[:train_scenes]), \
        examples(scenes[train_scenes:])
    out: dict[str, dict[str, float]] = {}
    for layer in train_x:
        row = {}
        for key in KEYS:
            for use_key in (True, False):
                row[key if use_key else f"{key}_unbound"] = probe_accuracy(
                    (train_x[layer], train_k[key], train_y), (test_x[layer], test_k[key], test_y), n_keys(key),
                    len(CATEGORY_NAMES), use_key, epochs, seed, ordered=layer in ordered)
        out[layer] = row
    return out


def vision_stack_layers(adapter) -> Layers:
    """The frozen ViT's patch tokens and the Q-Former's query outputs of a MiniGPT-4 or BLIP-2 adapter's model."""

    @torch.no_grad()
    def run(images: Sequence) -> dict[str, torch.Tensor]:
        model = adapter.model
        pixels = adapter.processor(list(images), return_tensors="pt")["pixel_values"]
        patches = model.vision_model(pixel_values=pixels).last_hidden_state
        queries = model.qformer(query_embeds=model.query_tokens.expand(len(images), -1, -1),
                                encoder_hidden_states=patches).last_hidden_state
        return {"vit_patches": patches[:, 1:].float(), "qformer_queries": queries.float()}

    return run


@torch.no_grad()
def cross_attention_entropy(adapter, images: Sequence) -> list[float]:
    """Per Q-Former cross-attention layer, the mean entropy (nats) of a query's attention over the ViT's tokens on
    `images`; log(tokens) is uniform pooling, a bag of the whole picture. Runs the layers in eager attention (the
    only kind that returns weights) and restores the model's own."""
    model = adapter.model
    qformer = model.qformer
    before = qformer.config._attn_implementation
    qformer.config._attn_implementation = "eager"
    try:
        pixels = adapter.processor(list(images), return_tensors="pt")["pixel_values"]
        patches = model.vision_model(pixel_values=pixels).last_hidden_state
        out = qformer(query_embeds=model.query_tokens.expand(len(images), -1, -1), encoder_hidden_states=patches,
                      output_attentions=True)
    finally:
        qformer.config._attn_implementation = before
    return [float(-(p.float().clamp_min(1e-12).log() * p.float()).sum(-1).mean()) for p in out.cross_attentions]
