"""Judges: one interface (`Judge`), one cache (the store's `judgments` table), several judges.

    from harness.judges import Budget, JudgeRequest, coverage_prompt, make_judge, run_judge
    judge = make_judge("openai", model="gpt-3.5-turbo")          # or "rule", or "replay" with path=...
    report = run_judge(judge, store, [JudgeRequest(coverage_prompt(gt, caption), gen_key)], run_id, Budget(500))

- base.py: JudgeRequest, Verdict, the Judge ABC and the yes/no parsing rule
- runner.py: run_judge (cache first, bounded concurrency, budget, one transaction per verdict) and its report
- cache.py: the judgments-table SQL and the cache key
- prompts.py: the paper's prompts, word for word
- openai_judge.py / rule_judge.py / replay_judge.py: the judges (imported only when chosen)
"""

from __future__ import annotations

import importlib
from typing import Any

from harness.judges.base import (
    ERROR,
    KIND_TEXT,
    KIND_YES_NO,
    NO,
    NOT_JUDGED,
    TEXT,
    UNPARSEABLE,
    YES,
    Judge,
    JudgeAuthError,
    JudgeRequest,
    Verdict,
    parse_yes_no,
)
from harness.judges.cache import judgment_key
from harness.judges.prompts import coverage_prompt, fixup_prompt
from harness.judges.runner import Budget, JudgeReport, cached_verdicts, run_judge, score_context_judge

# Judge kinds by name, as "module:Class", imported only when chosen (the openai judge imports `openai`).
JUDGES = {
    "openai": "harness.judges.openai_judge:OpenAIJudge",
    "rule": "harness.judges.rule_judge:RuleJudge",
    "replay": "harness.judges.replay_judge:ReplayJudge",
}


def make_judge(kind: str, **options: Any) -> Judge:
    """A judge of a registered kind, built with `options` (e.g. model=..., or path=... for replay)."""
    if kind not in JUDGES:
        raise ValueError(f"unknown judge {kind!r}; known judges: {', '.join(sorted(JUDGES))}")
    module, _, cls = JUDGES[kind].partition(":")
    return getattr(importlib.import_module(module), cls)(**options)


__all__ = [
    "ERROR", "JUDGES", "KIND_TEXT", "KIND_YES_NO", "NO", "NOT_JUDGED", "TEXT", "UNPARSEABLE", "YES", "Budget",
    "Judge", "JudgeAuthError", "JudgeReport", "JudgeRequest", "Verdict", "cached_verdicts", "coverage_prompt",
    "fixup_prompt", "judgment_key", "make_judge", "parse_yes_no", "run_judge", "score_context_judge",
]
