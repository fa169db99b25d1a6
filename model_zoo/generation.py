"""Batched decoding shared by the local adapters: left padding, per-row stopping, choice scoring.

Every local adapter turns a batch into per-row input embeddings (image tokens already spliced in) and
hands them here. Rows are left-padded so their last tokens line up; `generate` stops each row on its own
when it writes the stop string or EOS; choice scoring is one forward pass over every (row, choice).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, StoppingCriteriaList, StopStringCriteria

from harness.types import GenerationSettings


@dataclass(frozen=True)
class Generated:
    text: str
    new_tokens: int


def left_pad(rows: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (L_i, H) embeddings into (B, L, H), padding on the left; returns (embeds, attention_mask)."""
    length = max(r.shape[0] for r in rows)
    hidden = rows[0].shape[1]
    embeds = rows[0].new_zeros((len(rows), length, hidden))
    mask = torch.zeros((len(rows), length), dtype=torch.long, device=rows[0].device)
    for i, r in enumerate(rows):
        embeds[i, length - r.shape[0]:] = r
        mask[i, length - r.shape[0]:] = 1
    return embeds, mask


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    """The text before the first stop string (the model's answer ends at the first `###`)."""
    cut = len(text)
    for stop in stops:
        at = text.find(stop)
        if at != -1:
            cut = min(cut, at)
    return text[:cut].strip()


@torch.no_grad()
def generate_from_embeds(
    llm: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, rows: Sequence[torch.Tensor],
    settings: GenerationSettings, stops: Sequence[str] = ("###",),
) -> list[Generated]:
    """Decode a batch of prompt embeddings; each row stops on its own at a stop string or EOS."""
    embeds, mask = left_pad(rows)
    stop_strings = list(dict.fromkeys([*stops, *settings.stop]))
    criteria = StoppingCriteriaList([StopStringCriteria(tokenizer=tokenizer, stop_strings=stop_strings)])
    sampling = {"do_sample": True, "temperature": settings.temperature, "top_p": settings.top_p} \
        if settings.do_sample else {"do_sample": False}
    out = llm.generate(
        inputs_embeds=embeds, attention_mask=mask, max_new_tokens=settings.max_new_tokens,
        num_beams=settings.num_beams, stopping_criteria=criteria, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, **sampling,
    )
    results = []
    for row in out.tolist():  # with inputs_embeds, generate returns only the new tokens
        tokens = _until_finished(row, tokenizer)
        results.append(Generated(cut_at_stop(tokenizer.decode(tokens, skip_special_tokens=True), stop_strings),
                                 len(tokens)))
    return results


def _until_finished(row: list[int], tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Drop what generate appended after this row finished (EOS and padding)."""
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    for i, tok in enumerate(row):
        if tok == eos:
            return row[: i + 1]
        if tok == pad and pad != eos:
            return row[:i]
    return row


def padded_logits(llm: PreTrainedModel, rows: Sequence[torch.Tensor]) -> torch.Tensor:
    """(B, L, V) logits of the (L_i, H) embedding rows in one left-padded forward pass. Positions count real
    tokens only, so a left-padded row sees the positions it would see alone."""
    embeds, mask = left_pad(rows)
    return llm(inputs_embeds=embeds, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits


@torch.no_grad()
def choice_loglikelihoods(llm: PreTrainedModel, prefixes: Sequence[torch.Tensor],
                          choices: Sequence[Sequence[torch.Tensor]]) -> list[list[float]]:
    """Sum of log p(choice tokens | prefix) for every choice of every row, in one padded forward pass.

    `prefixes[i]` is row i's prompt embeddings (L_i, H); `choices[i][j]` the token ids of its choice j.
    """
    embed = llm.get_input_embeddings()
    seqs, spans = [], []
    for prefix, row_choices in zip(prefixes, choices, strict=True):
        for ids in row_choices:
            seqs.append(torch.cat([prefix, embed(ids.to(prefix.device)).to(prefix.dtype)]))
            spans.append((prefix.shape[0], ids))
    logits = padded_logits(llm, seqs).float()
    logprobs = torch.log_softmax(logits, dim=-1)
    scores, k = [], 0
    length = logits.shape[1]
    for row_choices in choices:
        row = []
        for _ in row_choices:
            start, ids = spans[k]
            offset = length - (start + ids.shape[0])  # left padding shifts the row
            # the token at position p is predicted by the logits at p - 1
            positions = torch.arange(offset + start - 1, offset + start - 1 + ids.shape[0])
            row.append(float(logprobs[k, positions, ids.to(logprobs.device)].sum()))
            k += 1
        scores.append(row)
    return scores
