"""Tiny BLIP-2 models (random weights) for tests and CPU runs: OPT (decoder-only) or FlanT5 (encoder-decoder).

The vision side is the tiny MiniGPT-4's (same ViT and Q-Former sizes, 32 query tokens), so the two families
share the code paths that matter. The tokenizer is the tiny byte-level BPE with what the real BLIP-2
tokenizers bring: an `<image>` token for the 32 query slots, and the special-token template of each family
(OPT's GPT-2 tokenizer PREPENDS `</s>` as BOS; T5's sentencepiece APPENDS `</s>`).
"""

from __future__ import annotations

import copy

import torch
from tokenizers import AddedToken, processors
from torch import nn
from transformers import (
    Blip2Config,
    Blip2ForConditionalGeneration,
    OPTConfig,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
    T5Config,
)

from model_zoo.blip2 import Blip2Adapter
from model_zoo.checkpoints import set_special_ids
from model_zoo.tiny import TINY_IMAGE_SIZE, tiny_minigpt4_config, tiny_tokenizer
from model_zoo.tokenizer import SPECIAL_TOKENS

LANGUAGE_MODELS = ("opt", "t5")
IMAGE_TOKEN = "<image>"
NUM_QUERY_TOKENS = 32


def tiny_blip2_tokenizer(language_model: str = "opt") -> PreTrainedTokenizerFast:
    """A fresh tokenizer (never the cached `tiny_tokenizer()` itself: adding a token would change it for all)."""
    _check(language_model)
    base = tiny_tokenizer()
    backend = copy.deepcopy(base.backend_tokenizer)
    if language_model == "opt":
        template = processors.TemplateProcessing(single=f"{base.bos_token} $A",
                                                 special_tokens=[(base.bos_token, base.bos_token_id)])
    else:
        template = processors.TemplateProcessing(single=f"$A {base.eos_token}",
                                                 special_tokens=[(base.eos_token, base.eos_token_id)])
    backend.post_processor = template
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, **SPECIAL_TOKENS)
    # Added as transformers' Blip2Processor adds it: special, never split or normalised.
    tokenizer.add_tokens([AddedToken(IMAGE_TOKEN, normalized=False, special=True)], special_tokens=True)
    return tokenizer


def tiny_blip2_config(tokenizer: PreTrainedTokenizerBase, language_model: str = "opt") -> Blip2Config:
    _check(language_model)
    minigpt4 = tiny_minigpt4_config(vocab_size=len(tokenizer))
    special = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
               "pad_token_id": tokenizer.pad_token_id}
    if language_model == "opt":
        text = OPTConfig(vocab_size=len(tokenizer), hidden_size=64, word_embed_proj_dim=64, ffn_dim=128,
                         num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=512,
                         tie_word_embeddings=False, **special)
    else:
        # FlanT5 style: gated-GELU feed-forward, untied head; the decoder starts from the pad token.
        text = T5Config(vocab_size=len(tokenizer), d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=2,
                        num_heads=4, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                        decoder_start_token_id=tokenizer.pad_token_id, **special)
    return Blip2Config(vision_config={**minigpt4.vision, "image_size": TINY_IMAGE_SIZE},
                       qformer_config=minigpt4.qformer, text_config=text.to_dict(), num_query_tokens=NUM_QUERY_TOKENS,
                       image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN))


def tiny_blip2(seed: int = 0, language_model: str = "opt") -> tuple[Blip2ForConditionalGeneration,
                                                                     PreTrainedTokenizerFast]:
    tokenizer = tiny_blip2_tokenizer(language_model)
    config = tiny_blip2_config(tokenizer, language_model)
    torch.manual_seed(seed)
    model = Blip2ForConditionalGeneration(config)
    if language_model == "t5":
        # transformers 5 forces T5Config.tie_word_embeddings=True (False only turns off output scaling), so the
        # head starts as the input embedding and a random model just repeats its input. FlanT5's head is its
        # own matrix: give it one. Saved, both tensors are written; loading unties them (with a warning).
        lm = model.language_model
        lm.lm_head.weight = nn.Parameter(torch.randn_like(lm.lm_head.weight))
    set_special_ids(model.language_model, tokenizer)
    return model, tokenizer


def _check(language_model: str) -> None:
    if language_model not in LANGUAGE_MODELS:
        raise ValueError(f"unknown BLIP-2 language model {language_model!r}; known: {LANGUAGE_MODELS}")


class TinyBlip2(Blip2Adapter):
    """A random tiny BLIP-2 OPT, registered by name (`blip2-tiny-random`)."""

    language_model = "opt"

    def __init__(self, seed: int = 0, dtype: str = "float32", device: str = "auto"):
        super().__init__(tiny=True, language_model=self.language_model, seed=seed, dtype=dtype, device=device)


class TinyBlip2FlanT5(TinyBlip2):
    """`blip2-flant5-tiny-random`: the encoder-decoder path, as BLIP-2 FlanT5-XXL (the paper's BLIP-2)."""

    language_model = "t5"
