"""Benchmark: where the tiny zoo's perception loses which object is which (`harness/train/binding_probe.py`).

On the built zoo (`mgbench zoo build`; without one it stops with the error that names that command), the
attention probe reads, from the frozen ViT's patch tokens and from the Q-Former's query outputs, the category of
the object at a given place or of a given colour, and the same without the place or colour. It prints the four
figures per layer. The ViT's tokens are read by content alone, as the Q-Former's cross-attention reads them (no
token index). The ViT is trained on per-patch category and colour labels, so a token that shows a colour says
which category wears it: the test fails if the probe does not find that (a broken probe). The place figures and
the Q-Former's are what the benchmark is for (the issue notes record them), with how sharply the Q-Former's
queries attend over the ViT's tokens (near-uniform attention pools the picture into a bag).
"""

from __future__ import annotations

import math
import time

import pytest

from model_zoo.zoo_models import default_zoo_dir, zoo_model_path

USER_ZOO = default_zoo_dir()  # read at import, before tests/conftest.py points the cache at a temp folder


@pytest.mark.benchmark
def test_where_perception_loses_which_object_is_which(capsys, mgbench_config):
    from harness.train.binding_probe import (
        binding_scenes,
        cross_attention_entropy,
        perception_binding,
        vision_stack_layers,
    )
    from model_zoo.minigpt4 import MiniGPT4Adapter
    from tasks.world.scenes import scene_image

    zoo = mgbench_config.model_options.get("minigpt4-tiny-stage1", {}).get("zoo", USER_ZOO)  # --mgbench-zoo
    model_dir = zoo_model_path("minigpt4-tiny-stage1", zoo)
    start = time.perf_counter()
    adapter = MiniGPT4Adapter(checkpoint=str(model_dir))
    table = perception_binding(vision_stack_layers(adapter))
    entropy = cross_attention_entropy(adapter, [scene_image(s) for s in binding_scenes(64, seed=1)])
    tokens = adapter.model.vision_model.embeddings.num_positions
    with capsys.disabled():
        print(f"\nperception binding ({model_dir}, {time.perf_counter() - start:.0f} s): the category of the object "
              f"at a place / of a colour, and without it")
        for layer, row in table.items():
            print(f"  {layer:16s} place {row['place']:.3f} (without {row['place_unbound']:.3f}), colour "
                  f"{row['colour']:.3f} (without {row['colour_unbound']:.3f})")
        print(f"  Q-Former cross-attention entropy per layer: {', '.join(f'{e:.2f}' for e in entropy)} nats "
              f"(uniform over the {tokens} ViT tokens: {math.log(tokens):.2f})")
    vit = table["vit_patches"]
    assert vit["colour"] > vit["colour_unbound"] + 0.2, vit
