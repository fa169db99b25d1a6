"""Benchmark: MiniGPT-4's trainer and generation at the paper's sizes on a GPU, with random weights.

No weights can be downloaded, so the parts are built from their real configurations with random values: EVA ViT-g
(39 blocks, width 1408, patch 14, 224 px), the BERT-base Q-Former (12 layers, cross-attention every 2nd) with 32
queries, LLaMA-7B (32 layers, width 4096, vocabulary 32,000) and `llama_proj` 768 -> 4096. The project's own trainer
(`harness.train.loop.train`) runs stage 1 at the paper's per-GPU batch (64; random resized crop 0.5-1) and then stage 2
at batch 12 on the synthetic world's stage-1 pairs and cc_sbu_align folder, frozen parts in float16 as upstream keeps
them, AMP fp16; then batched greedy generation at batch 16 through the adapter's code path (left padding, per-row
stop strings). Each test prints its figures (seconds per step after a warm-up step, peak GPU memory, tokens/s) and
asserts what must hold at any size: only `llama_proj` trains (3,149,824 parameters at 7B), every frozen tensor is
bit-identical after training, the losses are finite and the projection moved.

Skipped without CUDA. `MGBENCH_REAL_SIZE=13b` builds LLaMA-13B instead (40 layers, width 5120: 3,937,280 trainable
parameters), `MGBENCH_FROZEN_DTYPE=float32|bfloat16` keeps the frozen parts in that dtype; `MGBENCH_REAL_SIZE=tiny`
runs the same code at tiny sizes on the CPU (float32 frozen parts); the checks above then run here too.
On a machine without the package installed (a bare GPU box):
`PYTHONPATH=. python -m pytest -p no:cacheprovider -o addopts='' -m benchmark -s tests/benchmarks/test_gpu_real_size.py`
(add `-p no:benchmark` where the pytest-benchmark plugin is installed: it owns the marker).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from harness.train.batches import STAGE2_INSTRUCTIONS
from harness.train.data import load_samples
from harness.train.loop import TrainConfig, train
from harness.types import GenerationSettings, ImageRef, Request
from model_zoo.checkpoints import set_special_ids
from model_zoo.generation import generate_from_embeds
from model_zoo.minigpt4 import SYSTEM_V0, MiniGPT4Config, MiniGPT4Model, image_processor, prompt_for
from model_zoo.tokenizer import train_tiny_tokenizer

SIZE = os.environ.get("MGBENCH_REAL_SIZE", "7b")
CUDA = torch.cuda.is_available()
pytestmark = [pytest.mark.benchmark,
              pytest.mark.skipif(SIZE != "tiny" and not CUDA, reason="needs a CUDA GPU (MGBENCH_REAL_SIZE=tiny: CPU)")]

# the paper's vision side (section 1): EVA ViT-g without its last block, the BERT-base Q-Former, 32 queries
EVA_VIT_G = {"hidden_size": 1408, "intermediate_size": 6144, "num_hidden_layers": 39, "num_attention_heads": 16,
             "patch_size": 14}
QFORMER = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
           "cross_attention_frequency": 2}
REAL = {"vision": EVA_VIT_G, "qformer": QFORMER, "image_size": 224, "stage1_batch": 64, "stage2_batch": 12, "steps": 4}


def llama(hidden: int, intermediate: int, layers: int, heads: int) -> dict:
    return {"vocab_size": 32000, "hidden_size": hidden, "intermediate_size": intermediate,
            "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": heads}


SHAPES = {  # the paper's two LLM sizes, and a tiny stand-in with the same structure for the CPU
    "7b": {**REAL, "llm": llama(4096, 11008, 32, 32), "trainable": 768 * 4096 + 4096},
    "13b": {**REAL, "llm": llama(5120, 13824, 40, 40), "trainable": 768 * 5120 + 5120},
    "tiny": {"vision": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                        "patch_size": 8},
             "qformer": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                         "intermediate_size": 64, "cross_attention_frequency": 2},
             "llm": llama(64, 128, 2, 4), "image_size": 32, "stage1_batch": 8, "stage2_batch": 4, "steps": 2,
             "trainable": 32 * 64 + 64},
}[SIZE]
DEVICE = torch.device("cuda" if CUDA else "cpu")
FROZEN_DTYPE = os.environ.get("MGBENCH_FROZEN_DTYPE", "float16") if CUDA else "float32"  # upstream: float16


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tasks.world import build_world

    return build_world(tmp_path_factory.mktemp("world") / "w", seed=0, size="small", progress=False)


@pytest.fixture(scope="module")
def built(world: Path):
    """(model, tokenizer): random weights made on the device itself (a 7B init on the CPU takes minutes)."""
    texts = [s.text for s in load_samples("pairs_jsonl", world / "stage1/pairs.jsonl")]
    texts += [s.text for s in load_samples("cc_sbu_align", world / "cc_sbu_align")]
    tokenizer = train_tiny_tokenizer([*texts, SYSTEM_V0, *STAGE2_INSTRUCTIONS], vocab_size=1200)
    config = MiniGPT4Config(vision=SHAPES["vision"], qformer={**SHAPES["qformer"], "vocab_size": 64},
                            llm={**SHAPES["llm"], "max_position_embeddings": 2048, "tie_word_embeddings": False},
                            num_query_tokens=32, image_size=SHAPES["image_size"])
    torch.manual_seed(0)
    with DEVICE:
        model = MiniGPT4Model(config)
    set_special_ids(model.llm, tokenizer)
    with torch.no_grad():  # upstream's frozen parts in float16; the projection trains in float32
        for name, p in model.named_parameters():
            if not name.startswith("llama_proj."):
                p.data = p.data.to(getattr(torch, FROZEN_DTYPE))
    return model, tokenizer


def run_stage(model, tokenizer, world: Path, out: Path, stage: int, capsys) -> None:
    data = {1: ("pairs_jsonl", world / "stage1/pairs.jsonl"), 2: ("cc_sbu_align", world / "cc_sbu_align")}[stage]
    # the frozen copy lives in host memory, so the peak GPU memory printed is the trainer's alone
    frozen = {n: p.detach().cpu() for n, p in model.named_parameters() if not n.startswith("llama_proj.")}
    proj = {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith("llama_proj.")}

    def config(steps: int) -> TrainConfig:
        return TrainConfig(stage=stage, data_kind=data[0], data_path=str(data[1]), out_dir=str(out), steps=steps,
                           batch_size=SHAPES[f"stage{stage}_batch"], lr=1e-4, warmup_steps=1,
                           max_txt_len=32 if stage == 1 else 160, crop_min_scale=0.5, checkpoint_every=1000,
                           keep_checkpoints=1, frozen_dtype=FROZEN_DTYPE, progress=False)

    # the first step builds kernels and caches; the timed call resumes from its checkpoint and saves only at its end
    warm = train(model, tokenizer, config(1))
    if CUDA:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    timed = train(model, tokenizer, config(1 + SHAPES["steps"]))  # resumes after the warm-up step
    peak = torch.cuda.max_memory_allocated() / 2**30 if CUDA else float("nan")
    losses = warm["losses"] + timed["losses"]
    with capsys.disabled():
        print(f"\n[{SIZE}] stage {stage}: batch {SHAPES[f'stage{stage}_batch']}, {timed['steps'] - 1} timed steps, "
              f"{timed['seconds'] / (timed['steps'] - 1):.3f} s/step, peak GPU memory {peak:.1f} GiB, frozen "
              f"{FROZEN_DTYPE}, trainable {sum(p.numel() for p in model.llama_proj.parameters()):,} parameters, "
              f"losses {[round(x, 3) for x in losses]}")
    assert timed["resumed_from"] == 1
    assert timed["trainable"] == ["llama_proj.weight", "llama_proj.bias"]
    assert sum(p.numel() for p in model.llama_proj.parameters()) == SHAPES["trainable"]
    assert all(torch.isfinite(torch.tensor(losses)))
    params = dict(model.named_parameters())
    changed = [n for n, before in frozen.items() if not torch.equal(params[n].cpu(), before)]
    assert not changed, f"frozen tensors changed: {changed[:5]}"
    assert not all(torch.equal(params[n], before) for n, before in proj.items()), "llama_proj did not train"


def test_stage1_then_stage2_at_real_size(built, world, tmp_path, capsys):
    model, tokenizer = built
    run_stage(model, tokenizer, world, tmp_path / "stage1", 1, capsys)
    run_stage(model, tokenizer, world, tmp_path / "stage2", 2, capsys)


def test_batched_generation_at_real_size(built, world, capsys):
    from PIL import Image

    model, tokenizer = built
    model.to(getattr(torch, FROZEN_DTYPE)).eval()  # evaluation runs in one dtype, as the adapter does
    samples = load_samples("cc_sbu_align", world / "cc_sbu_align")[:16]
    settings = GenerationSettings(max_new_tokens=64)
    requests = [Request(task="bench", sample_id=str(i), prompt="Describe this image in detail.", settings=settings,
                        image=ImageRef(source="bench", id=str(i), path=str(s.image_path)))
                for i, s in enumerate(samples)]
    images = [Image.open(s.image_path).convert("RGB") for s in samples]
    pixels = image_processor(SHAPES["image_size"])(images, return_tensors="pt")["pixel_values"]
    figures = []
    for _ in range(2):  # the first round builds kernels; the second is timed
        if CUDA:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        with torch.no_grad():
            embeds = model.encode_images(pixels.to(DEVICE, getattr(torch, FROZEN_DTYPE)))
            rows = [model.embed_prompt(prompt_for(r), e, tokenizer) for r, e in zip(requests, embeds, strict=True)]
            out = generate_from_embeds(model.llm, tokenizer, rows, settings)
        if CUDA:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        figures.append((seconds, sum(o.new_tokens for o in out)))
    seconds, tokens = figures[-1]
    peak = torch.cuda.max_memory_allocated() / 2**30 if CUDA else float("nan")
    with capsys.disabled():
        print(f"\n[{SIZE}] generation: batch {len(requests)}, {tokens} new tokens in {seconds:.2f} s = "
              f"{tokens / seconds:.0f} tokens/s ({FROZEN_DTYPE}, greedy, image encoding included), peak GPU memory "
              f"{peak:.1f} GiB")
    assert len(out) == len(requests) and all(0 < o.new_tokens <= 64 for o in out)
