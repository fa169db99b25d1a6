"""BLIP-2 FT (paper section 4): the tiny BLIP-2 fine-tuned on the stage-2 described pairs.

As the paper's BLIP-2 FT: the same curated data as MiniGPT-4's stage 2 (here the world's cc_sbu_align, or
the curated folder), the Q-Former, query tokens and projection trained, the ViT and the language model frozen.
Each sample asks with one of stage 2's four instructions in BLIP-2's own prompt format
(`Question: {instruction} Answer:`) and the target is the description + EOS.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, Blip2ForConditionalGeneration

from harness.train.batches import STAGE2_INSTRUCTIONS
from harness.train.pretrain import Schedule, epoch_batches, fit, pad_right
from harness.train.pretrain_blip2 import blip2_loss, blip2_rows, load_pixels, save_blip2

INSTRUCTIONS = tuple(i.split("</Img>", 1)[1].strip() for i in STAGE2_INSTRUCTIONS)
TRAINED = ("qformer.", "query_tokens", "language_projection.")


def finetune_blip2(blip2_dir: Path, data: Path, out: Path, schedule: Schedule, max_txt_len: int = 160,
                   progress: bool = True) -> dict:
    """Fine-tune the BLIP-2 folder `blip2_dir` on the cc_sbu_align folder `data`; writes a BLIP-2 folder."""
    from tasks.readers.ccsbu import read_cc_sbu_align

    torch.manual_seed(schedule.seed)
    model = Blip2ForConditionalGeneration.from_pretrained(blip2_dir, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(blip2_dir, local_files_only=True)
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(TRAINED))
    pairs = read_cc_sbu_align(data)
    size = model.config.vision_config.image_size
    pixels = load_pixels([p.image_path for p in pairs], size)
    order = epoch_batches(len(pairs), schedule.batch_size, schedule.seed)
    n_query = model.config.num_query_tokens

    def batch_loss(step: int) -> torch.Tensor:
        rng = random.Random(f"{schedule.seed}:blip2-ft:{step}")
        idx = order(step)
        rows, labels = [], []
        for i in idx:
            prompt = f"Question: {rng.choice(INSTRUCTIONS)} Answer:"
            row, lab = blip2_rows(tokenizer, n_query, prompt, pairs[i].caption, max_txt_len)
            rows.append(row)
            labels.append(lab)
        ids, lab, mask = pad_right(rows, labels, tokenizer.pad_token_id)
        return blip2_loss(model, pixels[idx], ids, lab, mask)

    started = time.perf_counter()
    losses = fit(model, batch_loss, schedule, "BLIP-2 FT", progress)
    for p in model.parameters():
        p.requires_grad_(True)
    save_blip2(model, tokenizer, size, out)
    return {"losses": losses[-20:], "seconds": time.perf_counter() - started}
