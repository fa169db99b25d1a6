"""A deterministic dummy model implementing the adapter protocol, for tests and documentation.

`dummy` looks at the image: it names the colour nearest to the image's centre, except on a fixed,
hash-chosen ~20% of samples where it names another one, then adds a hash-chosen run of filler words (so
output lengths vary). `dummy-blind` ignores the image and guesses. Outputs depend only on the request,
the image pixels and the `seed` option, never on batch composition, order or process count.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence

import numpy as np
from PIL.Image import Image

from harness.types import Request, Response

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "yellow": (235, 220, 40),
    "purple": (140, 40, 170),
    "orange": (245, 140, 20),
}
FILLER = ("it", "is", "a", "small", "shape", "on", "grey", "ground", "i", "think", "clearly", "the", "picture")
IMAGE_TOKENS = 32  # what a MiniGPT-4 image costs in the prompt, so token counts look like the real thing


class DummyAdapter:
    looks_at_image = True
    version = "1"

    def __init__(self, seed: int = 0, error_rate: float = 0.2, delay_s: float = 0.0):
        self.seed = int(seed)
        self.error_rate = float(error_rate)
        self.delay_s = float(delay_s)  # per batch; lets tests kill a run mid-way. Does not change outputs.

    def fingerprint(self) -> str:
        config = {"class": type(self).__name__, "version": self.version, "seed": self.seed,
                  "error_rate": self.error_rate, "looks_at_image": self.looks_at_image}
        return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:32]

    # ----- the protocol ------------------------------------------------------------------------------
    def generate(self, requests: Sequence[Request], images: Sequence[Image | None]) -> list[Response]:
        start = time.perf_counter()
        self._sleep()
        texts = [self._answer(req, img) for req, img in zip(requests, images, strict=True)]
        per_sample = (time.perf_counter() - start) / max(len(requests), 1)
        return [
            Response(text=text, prompt_tokens=self._prompt_tokens(req, img),
                     completion_tokens=len(text.split()), latency_s=per_sample)
            for req, img, text in zip(requests, images, texts, strict=True)
        ]

    def score_choices(self, requests: Sequence[Request], images: Sequence[Image | None]) -> list[Response]:
        start = time.perf_counter()
        self._sleep()
        out = []
        for req, img in zip(requests, images, strict=True):
            belief = self._believed_colour(req, img)
            scores = tuple(
                -0.1 if choice == belief else -2.0 - self._unit(req, img, "choice", choice)
                for choice in req.choices
            )
            out.append(Response(prompt_tokens=self._prompt_tokens(req, img), choice_logprobs=scores))
        per_sample = (time.perf_counter() - start) / max(len(requests), 1)
        return [Response(prompt_tokens=r.prompt_tokens, choice_logprobs=r.choice_logprobs,
                         latency_s=per_sample) for r in out]

    # ----- internals ---------------------------------------------------------------------------------
    def _sleep(self) -> None:
        if self.delay_s > 0:
            time.sleep(self.delay_s)

    def _prompt_tokens(self, req: Request, img: Image | None) -> int:
        return len(req.prompt.split()) + (IMAGE_TOKENS if img is not None else 0)

    def _unit(self, req: Request, img: Image | None, *salt: str) -> float:
        """A deterministic number in [0, 1) from the request, the image pixels and the seed."""
        h = hashlib.sha256()
        h.update(json.dumps([self.seed, req.prompt, list(req.choices), *salt]).encode())
        if img is not None:
            h.update(img.tobytes())
        return int.from_bytes(h.digest()[:8], "big") / 2**64

    def _seen_colour(self, img: Image | None) -> str | None:
        if img is None or not self.looks_at_image:
            return None
        w, h = img.size
        centre = np.asarray(img.crop((w // 3, h // 3, 2 * w // 3, 2 * h // 3)), dtype=np.float64)
        mean = centre.reshape(-1, 3).mean(axis=0)
        return min(COLOURS, key=lambda name: math.dist(mean, COLOURS[name]))

    def _believed_colour(self, req: Request, img: Image | None) -> str:
        names = sorted(COLOURS)
        seen = self._seen_colour(img)
        if seen is not None and self._unit(req, img, "right?") >= self.error_rate:
            return seen
        guess = names[int(self._unit(req, img, "guess") * len(names))]
        if guess == seen:  # a mistake must be a mistake
            guess = names[(names.index(guess) + 1) % len(names)]
        return guess

    def _answer(self, req: Request, img: Image | None) -> str:
        words = [self._believed_colour(req, img)]
        n_filler = int(self._unit(req, img, "length") * 12)
        words += [FILLER[int(self._unit(req, img, "w", str(i)) * len(FILLER))] for i in range(n_filler)]
        return " ".join(words[: req.settings.max_new_tokens])


class BlindDummyAdapter(DummyAdapter):
    looks_at_image = False
