"""Checkpoint formats a MiniGPT-4 can come from, each loaded with a report of what matched.

- Our own: a folder with `mgbench_model.json` (architecture config), `model.safetensors` and `tokenizer/`.
- The official `pretrained_minigpt4.pth`: `torch.load(...)["model"]` holds `llama_proj.weight` and
  `llama_proj.bias` (plus, in some files, buffers to ignore). Upstream loads it with strict=False and says
  nothing about keys it did not find; here missing and unexpected keys are always reported.
- Hugging Face folders: the vision side, Q-Former and query tokens from a BLIP-2 checkpoint
  (`vision_model.*`, `qformer.*`, `query_tokens`), the LLM from a LLaMA/Vicuna folder.

A tensor whose shape differs between checkpoint and model is an error naming it and both shapes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoTokenizer, Blip2Config, LlamaForCausalLM, PreTrainedTokenizerBase

from model_zoo.minigpt4 import MiniGPT4Config, MiniGPT4Model

log = logging.getLogger(__name__)

CONFIG_FILE = "mgbench_model.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model; the message names the file and the tensor."""


@dataclass
class LoadReport:
    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the model, not in the checkpoint
    unexpected: list[str] = field(default_factory=list)  # in the checkpoint, not in the model

    def summary(self) -> str:
        def names(keys: list[str]) -> str:
            return ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")

        text = f"{self.source}: loaded {len(self.loaded)} tensors"
        if self.missing:
            text += f"; MISSING from the checkpoint: {names(self.missing)}"
        if self.unexpected:
            text += f"; UNEXPECTED in the checkpoint (not loaded): {names(self.unexpected)}"
        return text


def load_state_checked(module: nn.Module, state: dict[str, torch.Tensor], source: str,
                       expected: list[str] | None = None) -> LoadReport:
    """Copy matching tensors into `module`; shapes must agree. `expected`: the keys that should be there
    (default: all of the module's); the rest of the module's keys are not reported missing."""
    own = module.state_dict()
    report = LoadReport(source)
    for key, tensor in state.items():
        if key not in own:
            report.unexpected.append(key)
        elif tuple(tensor.shape) != tuple(own[key].shape):
            raise CheckpointError(f"{source}: tensor {key!r} has shape {tuple(tensor.shape)} in the checkpoint "
                                  f"but {tuple(own[key].shape)} in the model")
        else:
            report.loaded.append(key)
    wanted = own.keys() if expected is None else expected
    report.missing = sorted(k for k in wanted if k not in state)
    module.load_state_dict({k: state[k] for k in report.loaded}, strict=False)
    (log.warning if report.missing or report.unexpected else log.info)(report.summary())
    return report


# ----- our own format --------------------------------------------------------------------------------------
def save_minigpt4(model: MiniGPT4Model, tokenizer: PreTrainedTokenizerBase, out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"format_version": FORMAT_VERSION, "architecture": "minigpt4", "config": asdict(model.config)}
    (out / CONFIG_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True), encoding="utf-8")
    # clone(): safetensors refuses tensors that share memory (tied embeddings in some LLMs)
    save_file({k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}, out / WEIGHTS_FILE)
    tokenizer.save_pretrained(out / TOKENIZER_DIR)
    return out


def load_minigpt4(folder: str | Path) -> tuple[MiniGPT4Model, PreTrainedTokenizerBase]:
    folder = Path(folder)
    meta_path = folder / CONFIG_FILE
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{meta_path}: cannot read checkpoint config: {exc}") from exc
    if meta.get("architecture") != "minigpt4" or meta.get("format_version") != FORMAT_VERSION:
        found = {k: meta.get(k) for k in ("architecture", "format_version")}
        raise CheckpointError(f"{meta_path}: not a format-{FORMAT_VERSION} MiniGPT-4 checkpoint: {found}")
    model = MiniGPT4Model(MiniGPT4Config.from_dict(meta["config"]))
    report = load_state_checked(model, load_file(folder / WEIGHTS_FILE), str(folder / WEIGHTS_FILE))
    if report.missing:
        raise CheckpointError(report.summary())
    tokenizer = AutoTokenizer.from_pretrained(folder / TOKENIZER_DIR, local_files_only=True)
    set_special_ids(model.llm, tokenizer)
    return model, tokenizer


# ----- the official projection checkpoint ------------------------------------------------------------------
def load_official_projection(model: MiniGPT4Model, path: str | Path) -> LoadReport:
    """Load `llama_proj.*` from an upstream `pretrained_minigpt4.pth`-style file into `model`."""
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated files, non-tensor payloads
        raise CheckpointError(f"{path}: cannot read checkpoint: {exc}") from exc
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        raise CheckpointError(f"{path}: expected a dict with a 'model' state dict (the upstream layout)")
    state = checkpoint["model"]
    projection = [k for k in model.state_dict() if k.startswith("llama_proj.")]
    return load_state_checked(model, state, str(path), expected=projection)


# ----- Hugging Face parts ----------------------------------------------------------------------------------
def read_hf_state(folder: Path, prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The tensors of a HF checkpoint folder (single or sharded safetensors) whose names start with a prefix."""
    index = folder / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() \
        else ["model.safetensors"]
    state: dict[str, torch.Tensor] = {}
    for name in files:
        if not (folder / name).exists():
            raise CheckpointError(f"{folder / name}: missing (only safetensors checkpoints are read)")
        state.update({k: v for k, v in load_file(folder / name).items() if k.startswith(prefixes)})
    return state


def minigpt4_from_parts(blip2: str | Path, llm: str | Path, projection: str | Path | None = None, *,
                        dtype: str = "float32", load_in_8bit: bool = False,
                        projection_layers: int = 1) -> tuple[MiniGPT4Model, PreTrainedTokenizerBase]:
    """A MiniGPT-4 assembled from a BLIP-2 folder, a LLaMA/Vicuna folder and (optionally) the official .pth."""
    blip2, llm = Path(blip2), Path(llm)
    blip2_config = Blip2Config.from_pretrained(blip2, local_files_only=True)
    kwargs: dict = {"local_files_only": True, "dtype": getattr(torch, dtype)}
    if load_in_8bit:
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig
        except ImportError as exc:
            raise CheckpointError("load_in_8bit needs the bitsandbytes package (and a CUDA GPU)") from exc
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
    language_model = LlamaForCausalLM.from_pretrained(llm, **kwargs)
    vision = blip2_config.vision_config.to_dict()
    config = MiniGPT4Config(vision=vision, qformer=blip2_config.qformer_config.to_dict(),
                            llm=language_model.config.to_dict(), num_query_tokens=blip2_config.num_query_tokens,
                            projection_layers=projection_layers, image_size=vision["image_size"])
    model = MiniGPT4Model(config, llm=language_model)
    state = read_hf_state(blip2, ("vision_model.", "qformer.", "query_tokens"))
    own_keys = [k for k in model.state_dict() if k.startswith(("vision_model.", "qformer.", "query_tokens"))]
    load_state_checked(model, state, str(blip2), expected=own_keys)
    if projection is not None:
        load_official_projection(model, projection)
    tokenizer = AutoTokenizer.from_pretrained(llm, local_files_only=True)
    if tokenizer.pad_token is None:  # upstream v0 pads with EOS
        tokenizer.pad_token = tokenizer.eos_token
    set_special_ids(language_model, tokenizer)
    return model, tokenizer


def set_special_ids(llm: nn.Module, tokenizer: PreTrainedTokenizerBase) -> None:
    for cfg in (llm.config, llm.generation_config):
        cfg.bos_token_id = tokenizer.bos_token_id
        cfg.eos_token_id = tokenizer.eos_token_id
        cfg.pad_token_id = tokenizer.pad_token_id
