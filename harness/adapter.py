"""The model adapter protocol: what the runner needs from a model, and nothing about tasks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from PIL.Image import Image

from harness.types import Request, Response


@runtime_checkable
class ModelAdapter(Protocol):
    def fingerprint(self) -> str:
        """A string that changes whenever the model's outputs could change (weights, dtype, config)."""

    def generate(self, requests: Sequence[Request], images: Sequence[Image | None]) -> list[Response]:
        """One response per request, in order. `images[i]` is the loaded image of `requests[i]`."""

    def score_choices(self, requests: Sequence[Request], images: Sequence[Image | None]) -> list[Response]:
        """One response per request with `choice_logprobs`: log-likelihood of each of its choices."""
