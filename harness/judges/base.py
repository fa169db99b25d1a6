"""The judge interface shared by every judge (ChatGPT-style API, offline rules, replayed verdicts).

A judge answers `JudgeRequest`s (an exact prompt text, the generation it is about, and the kind of answer
wanted) with `Verdict`s. The verdict states are:

  "yes" / "no"     a yes/no answer, parsed by `parse_yes_no` (the rule is below)
  "text"           a free-text answer (kind "text", e.g. the paper's fix-up prompt): the text is `raw_text`
  "unparseable"    the judge answered, but not in the form asked for (e.g. "Maybe", or nothing at all).
                   Counted on its own; never read as "no"
  "error"          no answer: the request failed (after retries); `error` says why. Not cached: a rerun asks again
  "not_judged"     never asked, because the run's budget ran out. Only in a run's per-request list, never stored

The yes/no parsing rule (`PARSE_RULE`, part of every API judge's version so a change re-judges):
  1. Drop markdown marks (* `), trim whitespace and quotes around the answer; ignore case.
  2. The whole answer is "yes" or "no", optionally followed by one "." or "!": that verdict ("Yes", "no.", "**No**").
  3. Otherwise, when the answer STARTS with "yes" or "no" immediately followed by one of , . ; : ! or by a
     newline or a dash ("Yes, caption2 covers...", "No. It misses the dog", "Yes - because"): that verdict,
     flagged `verbose` (the paper asked for no explanation; the report counts these apart).
  4. Anything else is "unparseable": "Maybe", "", "Yes and no", "Yes/No", "Yes because...", "Answer: yes",
     "Yeah", "I think yes". A verbose answer must open with a clear, punctuated yes or no to be read at all.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from harness.config import ConfigError

YES, NO, TEXT, UNPARSEABLE, ERROR, NOT_JUDGED = "yes", "no", "text", "unparseable", "error", "not_judged"
STORED_VERDICTS = (YES, NO, TEXT, UNPARSEABLE, ERROR)  # what a judgments row may hold
KIND_YES_NO, KIND_TEXT = "yes_no", "text"
KINDS = (KIND_YES_NO, KIND_TEXT)
PARSE_RULE = "yn1"  # bump when parse_yes_no changes what it accepts

_MARKDOWN = re.compile(r"[*`]")  # "**Yes**", "`no`"
_QUOTES = " \t\r\n\"'\u201c\u201d\u2018\u2019"
_EXACT = re.compile(r"(yes|no)[.!]?")
_LEADING = re.compile(r"(yes|no)(?=[,.;:!]|\s*\n|\s+-|\s*[\u2013\u2014])")


class JudgeAuthError(ConfigError):
    """The judge's endpoint rejected its credentials: a configuration problem that stops the run."""


@dataclass(frozen=True)
class JudgeRequest:
    """One question for a judge. `prompt` is the exact text sent (and the cache key); `generation_key` ties the
    verdict to the stored generation it judges (or None); `kind` is "yes_no" or "text"."""

    prompt: str
    generation_key: str | None = None
    kind: str = KIND_YES_NO

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise ValueError("a judge prompt must be a non-empty string")
        if self.kind not in KINDS:
            raise ValueError(f"judge request kind must be one of {KINDS}, got {self.kind!r}")


@dataclass(frozen=True)
class Verdict:
    """A judge's answer to one request; `raw_text` is what the judge said, word for word."""

    verdict: str
    raw_text: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    error: str | None = None
    verbose: bool = False  # a yes/no read from the start of a longer answer (rule 3)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def parse_yes_no(text: str | None) -> tuple[str, bool]:
    """(verdict, verbose) for a yes/no answer under the rule in the module docstring."""
    answer = _MARKDOWN.sub("", text or "").strip(_QUOTES).lower()
    if _EXACT.fullmatch(answer):
        return answer.rstrip(".!"), False
    match = _LEADING.match(answer)
    if match:
        return match.group(1), True
    return UNPARSEABLE, False


def verdict_from_answer(kind: str, text: str | None, *, prompt_tokens: int = 0, completion_tokens: int = 0) -> Verdict:
    """The verdict for a judge's raw answer of the given kind (an empty text answer is unparseable)."""
    if kind == KIND_YES_NO:
        verdict, verbose = parse_yes_no(text)
    else:
        verdict, verbose = (TEXT if (text or "").strip() else UNPARSEABLE), False
    return Verdict(verdict, raw_text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                   verbose=verbose)


class Judge(ABC):
    """A judge: `name` and `version` identify its answers in the cache (with the exact prompt text), so anything
    that can change an answer (the model, decoding settings, the parse rule) belongs in one of them.

    Subclasses implement `judge_one`, which must return a Verdict (state "error" for a failed request) and raise
    only for problems that concern every request (e.g. JudgeAuthError). `max_concurrency` is how many
    `judge_one` calls may run at once (on threads); `label` says what the judge is wherever its verdicts are
    shown, and `is_proxy` marks a stand-in for the paper's judge.
    """

    name: str
    version: str
    label: str = ""
    is_proxy: bool = False
    max_concurrency: int = 1

    @abstractmethod
    def judge_one(self, request: JudgeRequest) -> Verdict:
        """The verdict for one request (no cache: see harness.judges.run_judge for the cached path)."""

    def judge(self, requests: Sequence[JudgeRequest]) -> list[Verdict]:
        """Verdicts in request order, at most `max_concurrency` requests at a time; no cache, no budget."""
        workers = max(1, min(self.max_concurrency, len(requests)))
        if workers == 1:
            return [self.judge_one(r) for r in requests]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"judge-{self.name}") as pool:
            return list(pool.map(self.judge_one, requests))

    def close(self) -> None:  # noqa: B027 (optional hook: most judges hold nothing to release)
        """Release connections and files (nothing by default)."""

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, version={self.version!r})"
