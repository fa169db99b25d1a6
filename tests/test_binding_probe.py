"""The perception-binding probe finds binding where it is planted and none where it is not."""

from __future__ import annotations

import torch

from harness.train.binding_probe import binding_scenes, object_key, probe_accuracy


def planted(n: int, bound: bool, seed: int):
    """Tokens for `n` examples: 4 tokens, each one object's (key one-hot, category one-hot) when `bound`; when not,
    the keys sit in some tokens and the categories in others, so the tokens say which categories are there but
    not which key goes with which. The example asks for the category of object 0's key."""
    g = torch.Generator().manual_seed(seed)
    keys, cats = torch.randint(0, 9, (n, 4), generator=g), torch.randint(0, 12, (n, 4), generator=g)
    for row in keys:  # distinct keys within an example, as places and colours of one scene
        row.copy_(torch.randperm(9, generator=g)[:4])
    k1, c1 = torch.nn.functional.one_hot(keys, 9).float(), torch.nn.functional.one_hot(cats, 12).float()

    def shuffled(x: torch.Tensor) -> torch.Tensor:  # each example's tokens in a random order
        order = torch.stack([torch.randperm(4, generator=g) for _ in range(n)])
        return torch.gather(x, 1, order[..., None].expand(-1, -1, x.shape[-1]))

    # bound: each token one object's key and category; a bag: keys and categories in independent orders
    tokens = shuffled(torch.cat([k1, c1], -1)) if bound else torch.cat([shuffled(k1), shuffled(c1)], -1)
    tokens = tokens + 0.05 * torch.randn(tokens.shape, generator=g)
    return tokens, keys[:, 0], cats[:, 0]


def test_the_probe_reads_planted_binding_and_finds_none_in_a_bag():
    for bound in (True, False):
        train, test = planted(3000, bound, 0), planted(600, bound, 1)
        with_key = probe_accuracy(train, test, keys=9, labels=12, use_key=True, epochs=15)
        without = probe_accuracy(train, test, keys=9, labels=12, use_key=False, epochs=15)
        if bound:
            assert with_key > 0.9 and without < 0.5, (with_key, without)
        else:
            assert with_key < 0.5 and without < 0.5, (with_key, without)


def test_binding_scenes_have_several_categories_and_distinct_colours_and_keys_are_in_range():
    scenes = binding_scenes(50, seed=3)
    assert scenes == binding_scenes(50, seed=3)
    for scene in scenes:
        assert len(scene.categories()) >= 2
        assert len({o.colour for o in scene.objects}) == len(scene.objects)
        for obj in scene.objects:
            assert 0 <= object_key(scene, obj, "place") < 9 and 0 <= object_key(scene, obj, "colour") < 6


def test_an_unordered_probe_cannot_read_places_from_the_token_index():
    """Tokens that hold only categories, each at the token index of its place: a probe that sees token order
    reads the place's category from the index; one that reads content alone cannot (the ViT-to-Q-Former case)."""
    g = torch.Generator().manual_seed(0)

    def by_index(n: int):
        cats = torch.randint(0, 12, (n, 9), generator=g)  # token i is place i; it says only its category
        tokens = torch.nn.functional.one_hot(cats, 12).float() + 0.05 * torch.randn(n, 9, 12, generator=g)
        keys = torch.randint(0, 9, (n,), generator=g)
        return tokens, keys, cats[torch.arange(n), keys]

    train, test = by_index(3000), by_index(600)
    ordered = probe_accuracy(train, test, keys=9, labels=12, use_key=True, epochs=15)
    unordered = probe_accuracy(train, test, keys=9, labels=12, use_key=True, epochs=15, ordered=False)
    assert ordered > 0.9 and unordered < 0.3, (ordered, unordered)


def test_cross_attention_entropy_reads_how_sharply_the_queries_attend():
    import math
    import random
    from types import SimpleNamespace

    from transformers import Blip2Config, Blip2ForConditionalGeneration

    from harness.train.binding_probe import cross_attention_entropy
    from harness.train.pretrain_blip2 import Blip2PretrainConfig, init_qformer
    from model_zoo.minigpt4 import image_processor
    from tasks.world.scenes import sample_scene, scene_image

    config = Blip2Config(vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                                        "num_attention_heads": 2, "image_size": 32, "patch_size": 8,
                                        "initializer_range": 0.02},  # transformers: 1e-10, every patch alike
                         qformer_config={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                         "intermediate_size": 64, "encoder_hidden_size": 32,
                                         "cross_attention_frequency": 1},
                         text_config={"model_type": "opt", "vocab_size": 50, "hidden_size": 32, "ffn_dim": 64,
                                      "num_hidden_layers": 1, "num_attention_heads": 2,
                                      "word_embed_proj_dim": 32}, num_query_tokens=4)
    rng = random.Random(0)
    images = [scene_image(sample_scene(rng, 0)) for _ in range(6)]
    entropies = {}
    for std in (0.0, 0.5):
        torch.manual_seed(0)
        model = Blip2ForConditionalGeneration(config).eval()
        init_qformer(model, Blip2PretrainConfig(cross_attention_init=std))
        adapter = SimpleNamespace(model=model, processor=image_processor(32))
        before = model.qformer.config._attn_implementation
        entropies[std] = cross_attention_entropy(adapter, images)
        assert model.qformer.config._attn_implementation == before  # the model's own attention is restored
    uniform = math.log(1 + 16)  # CLS + 4 x 4 patches
    assert len(entropies[0.0]) == 2 and all(uniform - 0.05 < e <= uniform + 1e-6 for e in entropies[0.0])
    assert all(e < uniform - 0.3 for e in entropies[0.5]), entropies  # wide query/key weights attend sharply
