"""Shared test setup: generated data goes to a session temp folder, never the user's cache."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    previous = os.environ.get("MGBENCH_CACHE")
    os.environ["MGBENCH_CACHE"] = str(tmp_path_factory.mktemp("mgbench-cache"))
    yield
    if previous is None:
        os.environ.pop("MGBENCH_CACHE", None)
    else:
        os.environ["MGBENCH_CACHE"] = previous


@pytest.fixture
def real_parts(tmp_path: Path):
    """A tiny random MiniGPT-4 written as real parts: a Hugging Face BLIP-2 folder (`blip2/`: its ViT, Q-Former and
    queries), a LLaMA folder with its tokenizer (`vicuna/`) and the official projection file (`proj.pth`), in the
    formats transformers and torch write; returns (the source adapter, the folder)."""
    import torch
    from transformers import Blip2Config, Blip2ForConditionalGeneration, LlamaConfig, LlamaForCausalLM, OPTConfig

    from model_zoo.minigpt4 import MiniGPT4Adapter

    source = MiniGPT4Adapter(tiny=True, seed=11)
    cfg = source.model.config
    blip2 = Blip2ForConditionalGeneration(Blip2Config(
        vision_config={**cfg.vision, "image_size": cfg.image_size},
        qformer_config={**cfg.qformer, "encoder_hidden_size": cfg.vision["hidden_size"]},
        text_config=OPTConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, ffn_dim=32,
                              num_attention_heads=2, word_embed_proj_dim=16).to_dict(),
        num_query_tokens=cfg.num_query_tokens))
    blip2.vision_model.load_state_dict(source.model.vision_model.state_dict())
    blip2.qformer.load_state_dict(source.model.qformer.state_dict())
    with torch.no_grad():
        blip2.query_tokens.copy_(source.model.query_tokens)
    blip2.save_pretrained(tmp_path / "blip2")
    llm = LlamaForCausalLM(LlamaConfig.from_dict(source.model.llm.config.to_dict()))
    llm.load_state_dict(source.model.llm.state_dict())
    llm.save_pretrained(tmp_path / "vicuna")
    source.tokenizer.save_pretrained(tmp_path / "vicuna")
    proj = source.model.llama_proj
    torch.save({"model": {"llama_proj.weight": proj.weight, "llama_proj.bias": proj.bias}}, tmp_path / "proj.pth")
    return source, tmp_path
