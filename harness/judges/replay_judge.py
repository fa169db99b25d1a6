"""A judge that answers from a file of recorded verdicts (e.g. answers obtained elsewhere from ChatGPT).

The file is JSON Lines, one object per prompt:

    {"prompt": "<the exact prompt text>", "verdict": "yes", "raw_text": "Yes."}
    {"prompt_sha256": "<hex SHA-256 of the prompt's UTF-8 text>", "raw_text": "No"}

`prompt` or `prompt_sha256` names the prompt; at least one of `verdict` and `raw_text` must be there. Without a
`verdict`, `raw_text` is parsed like any judge's answer (harness.judges.base); with one, the verdict is taken as
recorded ("yes", "no", "text" or "unparseable"). Optional `prompt_tokens`/`completion_tokens` are passed on.
A prompt the file lacks gets an "error" verdict saying so (errors are not cached: a rerun with a completed file
answers it). Blank lines are skipped; a malformed line, or two lines disagreeing about one prompt, is an error
naming the line. The judge's version carries the file's SHA-256, so editing the file re-judges from it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from harness.judges.base import (
    ERROR,
    KIND_YES_NO,
    NO,
    TEXT,
    UNPARSEABLE,
    YES,
    Judge,
    JudgeRequest,
    Verdict,
    parse_yes_no,
    verdict_from_answer,
)
from harness.judges.prompts import prompt_sha256

ANSWERS = {KIND_YES_NO: (YES, NO, UNPARSEABLE), "text": (TEXT, UNPARSEABLE)}


class ReplayJudge(Judge):
    def __init__(self, path: str | Path, name: str = "replay-judge", label: str | None = None,
                 is_proxy: bool = False):
        self.path = Path(path)
        data = self.path.read_bytes()
        self.name = name
        self.version = f"1/file-sha256={hashlib.sha256(data).hexdigest()[:16]}"
        self.label = label or f"replayed verdicts from {self.path.name}"
        self.is_proxy = is_proxy
        self._entries: dict[str, dict[str, Any]] = {}
        for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
            if line.strip():
                self._add(self._parse_line(line, number), number)

    def __len__(self) -> int:
        return len(self._entries)

    def judge_one(self, request: JudgeRequest) -> Verdict:
        digest = prompt_sha256(request.prompt)
        entry = self._entries.get(digest)
        if entry is None:
            return Verdict(ERROR, error=f"replay file {self.path.name} has no verdict for this prompt "
                                        f"(prompt_sha256 {digest}): {request.prompt[:80]!r}")
        tokens = {"prompt_tokens": int(entry.get("prompt_tokens") or 0),
                  "completion_tokens": int(entry.get("completion_tokens") or 0)}
        raw_text = entry.get("raw_text")
        if entry.get("verdict") is None:
            return verdict_from_answer(request.kind, raw_text, **tokens)
        verdict = entry["verdict"]
        if verdict not in ANSWERS[request.kind]:
            return Verdict(ERROR, error=f"replay file {self.path.name}: verdict {verdict!r} does not answer a "
                                        f"{request.kind} request (prompt_sha256 {digest})")
        verbose = verdict in (YES, NO) and raw_text is not None and parse_yes_no(raw_text)[1]
        return Verdict(verdict, raw_text=raw_text, verbose=verbose, **tokens)

    def _parse_line(self, line: str, number: int) -> dict[str, Any]:
        where = f"{self.path}:{number}"
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{where}: not a JSON object: {exc}") from None
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: each line must be a JSON object")
        if isinstance(entry.get("prompt"), str):
            digest = prompt_sha256(entry["prompt"])
            if entry.get("prompt_sha256") not in (None, digest):
                raise ValueError(f"{where}: prompt_sha256 does not match the prompt's text")
            entry["prompt_sha256"] = digest
        if not isinstance(entry.get("prompt_sha256"), str) or len(entry["prompt_sha256"]) != 64:
            raise ValueError(f"{where}: needs 'prompt' (text) or 'prompt_sha256' (64 hex digits)")
        entry["prompt_sha256"] = entry["prompt_sha256"].lower()
        if entry.get("verdict") is None and not isinstance(entry.get("raw_text"), str):
            raise ValueError(f"{where}: needs 'verdict' or 'raw_text'")
        if entry.get("verdict") not in (None, YES, NO, TEXT, UNPARSEABLE):
            raise ValueError(f"{where}: verdict must be one of yes, no, text, unparseable; got {entry['verdict']!r}")
        return entry

    def _add(self, entry: dict[str, Any], number: int) -> None:
        digest = entry["prompt_sha256"]
        answer = (entry.get("verdict"), entry.get("raw_text"))
        previous = self._entries.setdefault(digest, entry)
        if (previous.get("verdict"), previous.get("raw_text")) != answer:
            raise ValueError(f"{self.path}:{number}: a second, different answer for a prompt already in the file")
