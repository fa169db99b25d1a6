"""An adapter for any OpenAI-compatible chat-completions endpoint with vision: GPT-4-class models, or a local
server (vLLM, llama.cpp, ...) that speaks the same API, so they can sit on the leaderboard next to MiniGPT-4.

Each request becomes one chat completion: an optional system message, then a user message holding the image
(a base64 PNG or JPEG data URL) and the prompt text. Requests of a batch run concurrently on a thread pool,
at most `max_concurrency` at a time; the runner hands over one batch at a time, so raise `--batch-size` too
to keep more requests in flight.

Options (from a config file or `--model-option <name>.KEY=VALUE`):
  model             the endpoint's model name (required), e.g. "gpt-4o"
  base_url          the endpoint, e.g. "http://localhost:8000/v1"; default: $OPENAI_BASE_URL, else OpenAI's
  api_key_env       the NAME of the environment variable holding the key (default OPENAI_API_KEY). The key
                    itself is never an option, so it cannot land in a stored config or a command line.
                    A local server that wants no key still needs the variable set (to anything).
  max_concurrency   requests in flight at once within a batch (default 4)
  timeout_s         seconds before one HTTP attempt is abandoned (default 120)
  max_retries       the openai client's own retries, with exponential backoff that honours Retry-After, of
                    429s, 5xx, 408/409, timeouts and connection errors (default 5)
  system_prompt     an optional system message
  image_detail      "auto" (default), "low" or "high"
  image_format      "png" (default, lossless) or "jpeg" (smaller uploads)
  temperature       the temperature of greedy requests (default 0: the API has no strict greedy mode, 0 is
                    the closest); None sends none, for models that only accept their default
  max_tokens_param  "max_tokens" (default) or "max_completion_tokens", which newer OpenAI models require

Failures: a request that still fails after the client's retries becomes Response(error=...) for that sample
only. A rejected key (HTTP 401) is a configuration problem, not a sample's: it raises OpenAIAuthError naming
the environment variable, and every later call raises it again without contacting the endpoint.

`score_choices` is not available: chat-completions APIs do not return the log-likelihood of a given
continuation, so multiple-choice tasks scored by likelihood cannot be run against them.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
from PIL.Image import Image

from harness.config import ConfigError
from harness.types import Request, Response

IMAGE_DETAILS = ("auto", "low", "high")
IMAGE_FORMATS = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg")}
MAX_TOKENS_PARAMS = ("max_tokens", "max_completion_tokens")
JPEG_QUALITY = 95
KEY_LIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-*.]+)")  # a (partly masked) key some servers quote back in a 401


class OpenAIAuthError(ConfigError):
    """The endpoint rejected the API key (HTTP 401): a configuration problem, never a per-sample one."""


class OpenAIVisionAdapter:
    version = "1"  # bump when the requests it sends change in a way that could change outputs

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        max_concurrency: int = 4,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        system_prompt: str | None = None,
        image_detail: str = "auto",
        image_format: str = "png",
        temperature: float | None = 0.0,
        max_tokens_param: str = "max_tokens",
    ):
        if not isinstance(model, str) or not model:
            raise ConfigError("openai-vision: option 'model' must name the endpoint's model, e.g. model=gpt-4o")
        if image_detail not in IMAGE_DETAILS:
            raise ConfigError(f"openai-vision: image_detail must be one of {IMAGE_DETAILS}, got {image_detail!r}")
        if image_format not in IMAGE_FORMATS:
            raise ConfigError(f"openai-vision: image_format must be one of {tuple(IMAGE_FORMATS)}, "
                              f"got {image_format!r}")
        if max_tokens_param not in MAX_TOKENS_PARAMS:
            raise ConfigError(f"openai-vision: max_tokens_param must be one of {MAX_TOKENS_PARAMS}, "
                              f"got {max_tokens_param!r}")
        self.model = model
        self.api_key_env = api_key_env
        self.max_concurrency = int(max_concurrency)
        if self.max_concurrency < 1:
            raise ConfigError(f"openai-vision: max_concurrency must be >= 1, got {max_concurrency}")
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.system_prompt = system_prompt or None
        self.image_detail = image_detail
        self.image_format = image_format
        self.temperature = None if temperature is None else float(temperature)
        self.max_tokens_param = max_tokens_param

        # Read the key now, so a missing one stops the run before any work, with a message that says where
        # it was looked for. It lives only inside the client, never in an attribute that could be stored.
        key = os.environ.get(api_key_env)
        if not key:
            raise ConfigError(
                f"openai-vision: environment variable {api_key_env} is not set; put the API key there "
                f"(option api_key_env names the variable; the key itself is never an option)"
            )
        self._client = openai.OpenAI(api_key=key, base_url=base_url, timeout=self.timeout_s,
                                     max_retries=self.max_retries)
        # Resolved by the client (an explicit base_url, else $OPENAI_BASE_URL, else OpenAI's): the endpoint
        # actually asked, so two endpoints serving the same model name never share a fingerprint.
        self.base_url = str(self._client.base_url).rstrip("/")
        self._auth_error: str | None = None  # set by the first 401; later calls fail without a request

    def fingerprint(self) -> str:
        # What can change outputs; not the key, nor concurrency, timeouts or retries (they change only how
        # the same answers are fetched).
        config = {"class": type(self).__name__, "version": self.version, "model": self.model,
                  "base_url": self.base_url, "system_prompt": self.system_prompt,
                  "image_detail": self.image_detail, "image_format": self.image_format,
                  "temperature": self.temperature}
        return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:32]

    def close(self) -> None:
        """Close the client's connection pool."""
        self._client.close()

    # ----- the protocol --------------------------------------------------------------------------------
    def generate(self, requests: Sequence[Request], images: Sequence[Image | None]) -> list[Response]:
        if len(requests) != len(images):
            raise ValueError(f"{len(requests)} requests but {len(images)} images")
        self._raise_if_auth_failed()
        workers = min(self.max_concurrency, len(requests))
        if workers <= 1:
            return [self._complete(req, img) for req, img in zip(requests, images, strict=True)]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai-vision") as pool:
            futures = [pool.submit(self._complete, req, img) for req, img in zip(requests, images, strict=True)]
            # In request order, whatever order they finish in. An auth error re-raises here; the pool's
            # exit still waits for requests already in flight, and queued ones fail fast (see _complete).
            return [f.result() for f in futures]

    def score_choices(self, requests: Sequence[Request], images: Sequence[Image | None]) -> list[Response]:
        raise NotImplementedError(
            f"openai-vision ({self.model}): chat-completions APIs do not return the log-likelihood of a given "
            "continuation, so choices cannot be scored; run the generation form of the task instead"
        )

    # ----- internals -------------------------------------------------------------------------------------
    def _complete(self, request: Request, image: Image | None) -> Response:
        """One chat completion; any failure after the client's retries is this sample's error."""
        self._raise_if_auth_failed()
        start = time.perf_counter()
        try:
            completion = self._client.chat.completions.create(**self._create_args(request, image))
        except openai.AuthenticationError as exc:
            self._auth_error = self._scrub(
                f"openai-vision: {self.base_url} rejected the API key (HTTP 401) read from environment variable "
                f"{self.api_key_env}; check that {self.api_key_env} holds a valid key for this endpoint "
                f"(server said: {exc.message})"
            )
            raise OpenAIAuthError(self._auth_error) from exc
        except Exception as exc:  # caught here, not in the runner, so finished requests are never re-sent
            return Response(error=self._describe(exc), latency_s=time.perf_counter() - start)
        latency = time.perf_counter() - start
        if not completion.choices:
            return Response(error="the endpoint returned no choices", latency_s=latency)
        usage = completion.usage
        return Response(
            text=completion.choices[0].message.content or "",  # None on a refusal: an (empty) answer
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            latency_s=latency,
        )

    def _create_args(self, request: Request, image: Image | None) -> dict[str, Any]:
        settings = request.settings
        if settings.num_beams != 1:  # answering greedily instead would store outputs under the wrong settings
            raise ValueError(f"num_beams={settings.num_beams}: chat-completions APIs have no beam search")
        messages: list[dict[str, Any]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        if image is None:  # text only: a plain string, which every compatible server accepts
            messages.append({"role": "user", "content": request.prompt})
        else:
            messages.append({"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": self._data_url(image), "detail": self.image_detail}},
                {"type": "text", "text": request.prompt},
            ]})
        args: dict[str, Any] = {"model": self.model, "messages": messages,
                                self.max_tokens_param: settings.max_new_tokens}
        if settings.do_sample:
            args["temperature"] = settings.temperature
            args["top_p"] = settings.top_p
        elif self.temperature is not None:
            args["temperature"] = self.temperature
        if settings.stop:
            args["stop"] = list(settings.stop)
        return args

    def _data_url(self, image: Image) -> str:
        pil_format, media_type = IMAGE_FORMATS[self.image_format]
        if image.mode not in (("RGB", "L") if pil_format == "JPEG" else ("RGB", "RGBA", "L", "LA")):
            image = image.convert("RGB")
        buffer = io.BytesIO()
        if pil_format == "JPEG":
            image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
        else:
            image.save(buffer, format="PNG")
        return f"data:{media_type};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"

    def _describe(self, exc: Exception) -> str:
        message = f"{type(exc).__name__}: {exc}"
        retried = isinstance(exc, openai.APIConnectionError) or (  # APITimeoutError is one of these
            isinstance(exc, openai.APIStatusError) and (exc.status_code in (408, 409, 429) or exc.status_code >= 500)
        )
        if retried:
            message += f" (max_retries={self.max_retries})"
        return self._scrub(message)

    def _scrub(self, text: str) -> str:
        """Error messages go into the store: never let (part of) a key in."""
        key = self._client.api_key
        if key:
            text = text.replace(key, "***")
        return KEY_LIKE.sub("sk-***", text)

    def _raise_if_auth_failed(self) -> None:
        if self._auth_error is not None:
            raise OpenAIAuthError(self._auth_error)
