"""The paper's judge prompts, word for word, and the functions that fill and read them.

- `COVERAGE_TEMPLATE`: Table 2 (Sec. 5). ChatGPT gets one ground-truth caption (caption1) and the model's
  caption (caption2) and answers yes or no. Captions are inserted as given, only stripped of surrounding
  whitespace; the quotes around them are the paper's.
- `FIXUP_INSTRUCTION`: the Sec. 3.2 post-editing prompt for the stage-2 data. The paper does not say how the
  paragraph is attached; we send the instruction, a blank line, then the paragraph (`FIXUP_SEPARATOR`).

The exact filled text is what judges see and what the judgment cache keys on, so changing a template here
changes every cache key built from it (old verdicts stay in the store under their old prompts).
"""

from __future__ import annotations

import hashlib
import re

COVERAGE_TEMPLATE = (
    "There is one image caption1 '{caption1}', and there is another image caption2 '{caption2}'. "
    "Does image caption2 cover all the objects and visual relations shown in image caption1? "
    "Only answer yes or no without any explanation."
)
FIXUP_INSTRUCTION = (
    "Fix the error in the given paragraph. Remove any repeating sentences, meanless characters, not English "
    "sentences, and so on. Remove unnecessary repetition. Rewrite any incomplete sentences. Return directly the "
    "results without explanation. Return directly the input paragraph if it is already correct without "
    "explanation."
)
FIXUP_SEPARATOR = "\n\n"

_HEAD, _MIDDLE, _TAIL = (re.escape(part) for part in re.split(r"\{caption[12]\}", COVERAGE_TEMPLATE))
_COVERAGE = re.compile(f"{_HEAD}(.*?){_MIDDLE}(.*){_TAIL}", re.DOTALL)


def coverage_prompt(ground_truth: str, candidate: str) -> str:
    """Table 2's prompt: does `candidate` (caption2) cover the objects and relations of `ground_truth` (caption1)?"""
    return COVERAGE_TEMPLATE.format(caption1=ground_truth.strip(), caption2=candidate.strip())


def parse_coverage_prompt(prompt: str) -> tuple[str, str] | None:
    """(caption1, caption2) of a filled coverage prompt, or None if `prompt` is not one."""
    match = _COVERAGE.fullmatch(prompt)
    return (match.group(1), match.group(2)) if match else None


def fixup_prompt(paragraph: str) -> str:
    """Sec. 3.2's post-editing prompt for one generated description."""
    return FIXUP_INSTRUCTION + FIXUP_SEPARATOR + paragraph.strip()


def parse_fixup_prompt(prompt: str) -> str | None:
    """The paragraph of a filled fix-up prompt, or None if `prompt` is not one."""
    head = FIXUP_INSTRUCTION + FIXUP_SEPARATOR
    return prompt[len(head):] if prompt.startswith(head) else None


# Our own proxy prompts for the human-rated tables (the paper counted these by hand); never the paper's.
REQUEST_MET_TEMPLATE = (
    "A model was shown an image and asked: '{request}'. Its answer was: '{answer}'. "
    "Does the answer meet the request? Only answer yes or no without any explanation."
)
FAILURE_TEMPLATE = (
    "A model was shown an image and asked: '{request}'. Its answer was: '{answer}'. "
    "Is this answer a failure, for example empty, repetitive, incoherent, not English, an apology instead of an "
    "answer, or ignoring the request? Only answer yes or no without any explanation."
)


def _reader(template: str) -> re.Pattern[str]:
    head, middle, tail = (re.escape(part) for part in re.split(r"\{request\}|\{answer\}", template))
    return re.compile(f"{head}(.*?){middle}(.*){tail}", re.DOTALL)


_REQUEST_MET, _FAILURE = _reader(REQUEST_MET_TEMPLATE), _reader(FAILURE_TEMPLATE)


def request_met_prompt(request: str, answer: str) -> str:
    return REQUEST_MET_TEMPLATE.format(request=request.strip(), answer=answer.strip())


def failure_prompt(request: str, answer: str) -> str:
    return FAILURE_TEMPLATE.format(request=request.strip(), answer=answer.strip())


def parse_request_met_prompt(prompt: str) -> tuple[str, str] | None:
    match = _REQUEST_MET.fullmatch(prompt)
    return (match.group(1), match.group(2)) if match else None


def parse_failure_prompt(prompt: str) -> tuple[str, str] | None:
    match = _FAILURE.fullmatch(prompt)
    return (match.group(1), match.group(2)) if match else None


def prompt_sha256(prompt: str) -> str:
    """The hex SHA-256 of a prompt's UTF-8 text (how a replay file may name a prompt without quoting it)."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()
