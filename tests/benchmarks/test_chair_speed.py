"""Benchmark: CHAIR over 5,000 synthetic captions of about 100 words must take under 10 s (both modes).

The captions are built from the CHAIR vocabulary (every synonym entry, so phrases and quirks are exercised)
mixed with common caption words, in sentences ending in . , ! so the sentence splitter has work to do."""

from __future__ import annotations

import random
import time

import pytest

from tasks.metrics.chair import SYNONYMS_FILE, Chair, parse_synonyms

BUDGET_S = 10.0
FILLER = ("a an the of on in with and is are two three sitting standing next to near front behind small large "
          "red white black wooden old young people street table room field").split()


def synthetic_captions(n: int = 5000, words_per_caption: int = 100, n_images: int = 500, seed: int = 0):
    rng = random.Random(seed)
    lines = parse_synonyms(SYNONYMS_FILE.read_text(encoding="utf-8"))
    categories = [line[0] for line in lines]
    vocabulary = [entry.strip() for line in lines for entry in line] + list(FILLER) * 4
    captions = []
    for i in range(n):
        words: list[str] = []
        while len(words) < words_per_caption:
            sentence = [rng.choice(vocabulary) for _ in range(rng.randint(6, 14))]
            sentence[-1] += rng.choice([".", ".", ",", "!"])
            words += sentence
        captions.append({"image_id": i % n_images, "caption": " ".join(words).capitalize()})
    ground_truth = {i: set(rng.sample(categories, 6)) for i in range(n_images)}
    return captions, ground_truth


@pytest.mark.benchmark
@pytest.mark.parametrize("mode", ["reference", "fixed"])
def test_chair_5000_long_captions_within_budget(mode, capsys):
    captions, ground_truth = synthetic_captions()
    chair = Chair(ground_truth, mode)
    start = time.perf_counter()
    result = chair.compute(captions)
    seconds = time.perf_counter() - start
    with capsys.disabled():
        print(f"\nCHAIR ({mode}): {len(captions)} captions, {result.mean_length:.1f} words each, "
              f"{result.n_mentions} mentions: {seconds:.2f} s")
    assert result.n_captions == 5000 and result.mean_length >= 100
    assert seconds < BUDGET_S
