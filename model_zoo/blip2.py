"""BLIP-2 (paper section 4, the "BLIP-2" and "BLIP-2 FT" rows): transformers' Blip2ForConditionalGeneration.

    image -> [1] ViT (Blip2VisionModel)
          -> [2] Q-Former: 32 learned queries cross-attend to the ViT tokens
          -> [3] `language_projection` (one nn.Linear) -> 32 soft tokens
          -> [4] they replace the 32 `<image>` tokens that start every language-model input
          -> [5] OPT continues after them (decoder-only), or FlanT5 encodes them with the prompt and its
                 decoder writes the answer (encoder-decoder).

BLIP-2 FT is this same adapter pointed at the fine-tuned checkpoint folder.

Prompts follow the paper / LAVIS: captioning uses an EMPTY prompt, VQA uses "Question: {} Answer:". The
adapter never sees the task, so the rule is on the request's prompt (see `prompt_text`): empty -> empty,
one that already says "Question:" or "Answer:" -> as written, anything else -> "Question: {prompt} Answer:".

The input ids are built here, not by Blip2Processor, which pads the text first and then puts the image
tokens in front ([image][pad][text], a hole in the mask) and adds no image tokens at all when a folder's
processor config lacks `num_query_tokens`. Here a row is [pad][image][text] for OPT (left-padded so the
last tokens line up) and [image][text][pad] for the T5 encoder: each row of a batch is its unbatched row,
shifted. For one row the two agree (tested). The tokenizer adds each family's special tokens (OPT: `</s>`
as BOS in front; T5: `</s>` at the end), as the real checkpoints' tokenizers and LAVIS do.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from typing import Literal

import torch
from PIL.Image import Image
from transformers import (
    AutoImageProcessor,
    AutoTokenizer,
    Blip2ForConditionalGeneration,
    StoppingCriteriaList,
    StopStringCriteria,
)

from harness.types import GenerationSettings, Request, Response
from model_zoo.generation import choice_loglikelihoods, cut_at_stop
from model_zoo.minigpt4 import image_processor, tokenizer_digest, weights_digest

# Keys of a saved config that say where or with what it was written, not what the model computes.
VOLATILE_CONFIG_KEYS = frozenset({"_name_or_path", "transformers_version", "architectures", "dtype", "torch_dtype",
                                  "_attn_implementation_autoset", "_commit_hash"})
PROMPT_PROBE = "Question: what is this? Answer:"


def prompt_text(prompt: str) -> str:
    """The text the tokenizer gets: "" for captioning, else LAVIS's VQA template unless already in it."""
    prompt = prompt.strip()
    if not prompt or "Question:" in prompt or "Answer:" in prompt:
        return prompt
    return f"Question: {prompt} Answer:"


def pad_rows(rows: Sequence[list[int]], pad_id: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) for rows of different lengths, padded on the left or the right."""
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(length - len(row), length) if left else slice(0, len(row))
        ids[i, span] = torch.tensor(row, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


def until_finished(row: list[int], eos_ids: Sequence[int], pad_id: int) -> list[int]:
    """The tokens a row really generated: up to and including its first EOS, else without trailing padding
    (generate pads a row that a stop string finished)."""
    for i, tok in enumerate(row):
        if tok in eos_ids:
            return row[: i + 1]
    end = len(row)
    while end and row[end - 1] == pad_id:
        end -= 1
    return row[:end]


def _stable(config: dict) -> dict:
    return {k: _stable(v) if isinstance(v, dict) else v for k, v in config.items() if k not in VOLATILE_CONFIG_KEYS}


class Blip2Adapter:
    """The harness adapter. Build it from a Hugging Face BLIP-2 folder or a tiny random config."""

    version = "1"

    def __init__(self, checkpoint: str | None = None, tiny: bool = False, language_model: Literal["opt", "t5"] = "opt",
                 seed: int = 0, dtype: str = "float32", device: str = "auto"):
        from model_zoo.tiny_blip2 import tiny_blip2

        self.dtype = getattr(torch, dtype)
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available()
                                   else ("cpu" if device == "auto" else device))
        if checkpoint:
            # `language_model` is ignored here: the folder's config says which one it is. FlanT5 overflows in
            # float16; run it in bfloat16 or float32.
            self.model = Blip2ForConditionalGeneration.from_pretrained(checkpoint, local_files_only=True,
                                                                       dtype=self.dtype)
            self.tokenizer = AutoTokenizer.from_pretrained(checkpoint, local_files_only=True)
            self.processor = AutoImageProcessor.from_pretrained(checkpoint, local_files_only=True)
        elif tiny:
            self.model, self.tokenizer = tiny_blip2(seed=seed, language_model=language_model)
            self.model.to(dtype=self.dtype)
            self.processor = image_processor(self.model.config.vision_config.image_size)
        else:
            raise ValueError("Blip2Adapter needs checkpoint=DIR (a Hugging Face BLIP-2 folder) or tiny=true")
        self.model.to(self.device).eval()
        config = self.model.config
        self.decoder_only = bool(config.use_decoder_only_language_model)
        self.image_token_id = config.image_token_index
        if self.image_token_id is None:
            raise ValueError(f"{checkpoint}: the BLIP-2 config has no image_token_index (a folder from an older "
                             "transformers); add the <image> token and re-save it with a current one")
        # Both the tokenizer's EOS and the configured one: the released OPT configs stop on "\n" (50118), as LAVIS.
        configured = config.text_config.eos_token_id
        configured = configured if isinstance(configured, list) else [configured]
        self.eos_ids = list(dict.fromkeys(i for i in [self.tokenizer.eos_token_id, *configured] if i is not None))
        self._fingerprint: str | None = None

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            processor = {k: v for k, v in self.processor.to_dict().items() if k != "image_processor_type"}
            payload = {"adapter": type(self).__name__, "version": self.version,
                       "config": _stable(self.model.config.to_dict()), "dtype": str(self.dtype),
                       "weights": weights_digest(self.model), "tokenizer": tokenizer_digest(self.tokenizer),
                       # the vocabulary alone misses the special-token template (BOS in front vs EOS behind)
                       "probe": self.tokenizer(PROMPT_PROBE).input_ids,
                       "image_processor": json.dumps(processor, sort_keys=True, default=str)}
            self._fingerprint = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]
        return self._fingerprint

    def save(self, folder: str) -> None:
        """Write a folder that `Blip2Adapter(checkpoint=folder)` (and transformers) loads: BLIP-2 FT's format."""
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        self.processor.save_pretrained(folder)

    # ----- inputs ---------------------------------------------------------------------------------------
    def input_ids(self, request: Request) -> list[int]:
        """[4] One row: the image slots, then the prompt with its family's special tokens."""
        return [self.image_token_id] * self.model.config.num_query_tokens + \
            self.tokenizer(prompt_text(request.prompt)).input_ids

    def pixel_values(self, images: Sequence[Image | None]) -> torch.Tensor:
        if any(img is None for img in images):
            raise ValueError("BLIP-2 needs an image for every request")
        return self.processor(list(images), return_tensors="pt")["pixel_values"].to(self.device, self.dtype)

    # ----- the protocol ---------------------------------------------------------------------------------
    def generate(self, requests: Sequence[Request], images: Sequence[Image | None]) -> list[Response]:
        start = time.perf_counter()
        settings = requests[0].settings
        if any(r.settings != settings for r in requests):
            return [r for req, img in zip(requests, images, strict=True) for r in self.generate([req], [img])]
        rows = [self.input_ids(r) for r in requests]
        tokens = self.generate_tokens(rows, self.pixel_values(images), settings)
        per_sample = (time.perf_counter() - start) / len(requests)
        return [Response(text=cut_at_stop(self.tokenizer.decode(t, skip_special_tokens=True), settings.stop),
                         prompt_tokens=len(row), completion_tokens=len(t), latency_s=per_sample)
                for t, row in zip(tokens, rows, strict=True)]

    @torch.no_grad()
    def generate_tokens(self, rows: Sequence[list[int]], pixel_values: torch.Tensor,
                        settings: GenerationSettings) -> list[list[int]]:
        """[5] The new tokens of every row; each row stops on its own at EOS or a stop string."""
        pad = self.tokenizer.pad_token_id
        ids, mask = pad_rows(rows, pad, left=self.decoder_only)
        criteria = StoppingCriteriaList([StopStringCriteria(self.tokenizer, list(settings.stop))]) \
            if settings.stop else None
        sampling = {"do_sample": True, "temperature": settings.temperature, "top_p": settings.top_p} \
            if settings.do_sample else {"do_sample": False}
        out = self.model.generate(pixel_values=pixel_values, input_ids=ids.to(self.device),
                                  attention_mask=mask.to(self.device), max_new_tokens=settings.max_new_tokens,
                                  num_beams=settings.num_beams, stopping_criteria=criteria, eos_token_id=self.eos_ids,
                                  pad_token_id=pad, **sampling)
        # OPT returns prompt + new tokens; T5 returns the decoder's start token + new tokens.
        new = out[:, ids.shape[1]:] if self.decoder_only else out[:, 1:]
        return [until_finished(row, self.eos_ids, pad) for row in new.tolist()]

    @torch.no_grad()
    def score_choices(self, requests: Sequence[Request], images: Sequence[Image | None]) -> list[Response]:
        start = time.perf_counter()
        rows = [self.input_ids(r) for r in requests]
        # [1]-[3] once per image, then [4] the soft tokens go where the <image> ids are.
        features = self.model.get_image_features(self.pixel_values(images)).pooler_output
        embed = self.model.get_input_embeddings()
        prefixes = []
        for row, feats in zip(rows, features, strict=True):
            ids = torch.tensor(row, device=self.device)
            emb = embed(ids)
            emb[ids == self.image_token_id] = feats.to(emb.dtype)
            prefixes.append(emb)
        if self.decoder_only:
            choice_ids = [[self._choice_ids_in_context(prompt_text(r.prompt), c) for c in r.choices]
                          for r in requests]
            scores = choice_loglikelihoods(self.model.language_model, prefixes, choice_ids)
        else:
            scores = self._seq2seq_scores(prefixes, [list(r.choices) for r in requests])
        per_sample = (time.perf_counter() - start) / len(requests)
        return [Response(prompt_tokens=len(row), choice_logprobs=tuple(s), latency_s=per_sample)
                for s, row in zip(scores, rows, strict=True)]

    def _choice_ids_in_context(self, prompt: str, choice: str) -> torch.Tensor:
        """OPT: the tokens `choice` takes after the prompt (tokenised together, the prompt's split off)."""
        head = self.tokenizer(prompt, add_special_tokens=False).input_ids
        full = self.tokenizer(f"{prompt} {choice}", add_special_tokens=False).input_ids
        ids = full[len(head):] if full[: len(head)] == head else \
            self.tokenizer(f" {choice}", add_special_tokens=False).input_ids
        return torch.tensor(ids, dtype=torch.long, device=self.device)

    def _seq2seq_scores(self, prefixes: list[torch.Tensor], choices: list[list[str]]) -> list[list[float]]:
        """T5: sum of log p(choice tokens | image + prompt) for every (row, choice), one padded forward pass.

        The choice is tokenised alone with the tokenizer's template, so it ends in `</s>` (as LAVIS ranks
        answers for FlanT5): an answer must also END there, and a prefix of a longer choice gets no free win.
        """
        encoder_rows, labels = [], []
        for prefix, row_choices in zip(prefixes, choices, strict=True):
            for choice in row_choices:
                encoder_rows.append(prefix)
                labels.append(self.tokenizer(choice).input_ids)
        length = max(r.shape[0] for r in encoder_rows)
        embeds = encoder_rows[0].new_zeros((len(encoder_rows), length, encoder_rows[0].shape[1]))
        mask = torch.zeros(embeds.shape[:2], dtype=torch.long, device=self.device)
        for i, r in enumerate(encoder_rows):  # right padding: T5's relative positions ignore it
            embeds[i, : r.shape[0]] = r
            mask[i, : r.shape[0]] = 1
        label_ids, label_mask = pad_rows(labels, pad_id=-100, left=False)
        label_ids = label_ids.to(self.device)
        # labels -> decoder inputs (shifted right, -100 -> pad) inside T5; the decoder is causal, so the
        # right padding of the labels changes nothing before it.
        logits = self.model.language_model(inputs_embeds=embeds, attention_mask=mask, labels=label_ids).logits
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        picked = logprobs.gather(-1, label_ids.clamp(min=0).unsqueeze(-1)).squeeze(-1) * label_mask.to(self.device)
        flat = picked.sum(-1).tolist()
        scores, k = [], 0
        for row_choices in choices:
            scores.append(flat[k: k + len(row_choices)])
            k += len(row_choices)
        return scores
