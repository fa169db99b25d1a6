"""A judge behind any OpenAI-compatible chat-completions endpoint: ChatGPT as in the paper, or a local server.

Each prompt is sent as one user message, at temperature 0 by default (the API has no strict greedy mode; 0 is
the closest), with `max_tokens` for yes/no questions (a short cap: the answer should be one word, and a longer
one is still read by its first word) and `text_max_tokens` for free-text ones (the fix-up prompt).

- The key is read from the environment variable NAMED by `api_key_env`, once, and lives only inside the
  client: it is never an attribute, never in the judge's name or version, and is scrubbed from every error
  message and answer text before either leaves this class (so neither the store nor a report nor a log gets it).
- Retries are the openai client's own: up to `max_retries` with exponential backoff that honours Retry-After,
  on 429, 408/409, 5xx, timeouts (`timeout_s` per attempt) and connection errors. A request that still fails
  becomes an "error" verdict for that prompt only.
- A rejected key (HTTP 401) concerns every request: `judge_one` raises JudgeAuthError naming the variable, and
  every later call raises it again without contacting the endpoint.
- The judge's identity in the cache is `name` = "openai:<model>" and `version`, which spells out what can change
  an answer (this class's version, the parse rule, temperature, the token caps); the endpoint URL, concurrency,
  timeouts and retries are not part of it: they change how an answer is fetched, not what it is.
"""

from __future__ import annotations

import os
import re
from typing import Any

import openai

from harness.config import ConfigError
from harness.judges.base import (
    ERROR,
    KIND_YES_NO,
    PARSE_RULE,
    Judge,
    JudgeAuthError,
    JudgeRequest,
    Verdict,
    verdict_from_answer,
)

MAX_TOKENS_PARAMS = ("max_tokens", "max_completion_tokens")
KEY_LIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-*.]+)")  # a (partly masked) key some servers quote back


class OpenAIJudge(Judge):
    impl_version = "1"  # bump when the requests sent change in a way that could change answers

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 max_concurrency: int = 8, timeout_s: float = 60.0, max_retries: int = 5,
                 temperature: float | None = 0.0, max_tokens: int = 16, text_max_tokens: int = 1024,
                 max_tokens_param: str = "max_tokens"):
        if not isinstance(model, str) or not model:
            raise ConfigError("openai judge: 'model' must name the endpoint's model, e.g. gpt-3.5-turbo")
        if max_tokens_param not in MAX_TOKENS_PARAMS:
            raise ConfigError(f"openai judge: max_tokens_param must be one of {MAX_TOKENS_PARAMS}, "
                              f"got {max_tokens_param!r}")
        if int(max_concurrency) < 1 or int(max_tokens) < 1 or int(text_max_tokens) < 1:
            raise ConfigError("openai judge: max_concurrency, max_tokens and text_max_tokens must be >= 1")
        self.model = model
        self.api_key_env = api_key_env
        self.max_concurrency = int(max_concurrency)
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.temperature = None if temperature is None else float(temperature)
        self.max_tokens = int(max_tokens)
        self.text_max_tokens = int(text_max_tokens)
        self.max_tokens_param = max_tokens_param
        self.name = f"openai:{model}"
        self.version = (f"{self.impl_version}/{PARSE_RULE}/temperature={self.temperature}/"
                        f"max_tokens={self.max_tokens},{self.text_max_tokens}")
        self.label = f"{model} (OpenAI-compatible API)"
        key = os.environ.get(api_key_env)
        if not key:
            raise ConfigError(f"openai judge: environment variable {api_key_env} is not set; put the API key there "
                              f"(option api_key_env names the variable; the key itself is never an option)")
        self._client = openai.OpenAI(api_key=key, base_url=base_url, timeout=self.timeout_s,
                                     max_retries=self.max_retries)
        self.base_url = str(self._client.base_url).rstrip("/")
        self._auth_error: str | None = None  # set by the first 401

    def close(self) -> None:
        self._client.close()

    def judge_one(self, request: JudgeRequest) -> Verdict:
        if self._auth_error is not None:
            raise JudgeAuthError(self._auth_error)
        try:
            completion = self._client.chat.completions.create(**self._create_args(request))
        except openai.AuthenticationError as exc:
            self._auth_error = self._scrub(
                f"openai judge: {self.base_url} rejected the API key (HTTP 401) read from environment variable "
                f"{self.api_key_env}; check that it holds a valid key for this endpoint (server said: {exc.message})"
            )
            raise JudgeAuthError(self._auth_error) from None  # no chained cause: its text is not scrubbed
        except Exception as exc:  # this prompt's failure only; caught here so finished prompts are never re-sent
            return Verdict(ERROR, error=self._describe(exc))
        if not completion.choices:
            return Verdict(ERROR, error="the endpoint returned no choices")
        usage = completion.usage
        text = self._scrub(completion.choices[0].message.content or "")  # None (e.g. a refusal): empty answer
        return verdict_from_answer(request.kind, text, prompt_tokens=usage.prompt_tokens if usage else 0,
                                   completion_tokens=usage.completion_tokens if usage else 0)

    def _create_args(self, request: JudgeRequest) -> dict[str, Any]:
        cap = self.max_tokens if request.kind == KIND_YES_NO else self.text_max_tokens
        args: dict[str, Any] = {"model": self.model, "messages": [{"role": "user", "content": request.prompt}],
                                self.max_tokens_param: cap}
        if self.temperature is not None:
            args["temperature"] = self.temperature
        return args

    def _describe(self, exc: Exception) -> str:
        message = f"{type(exc).__name__}: {exc}"
        retried = isinstance(exc, openai.APIConnectionError) or (  # APITimeoutError is one of these
            isinstance(exc, openai.APIStatusError) and (exc.status_code in (408, 409, 429) or exc.status_code >= 500)
        )
        if retried:
            message += f" (after max_retries={self.max_retries})"
        return self._scrub(message)

    def _scrub(self, text: str) -> str:
        """Text that leaves this class goes into the store and reports: never let (part of) a key in."""
        key = self._client.api_key
        if key:
            text = text.replace(key, "***")
        return KEY_LIKE.sub("sk-***", text)
