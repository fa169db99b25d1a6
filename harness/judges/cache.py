"""The judgment cache: rows of the store's `judgments` table, keyed by (judge name, judge version, exact prompt).

The key never involves a sample index or a generation key: the same prompt asked of the same judge is one
judgment, whichever sample (or model) it came from. `generation_key` is recorded on the row (the first
generation that asked), for provenance only.

Each verdict is written in its own transaction as soon as it arrives, so a crash loses at most the requests in
flight. A stored answer ("yes", "no", "text", "unparseable") is never replaced; a stored "error" is, by the next
attempt's outcome. Until the schema has an `error` column, an error row keeps its (scrubbed) error message in
`raw_text`, since there was no answer to keep there.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from harness.judges.base import ERROR, KIND_YES_NO, NO, STORED_VERDICTS, YES, JudgeRequest, Verdict, parse_yes_no
from harness.store import Store, utc_now

_CHUNK = 500  # SQLite's default limit on host parameters is 999


def judgment_key(judge: str, judge_version: str, prompt: str) -> str:
    """The cache key of one judgment: SHA-256 of the judge's name, its version and the exact prompt text."""
    return hashlib.sha256(json.dumps([judge, judge_version, prompt]).encode("utf-8")).hexdigest()


def read_rows(store: Store, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The stored judgments rows (errors included) for these keys, by key."""
    keys = list(dict.fromkeys(keys))
    rows: dict[str, dict[str, Any]] = {}
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start:start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        for row in store.conn.execute(f"SELECT * FROM judgments WHERE key IN ({marks})", chunk):
            rows[row["key"]] = dict(row)
    return rows


def read_verdicts(store: Store, kinds: Mapping[str, str]) -> dict[str, Verdict]:
    """Cached verdicts (`cached=True`) for the keys of `kinds` (key -> request kind); errors are not answers."""
    found: dict[str, Verdict] = {}
    for key, row in read_rows(store, kinds).items():
        if row["verdict"] == ERROR:
            continue
        verbose = kinds[key] == KIND_YES_NO and row["verdict"] in (YES, NO) and parse_yes_no(row["raw_text"])[1]
        found[key] = Verdict(row["verdict"], raw_text=row["raw_text"], prompt_tokens=row["prompt_tokens"] or 0,
                             completion_tokens=row["completion_tokens"] or 0, cached=True, verbose=verbose)
    return found


def write_verdict(store: Store, key: str, judge: str, judge_version: str, request: JudgeRequest, verdict: Verdict,
                  run_id: str | None = None) -> bool:
    """Store one verdict in its own transaction; True if a row was written (new, or replacing an error)."""
    if verdict.verdict not in STORED_VERDICTS:
        raise ValueError(f"verdict {verdict.verdict!r} is not stored; stored states are {STORED_VERDICTS}")
    raw_text = verdict.error if verdict.verdict == ERROR else verdict.raw_text
    with store._transaction():
        before = store.conn.total_changes
        store.conn.execute(
            "INSERT INTO judgments (key, generation_key, judge, judge_version, prompt, raw_text, verdict, "
            "prompt_tokens, completion_tokens, run_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET generation_key=excluded.generation_key, raw_text=excluded.raw_text, "
            "verdict=excluded.verdict, prompt_tokens=excluded.prompt_tokens, "
            "completion_tokens=excluded.completion_tokens, run_id=excluded.run_id, created_at=excluded.created_at "
            "WHERE judgments.verdict = 'error'",
            (key, request.generation_key, judge, judge_version, request.prompt, raw_text, verdict.verdict,
             verdict.prompt_tokens, verdict.completion_tokens, run_id, utc_now()),
        )
        return store.conn.total_changes > before
