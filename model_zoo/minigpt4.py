"""MiniGPT-4 (paper section 1): frozen BLIP-2 vision stack + one trained projection + frozen Vicuna.

    image -> [1] ViT (Blip2VisionModel; its post_layernorm plays `ln_vision`)
          -> [2] Q-Former: 32 learned queries cross-attend to the ViT tokens (Blip2QFormerModel)
          -> [3] `llama_proj` (one nn.Linear; three for the "+ 3 layers" variant)
          -> [4] spliced into the LLM's input embeddings where the prompt says <ImageHere>
          -> [5] LlamaForCausalLM decodes, each row stopping at `###`.

The variants of Tables 4 and 6 are configuration of this same code: `qformer=None` maps the ViT tokens
straight into the LLM ("No Q-Former"), `projection_layers=3`, a trainable Q-Former (a trainer flag),
`lora={...}` wraps the LLM with peft LoRA ("Finetune Vicuna"), and stage-1-only / LocNa are the same
architecture with another checkpoint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL.Image import Image
from torch import nn
from transformers import (
    Blip2QFormerConfig,
    Blip2QFormerModel,
    Blip2VisionConfig,
    Blip2VisionModel,
    BlipImageProcessor,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerBase,
)
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, PILImageResampling

from harness.types import Request, Response
from model_zoo.generation import choice_loglikelihoods, generate_from_embeds

IMAGE_PLACEHOLDER = "<ImageHere>"
# The upstream demo's v0 conversation (paper section 2): system text, then one Human turn with the image.
SYSTEM_V0 = ("Give the following image: <Img>ImageContent</Img>. You will be able to see the image once I "
             "provide it to you. Please answer my questions.")
STOP = "###"


def conversation_v0(question: str) -> str:
    return f"{SYSTEM_V0}###Human: <Img>{IMAGE_PLACEHOLDER}</Img> {question}###Assistant:"


def prompt_for(request: Request) -> str:
    """A prompt that already places the image is used as written; a bare question goes into the v0 template."""
    return request.prompt if IMAGE_PLACEHOLDER in request.prompt else conversation_v0(request.prompt)


@dataclass(frozen=True)
class MiniGPT4Config:
    """Everything that defines the architecture; saved beside every checkpoint."""

    vision: dict[str, Any]
    llm: dict[str, Any]
    qformer: dict[str, Any] | None = field(default_factory=dict)  # None: the "No Q-Former" variant
    num_query_tokens: int = 32
    projection_layers: int = 1
    image_size: int = 224
    # LoRA on the LLM ("Finetune Vicuna", Table 6): peft LoraConfig fields, e.g. {"r": 8, "lora_alpha": 16,
    # "target_modules": ["q_proj", "v_proj"]}. None: the LLM is used as released.
    lora: dict[str, Any] | None = None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MiniGPT4Config:
        return cls(**data)


def make_projection(in_dim: int, out_dim: int, layers: int) -> nn.Module:
    if layers == 1:
        return nn.Linear(in_dim, out_dim)
    if layers == 3:  # "+ 3 layers": Linear-GELU-Linear-GELU-Linear
        return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim), nn.GELU(),
                             nn.Linear(out_dim, out_dim))
    raise ValueError(f"projection_layers must be 1 or 3, got {layers}")


class MiniGPT4Model(nn.Module):
    def __init__(self, config: MiniGPT4Config, llm: LlamaForCausalLM | None = None):
        super().__init__()
        self.config = config
        vision_config = Blip2VisionConfig.from_dict({**config.vision, "image_size": config.image_size})
        self.vision_model = Blip2VisionModel(vision_config)
        if config.qformer is not None:
            qformer_config = Blip2QFormerConfig.from_dict(
                {**config.qformer, "encoder_hidden_size": vision_config.hidden_size})
            self.query_tokens = nn.Parameter(torch.zeros(1, config.num_query_tokens, qformer_config.hidden_size))
            nn.init.normal_(self.query_tokens, std=qformer_config.initializer_range)
            self.qformer = Blip2QFormerModel(qformer_config)
            projection_in = qformer_config.hidden_size
        else:
            self.query_tokens = None
            self.qformer = None
            projection_in = vision_config.hidden_size
        self.llm = llm if llm is not None else LlamaForCausalLM(LlamaConfig.from_dict(config.llm))
        if config.lora is not None:
            from peft import LoraConfig, get_peft_model

            lora = LoraConfig(**{"lora_dropout": 0.0, "task_type": "CAUSAL_LM", **config.lora})
            self.llm = get_peft_model(self.llm, lora)
        self.llama_proj = make_projection(projection_in, self.llm.config.hidden_size, config.projection_layers)

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, image tokens, LLM hidden): the soft tokens spliced in for <ImageHere>."""
        # [1] ViT; last_hidden_state has gone through post_layernorm, which is `ln_vision`.
        image_embeds = self.vision_model(pixel_values=pixel_values).last_hidden_state
        if self.qformer is None:  # "No Q-Former": every ViT token goes to the projection
            return self.llama_proj(image_embeds)
        # [2] Q-Former: the learned queries read the image through cross-attention.
        queries = self.query_tokens.expand(image_embeds.shape[0], -1, -1)
        image_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
        query_output = self.qformer(query_embeds=queries, encoder_hidden_states=image_embeds,
                                    encoder_attention_mask=image_mask).last_hidden_state
        # [3] The one trained layer.
        return self.llama_proj(query_output)

    def embed_prompt(self, prompt: str, image_embeds: torch.Tensor, tokenizer: PreTrainedTokenizerBase) -> torch.Tensor:
        """[4] Split at <ImageHere>, tokenise each piece alone (BOS on the first only), splice the image in."""
        pieces = prompt.split(IMAGE_PLACEHOLDER)
        if len(pieces) != 2:
            raise ValueError(f"a MiniGPT-4 prompt needs exactly one {IMAGE_PLACEHOLDER}, got {len(pieces) - 1}")
        embed = self.llm.get_input_embeddings()
        parts = []
        for i, piece in enumerate(pieces):
            ids = tokenizer(piece, add_special_tokens=False).input_ids
            if i == 0:
                ids = [tokenizer.bos_token_id, *ids]
            parts.append(embed(torch.tensor(ids, dtype=torch.long, device=image_embeds.device)))
            if i == 0:
                parts.append(image_embeds.to(parts[0].dtype))
        return torch.cat(parts, dim=0)


def image_processor(image_size: int) -> BlipImageProcessor:
    """224x224 bicubic, CLIP mean/std, as upstream's evaluation transform (sized to the model)."""
    return BlipImageProcessor(size={"height": image_size, "width": image_size}, resample=PILImageResampling.BICUBIC,
                              image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD, do_convert_rgb=True)


def weights_digest(module: nn.Module) -> str:
    """A hash of every parameter and buffer, in name order."""
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def tokenizer_digest(tokenizer: PreTrainedTokenizerBase) -> str:
    vocab = sorted(tokenizer.get_vocab().items())
    return hashlib.blake2b(json.dumps([vocab, tokenizer.bos_token_id, tokenizer.eos_token_id]).encode(),
                           digest_size=16).hexdigest()


class MiniGPT4Adapter:
    """The harness adapter. Build it from a checkpoint folder, real parts, or a tiny random config."""

    version = "1"

    def __init__(self, checkpoint: str | None = None, tiny: bool = False, seed: int = 0, variant: str = "minigpt4",
                 blip2: str | None = None, llm: str | None = None, projection: str | None = None,
                 dtype: str = "float32", device: str = "auto", load_in_8bit: bool = False):
        from model_zoo import checkpoints
        from model_zoo import tiny as tiny_zoo

        if checkpoint:
            self.model, self.tokenizer = checkpoints.load_minigpt4(checkpoint)
        elif blip2 and llm:
            self.model, self.tokenizer = checkpoints.minigpt4_from_parts(blip2, llm, projection, dtype=dtype,
                                                                         load_in_8bit=load_in_8bit)
        elif tiny:
            self.model, self.tokenizer = tiny_zoo.tiny_minigpt4(seed=seed, variant=variant)
        else:
            raise ValueError("MiniGPT4Adapter needs checkpoint=DIR, blip2=DIR + llm=DIR (+ projection=PTH), "
                             "or tiny=true")
        self.dtype = getattr(torch, dtype)
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available()
                                   else ("cpu" if device == "auto" else device))
        if not load_in_8bit:
            self.model.to(device=self.device, dtype=self.dtype)
        self.model.eval()
        self.processor = image_processor(self.model.config.image_size)
        self._fingerprint: str | None = None

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            payload = {"adapter": type(self).__name__, "version": self.version, "config": self.model.config.to_json(),
                       "dtype": str(self.dtype), "weights": weights_digest(self.model),
                       "tokenizer": tokenizer_digest(self.tokenizer)}
            self._fingerprint = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]
        return self._fingerprint

    # ----- the protocol ------------------------------------------------------------------------------
    @torch.no_grad()
    def prompt_embeddings(self, requests: Sequence[Request], images: Sequence[Image | None]) -> list[torch.Tensor]:
        """One (L_i, H) tensor per request: the prompt with its image tokens spliced in."""
        if any(img is None for img in images):
            raise ValueError("MiniGPT-4 needs an image for every request")
        pixels = self.processor(list(images), return_tensors="pt")["pixel_values"].to(self.device, self.dtype)
        image_embeds = self.model.encode_images(pixels)
        return [self.model.embed_prompt(prompt_for(req), emb, self.tokenizer)
                for req, emb in zip(requests, image_embeds, strict=True)]

    def generate(self, requests: Sequence[Request], images: Sequence[Image | None]) -> list[Response]:
        start = time.perf_counter()
        rows = self.prompt_embeddings(requests, images)
        settings = requests[0].settings
        if any(r.settings != settings for r in requests):
            return [r for req, img in zip(requests, images, strict=True) for r in self.generate([req], [img])]
        outputs = generate_from_embeds(self.model.llm, self.tokenizer, rows, settings, stops=(STOP,))
        per_sample = (time.perf_counter() - start) / len(requests)
        return [Response(text=o.text, prompt_tokens=int(r.shape[0]), completion_tokens=o.new_tokens,
                         latency_s=per_sample) for o, r in zip(outputs, rows, strict=True)]

    def score_choices(self, requests: Sequence[Request], images: Sequence[Image | None]) -> list[Response]:
        start = time.perf_counter()
        rows = self.prompt_embeddings(requests, images)
        choice_ids = [[self._choice_ids(prompt_for(req), c) for c in req.choices] for req in requests]
        scores = choice_loglikelihoods(self.model.llm, rows, choice_ids)
        per_sample = (time.perf_counter() - start) / len(requests)
        return [Response(prompt_tokens=int(r.shape[0]), choice_logprobs=tuple(s), latency_s=per_sample)
                for s, r in zip(scores, rows, strict=True)]

    def _choice_ids(self, prompt: str, choice: str) -> torch.Tensor:
        """The tokens `choice` takes when it follows the prompt (tokenised in context, then split off)."""
        tail = prompt.split(IMAGE_PLACEHOLDER)[-1]
        head = self.tokenizer(tail, add_special_tokens=False).input_ids
        full = self.tokenizer(f"{tail} {choice}", add_special_tokens=False).input_ids
        ids = full[len(head):] if full[: len(head)] == head else \
            self.tokenizer(f" {choice}", add_special_tokens=False).input_ids
        return torch.tensor(ids, dtype=torch.long, device=self.device)
