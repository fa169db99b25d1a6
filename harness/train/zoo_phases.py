"""How each kind of zoo artefact is built: `BUILDERS[kind](phase, world, deps, out, progress) -> info`.

A builder writes its model under `out/model` (the folder a zoo adapter loads) and returns what to record in
`artefact.json`. `deps` maps each dependency's phase name to its finished folder.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, Blip2Config, LlamaForCausalLM

from harness.train.pretrain import (
    Blip2PretrainConfig,
    Schedule,
    VicunaConfig,
    blip2_tokenizer,
    build_tokenizer,
    pretrain_blip2,
    pretrain_vicuna,
)
from model_zoo.checkpoints import load_minigpt4, load_state_checked, read_hf_state, save_minigpt4, set_special_ids
from model_zoo.minigpt4 import MiniGPT4Config, MiniGPT4Model

MODEL_DIR = "model"
FROZEN_PREFIXES = ("vision_model.", "qformer.", "query_tokens")


def _with_schedule(cls: type, config: dict[str, Any]) -> Any:
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in config.items() if k in fields}
    values["schedule"] = Schedule(**{**config["schedule"], "seed": config.get("seed", 0)})
    return cls(**values)


def build_tokenizer_phase(phase, world: Path, deps: dict[str, Path], out: Path, progress: bool) -> dict:
    tokenizer = build_tokenizer(world, phase.config["vocab_size"])
    tokenizer.save_pretrained(out / MODEL_DIR)
    return {"vocab": len(tokenizer)}


def _tokenizer(deps: dict[str, Path]):
    return AutoTokenizer.from_pretrained(deps["tokenizer"] / MODEL_DIR, local_files_only=True)


def build_blip2_phase(phase, world: Path, deps: dict[str, Path], out: Path, progress: bool) -> dict:
    cfg = _with_schedule(Blip2PretrainConfig, phase.config)
    return pretrain_blip2(world, blip2_tokenizer(_tokenizer(deps)), cfg, out / MODEL_DIR, progress)


def build_vicuna_phase(phase, world: Path, deps: dict[str, Path], out: Path, progress: bool) -> dict:
    cfg = _with_schedule(VicunaConfig, phase.config)
    return pretrain_vicuna(world, _tokenizer(deps), cfg, out / MODEL_DIR, progress)


def assemble_minigpt4(blip2_dir: Path, vicuna_dir: Path, *, qformer: bool = True, projection_layers: int = 1,
                      lora: dict[str, Any] | None = None, seed: int = 0):
    """BLIP-2's ViT + Q-Former + queries and tiny Vicuna, copied bit for bit; a fresh (seeded) projection."""
    blip2_config = Blip2Config.from_pretrained(blip2_dir, local_files_only=True)
    llm = LlamaForCausalLM.from_pretrained(vicuna_dir, local_files_only=True)
    vision = blip2_config.vision_config.to_dict()
    config = MiniGPT4Config(vision=vision, qformer=blip2_config.qformer_config.to_dict() if qformer else None,
                            llm=llm.config.to_dict(), num_query_tokens=blip2_config.num_query_tokens,
                            projection_layers=projection_layers, image_size=vision["image_size"], lora=lora)
    torch.manual_seed(seed)
    model = MiniGPT4Model(config, llm=llm)
    prefixes = FROZEN_PREFIXES if qformer else ("vision_model.",)
    state = read_hf_state(Path(blip2_dir), prefixes)
    own = [k for k in model.state_dict() if k.startswith(prefixes)]
    report = load_state_checked(model, state, str(blip2_dir), expected=own)
    if report.missing:
        raise ValueError(report.summary())
    tokenizer = AutoTokenizer.from_pretrained(vicuna_dir, local_files_only=True)
    set_special_ids(model.llm, tokenizer)
    return model, tokenizer


def with_lora(model: MiniGPT4Model, lora: dict[str, Any]) -> MiniGPT4Model:
    """The same model with LoRA adapters on its LLM (peft starts them as a no-op)."""
    config = dataclasses.replace(model.config, lora=lora)
    wrapped = MiniGPT4Model(config, llm=model.llm)
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("llm.")}
    # The LLM is shared by reference (now wrapped by peft); every other tensor must be copied, none left over.
    result = wrapped.load_state_dict(own, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("llm.")]
    if missing or result.unexpected_keys:
        raise RuntimeError(f"with_lora: missing {missing}, unexpected {result.unexpected_keys}")
    return wrapped


def _data(world: Path, kind: str, out: Path, config: dict[str, Any]) -> dict[str, Any]:
    if kind == "pairs":
        return {"data_kind": "pairs_jsonl", "data_path": str(world / "stage1/pairs.jsonl")}
    if kind == "cc_sbu_align":
        return {"data_kind": "cc_sbu_align", "data_path": str(world / "cc_sbu_align")}
    if kind == "locna":
        return {"data_kind": "locna", "data_path": str(world / "locna/narratives.jsonl"),
                "data_images": str(world / "coco/train2017")}
    if kind == "vqa_mix":
        from harness.train.zoo_data import VQA_MIX, write_vqa_mix

        path = write_vqa_mix(world, out / "vqa_mix.jsonl", config["vqa_share"], config["seed"])
        return {"data_kind": VQA_MIX, "data_path": str(path)}
    raise ValueError(f"unknown zoo training data {kind!r}")


def build_minigpt4_phase(phase, world: Path, deps: dict[str, Path], out: Path, progress: bool) -> dict:
    from harness.train.loop import TrainConfig, train
    from harness.train.zoo_data import extra_kinds

    c = phase.config
    if c["stage"] == 1:
        model, tokenizer = assemble_minigpt4(deps["blip2"] / MODEL_DIR, deps["vicuna"] / MODEL_DIR,
                                             qformer=c.get("qformer", True),
                                             projection_layers=c.get("projection_layers", 1), lora=c.get("lora"),
                                             seed=c["seed"])
    else:
        (init,) = phase.deps
        model, tokenizer = load_minigpt4(deps[init] / MODEL_DIR)
        if c.get("lora") and model.config.lora is None:
            model = with_lora(model, c["lora"])
    spec = c["train"]
    cfg = TrainConfig(stage=c["stage"], out_dir=str(out), steps=spec["steps"], batch_size=spec["batch_size"],
                      lr=spec["lr"], min_lr=spec["min_lr"], warmup_steps=spec["warmup"],
                      warmup_start_lr=spec["lr"] / 100, max_txt_len=spec["max_txt_len"], seed=c["seed"],
                      checkpoint_every=max(25, spec["steps"] // 4), train_qformer=c.get("train_qformer", False),
                      train_lora=c.get("train_lora", False), progress=progress, extra={"zoo_phase": phase.name},
                      **_data(world, c["data"], out, c))
    with extra_kinds():
        summary = train(model, tokenizer, cfg)
    save_minigpt4(model, tokenizer, out / MODEL_DIR)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    losses = summary["losses"]
    return {"trainable": len(summary["trainable"]), "first_loss": losses[0] if losses else None,
            "last_losses": losses[-10:], "train_seconds": summary["seconds"]}


def build_blip2_ft_phase(phase, world: Path, deps: dict[str, Path], out: Path, progress: bool) -> dict:
    from harness.train.blip2_ft import finetune_blip2

    c = phase.config
    fields = {f.name for f in dataclasses.fields(Schedule)}
    schedule = Schedule(**{k: v for k, v in c.items() if k in fields})
    data = world / "cc_sbu_align"
    return finetune_blip2(deps["blip2"] / MODEL_DIR, data, out / MODEL_DIR, schedule, c["max_txt_len"], progress)


BUILDERS = {"tokenizer": build_tokenizer_phase, "blip2": build_blip2_phase, "vicuna": build_vicuna_phase,
            "minigpt4": build_minigpt4_phase, "blip2_ft": build_blip2_ft_phase}
