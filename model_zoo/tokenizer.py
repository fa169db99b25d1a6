"""Tokenizers for the tiny models, and how the `###` separator tokenises.

Real models bring their own tokenizer (a Hugging Face directory). The tiny models get a byte-level BPE
trained in-process with the `tokenizers` library on whatever text they will see, wrapped as a
`PreTrainedTokenizerFast` so every code path is the one a real tokenizer takes.
"""

from __future__ import annotations

from collections.abc import Iterable

from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

SPECIAL_TOKENS = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}


def train_tiny_tokenizer(texts: Iterable[str], vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (no unknown characters possible) trained on `texts`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL_TOKENS)


def stop_tokenisations(tokenizer: PreTrainedTokenizerBase, stop: str = "###") -> list[list[int]]:
    """The token sequences `stop` takes in running text, found by tokenising it after a few contexts.

    For LLaMA's vocabulary this gives the two upstream ones, [835] ('▁###') and [2277, 29937] ('##', '#').
    Stopping itself goes by the decoded text (transformers' StopStringCriteria), which also catches a
    token that merely ends with the separator; this list documents and tests the tokenisations.
    """
    found: list[list[int]] = []
    for context in ("", " ", "a", "a ", "a.", "\n"):
        head = tokenizer(context, add_special_tokens=False).input_ids if context else []
        full = tokenizer(context + stop, add_special_tokens=False).input_ids
        if full[: len(head)] == head:
            tail = full[len(head):]
            if tail and tokenizer.decode(tail).strip() == stop and tail not in found:
                found.append(tail)
    return found
