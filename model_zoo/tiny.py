"""Tiny configurations of every local adapter, built in-process with random weights (tests, docs, CPU).

They keep the paper's structure where it matters for the code paths (32 query tokens, a Q-Former with
cross-attention every 2nd layer, a LLaMA decoder, the v0 template), and shrink every width and depth.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from transformers import PreTrainedTokenizerFast

from model_zoo.checkpoints import set_special_ids
from model_zoo.minigpt4 import SYSTEM_V0, MiniGPT4Adapter, MiniGPT4Config, MiniGPT4Model
from model_zoo.tokenizer import train_tiny_tokenizer

TINY_IMAGE_SIZE = 32
VARIANTS = ("minigpt4", "no-qformer", "3-layers", "lora")

_TEXT = [
    SYSTEM_V0,
    "###Human: <Img><ImageHere></Img> Describe this image in detail.###Assistant: a red dog left of a cat.###",
    "###Human: Can you write a beautiful poem about this image?###Assistant: roses are red, the sky is blue.",
    "What colour is the shape? red green blue yellow purple orange white black grey",
    "Question: what is in the picture? Answer: a person, a bicycle, a car, a bus, a teddy bear, a hot dog.",
    "the quick brown fox jumps over the lazy dog. 0 1 2 3 4 5 6 7 8 9 , . ! ? ' \" : ; ( )",
]


@lru_cache(maxsize=1)
def tiny_tokenizer() -> PreTrainedTokenizerFast:
    return train_tiny_tokenizer(_TEXT * 20, vocab_size=320)


def tiny_minigpt4_config(vocab_size: int, variant: str = "minigpt4") -> MiniGPT4Config:
    if variant not in VARIANTS:
        raise ValueError(f"unknown MiniGPT-4 variant {variant!r}; known: {VARIANTS}")
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "patch_size": 8}
    qformer = None if variant == "no-qformer" else {
        "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "cross_attention_frequency": 2, "vocab_size": 64, "max_position_embeddings": 64}
    llm = {"vocab_size": vocab_size, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
           "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 512,
           "tie_word_embeddings": False}
    lora = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]} if variant == "lora" else None
    return MiniGPT4Config(vision=vision, qformer=qformer, llm=llm, num_query_tokens=32,
                          projection_layers=3 if variant == "3-layers" else 1, image_size=TINY_IMAGE_SIZE,
                          lora=lora)


def tiny_minigpt4(seed: int = 0, variant: str = "minigpt4") -> tuple[MiniGPT4Model, PreTrainedTokenizerFast]:
    tokenizer = tiny_tokenizer()
    config = tiny_minigpt4_config(len(tokenizer), variant)
    torch.manual_seed(seed)
    model = MiniGPT4Model(config)
    if config.lora is not None:  # peft starts LoRA B at zero (a no-op); random B makes the adapter matter
        with torch.no_grad():
            for name, param in model.llm.named_parameters():
                if "lora_B" in name:
                    param.normal_(std=0.5)
    set_special_ids(model.llm, tokenizer)
    return model, tokenizer


class TinyMiniGPT4(MiniGPT4Adapter):
    """A random tiny MiniGPT-4, registered by name (`minigpt4-tiny-random`)."""

    variant = "minigpt4"

    def __init__(self, seed: int = 0, dtype: str = "float32", device: str = "auto"):
        super().__init__(tiny=True, seed=seed, variant=self.variant, dtype=dtype, device=device)


class TinyMiniGPT4NoQFormer(TinyMiniGPT4):
    variant = "no-qformer"


class TinyMiniGPT43Layers(TinyMiniGPT4):
    variant = "3-layers"


class TinyMiniGPT4LoRA(TinyMiniGPT4):
    variant = "lora"
