"""Training batches for MiniGPT-4's two stages: input embeddings with the image spliced in, and labels.

Stage 1 (paper section 2): no prompt. Input [BOS][image tokens] caption, target `caption + "\\n"`, text cut to
`max_txt_len` (32) tokens. Stage 2: the template `###Human: <Img><ImageHere></Img> {instruction} ###Assistant: `
and target `description + "###"` (`max_txt_len` 160). In both, BOS, the prompt and the image tokens get label
-100: the loss is computed on the target tokens only. Rows are right-padded; padding also gets -100.

The template's trailing space belongs to the answer: the target is tokenised as it reads after the prompt
(`target_ids`), so training sees the tokens the model generates after an evaluation prompt ending in
"###Assistant:". Upstream's LLaMA tokenizer gets this from SentencePiece's dummy prefix ("▁This"); a byte-level
BPE would otherwise learn a lone space token followed by "This", a pair it never meets at evaluation.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from model_zoo.minigpt4 import IMAGE_PLACEHOLDER, MiniGPT4Model

IGNORE = -100
# upstream prompts/alignment.txt: one of these is drawn at random for each stage-2 sample
STAGE2_INSTRUCTIONS = (
    "<Img><ImageHere></Img> Describe this image in detail.",
    "<Img><ImageHere></Img> Take a look at this image and describe what you notice.",
    "<Img><ImageHere></Img> Please provide a detailed description of the picture.",
    "<Img><ImageHere></Img> Could you describe the contents of this image for me?",
)
STAGE2_TEMPLATE = "###Human: {} ###Assistant: "
_CAPTION_PUNCT = re.compile(r"""[.!"()*#:;~]""")


def process_stage1_caption(caption: str, max_words: int = 50) -> str:
    """Upstream's caption processing: lower case, `[.!"()*#:;~]` -> space, spaces collapsed, 50 words."""
    text = _CAPTION_PUNCT.sub(" ", caption.lower())
    text = re.sub(r"\s{2,}", " ", text).rstrip("\n").strip()
    return " ".join(text.split(" ")[:max_words])


def stage2_prompt(rng: random.Random) -> str:
    return STAGE2_TEMPLATE.format(rng.choice(STAGE2_INSTRUCTIONS))


@dataclass
class Batch:
    inputs_embeds: torch.Tensor  # (B, L, H)
    attention_mask: torch.Tensor  # (B, L)
    labels: torch.Tensor  # (B, L), IGNORE outside the targets
    input_ids: list[list[int | None]]  # per row, the token at each position (None: an image token), for tests


def target_ids(tokenizer: PreTrainedTokenizerBase, context: str, target: str) -> tuple[list[int], list[int]]:
    """(context ids, target ids) with `context`'s trailing whitespace moved onto the target, and the target
    tokenised as it reads after the context when the tokenizer splits the joined text at their border (the
    same text in other words); otherwise, each tokenised alone."""
    head = context.rstrip()
    space = context[len(head):]
    alone = tokenizer(head, add_special_tokens=False).input_ids if head else []
    if head and space:
        joined = tokenizer(head + space + target, add_special_tokens=False).input_ids
        if joined[: len(alone)] == alone and len(joined) > len(alone):
            return alone, joined[len(alone):]
    return (tokenizer(context, add_special_tokens=False).input_ids if context else []), \
        tokenizer(target, add_special_tokens=False).input_ids


def build_batch(model: MiniGPT4Model, tokenizer: PreTrainedTokenizerBase, image_embeds: torch.Tensor,
                prompts: Sequence[str], targets: Sequence[str], max_txt_len: int) -> Batch:
    """Rows = [BOS] prompt-before-image, image, prompt-after-image, target; loss on the target only.

    A stage-1 prompt is just the placeholder (`<ImageHere>`), so the row is [BOS][image] target.
    """
    embed = model.llm.get_input_embeddings()
    device = image_embeds.device
    rows, labels, ids = [], [], []
    for prompt, target, image in zip(prompts, targets, image_embeds, strict=True):
        before, after = prompt.split(IMAGE_PLACEHOLDER)
        head = [tokenizer.bos_token_id, *tokenizer(before, add_special_tokens=False).input_ids]
        tail, answer = target_ids(tokenizer, after, target)
        answer = answer[:max_txt_len]
        pieces = [embed(torch.tensor(head, device=device)), image.to(embed.weight.dtype)]
        if tail:
            pieces.append(embed(torch.tensor(tail, device=device)))
        pieces.append(embed(torch.tensor(answer, device=device)))
        rows.append(torch.cat(pieces))
        n_prompt = len(head) + image.shape[0] + len(tail)
        labels.append([IGNORE] * n_prompt + answer)
        ids.append([*head, *([None] * image.shape[0]), *tail, *answer])
    length = max(r.shape[0] for r in rows)
    hidden = rows[0].shape[1]
    inputs = rows[0].new_zeros((len(rows), length, hidden))
    mask = torch.zeros((len(rows), length), dtype=torch.long, device=device)
    label_tensor = torch.full((len(rows), length), IGNORE, dtype=torch.long, device=device)
    for i, (row, lab) in enumerate(zip(rows, labels, strict=True)):
        inputs[i, : row.shape[0]] = row
        mask[i, : row.shape[0]] = 1
        label_tensor[i, : len(lab)] = torch.tensor(lab, device=device)
    return Batch(inputs, mask, label_tensor, ids)


def target_tokens(batch: Batch) -> int:
    """How many tokens the loss is computed on (each label is predicted from the position before it)."""
    return int((batch.labels[:, 1:] != IGNORE).sum())


def lm_loss_sum(model: MiniGPT4Model, batch: Batch) -> torch.Tensor:
    """Summed cross-entropy over the target tokens; the caller divides by the step's token count, so a
    step's gradient is the same however its samples are split into micro-batches or processes."""
    logits = model.llm(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask).logits
    return torch.nn.functional.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                                             batch.labels[:, 1:].reshape(-1), ignore_index=IGNORE,
                                             reduction="sum")
