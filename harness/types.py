"""Request and response types: the contract between tasks, the runner and model adapters.

Everything here is a frozen dataclass so a request can be hashed into a store key and passed between
processes without anyone mutating it on the way.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ImageRef:
    """Where a sample's image lives.

    `source` + `id` identify the image independently of the machine (they go into the store key);
    `path` is where this machine finds the file and is deliberately NOT part of the key, so a run can be
    resumed with the data mounted somewhere else.
    """

    source: str
    id: str
    path: str | None = None

    def key_fields(self) -> dict[str, str]:
        return {"source": self.source, "id": self.id}


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding settings. Greedy by default: benchmarks must be deterministic (paper section 2)."""

    max_new_tokens: int = 64
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    num_beams: int = 1
    stop: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        # written out rather than dataclasses.asdict: this runs for every sample (keys, store rows)
        return {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample,
                "temperature": self.temperature, "top_p": self.top_p, "num_beams": self.num_beams,
                "stop": list(self.stop)}

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.num_beams < 1:
            raise ValueError(f"num_beams must be >= 1, got {self.num_beams}")


@dataclass(frozen=True)
class Request:
    """One sample put to a model: an image, a prompt, decoding settings and, for multiple choice, choices."""

    task: str
    sample_id: str
    prompt: str
    image: ImageRef | None = None
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    choices: tuple[str, ...] = ()

    def canonical(self) -> dict[str, Any]:
        """The fields that define what the model is asked, in a stable JSON-able form."""
        return {
            "task": self.task,
            "sample_id": self.sample_id,
            "prompt": self.prompt,
            "image": self.image.key_fields() if self.image else None,
            "settings": self.settings.as_dict(),
            "choices": list(self.choices),
        }

    def to_json(self) -> str:
        data = self.canonical()
        if self.image:
            data["image"] = {"source": self.image.source, "id": self.image.id, "path": self.image.path}
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Request:
        data = json.loads(text)
        settings = dict(data["settings"])
        settings["stop"] = tuple(settings.get("stop", ()))
        return cls(
            task=data["task"],
            sample_id=data["sample_id"],
            prompt=data["prompt"],
            image=ImageRef(**data["image"]) if data["image"] else None,
            settings=GenerationSettings(**settings),
            choices=tuple(data["choices"]),
        )


@dataclass(frozen=True)
class Response:
    """A model's answer to one request. `error` is set (and `text` empty) when this sample failed."""

    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    choice_logprobs: tuple[float, ...] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def generation_key(model_fingerprint: str, request: Request) -> str:
    """Content hash of (model fingerprint, request): the store's primary key for a generation.

    It depends on nothing about the run's shape (process count, batch size, order), so a run resumes on
    any machine and two runs of the same model on the same request share one row.
    """
    payload = json.dumps({"model": model_fingerprint, "request": request.canonical()}, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
