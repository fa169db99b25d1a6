"""Results of a campaign: per item the majority verdict, per model and task k/n with a Wilson interval,
agreement between raters, and agreement between the LLM judge proxy and people.

`human_metric` is what fills the human-rated tables' `request_met_human` (Table 1: share of items whose
majority says the output meets the request) and `failure_rate_human` (Table 3: share whose majority says it
does not, i.e. a failure). Items whose raters tie are left out of n and counted in the details; gold items
never count.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from harness.judges.prompts import failure_prompt, parse_failure_prompt, parse_request_met_prompt, request_met_prompt
from harness.metrics import MetricValue, proportion
from harness.store import Store
from human_eval.agreement import BOOTSTRAP, fleiss, judge_vs_people, kripp_alpha, majority
from human_eval.campaign import FAILURE_KINDS, NO, VERDICTS, YES, campaign_info, is_failure_task

AWAITING = "awaiting human ratings (mgbench rate)"


@dataclass
class Item:
    generation_key: str
    model: str
    task: str
    prompt: str
    text: str
    labels: list[str]  # one verdict per rater
    kinds: list[str | None]  # each rating's failure kind (None unless a "no" on a failure task)

    @property
    def majority(self) -> str | None:
        return majority(self.labels)

    @property
    def detailed(self) -> list[str]:
        """Verdict and failure kind in one label ("yes", "no:repetition", ...), for failure tasks."""
        return [YES if v == YES else f"{NO}:{k}" for v, k in zip(self.labels, self.kinds, strict=True)]

    @property
    def failure_kind(self) -> str | None:
        """The majority failure kind among the raters who said "no"."""
        return majority([k for v, k in zip(self.labels, self.kinds, strict=True) if v == NO and k])


def metric_name(task: str) -> str:
    return "failure_rate_human" if is_failure_task(task) else "request_met_human"


def load_items(conn: sqlite3.Connection, campaign: str) -> list[Item]:
    """The campaign's non-gold items with their ratings, in generation-key order."""
    rows = conn.execute(
        """
        SELECT i.generation_key, g.model, i.task, g.request_json, g.text, r.verdict, r.failure_kind
        FROM rating_items i JOIN generations g ON g.key = i.generation_key
        LEFT JOIN ratings r ON r.campaign = i.campaign AND r.generation_key = i.generation_key
        WHERE i.campaign = ? AND i.gold_verdict IS NULL ORDER BY i.generation_key, r.rater
        """, (campaign,))
    items: dict[str, Item] = {}
    for r in rows:
        item = items.get(r["generation_key"])
        if item is None:
            prompt = json.loads(r["request_json"]).get("prompt", "")
            item = items[r["generation_key"]] = Item(r["generation_key"], r["model"], r["task"], prompt, r["text"],
                                                     [], [])
        if r["verdict"] is not None:
            item.labels.append(r["verdict"])
            item.kinds.append(r["failure_kind"])
    return list(items.values())


def _metric(task: str, items: list[Item], campaign: str, per_item: int) -> MetricValue:
    name = metric_name(task)
    failure = is_failure_task(task)
    rated = [i for i in items if i.labels]
    decided = [i for i in rated if i.majority is not None]
    success = NO if failure else YES
    details: dict[str, Any] = {
        "campaign": campaign, "source": "people (majority verdict per item)", "items": len(items),
        "unrated": len(items) - len(rated), "ties": len(rated) - len(decided),
        "incomplete": sum(0 < len(i.labels) < per_item for i in items), "raters_per_item": per_item,
    }
    if failure:
        details["failure_kinds"] = dict(Counter(i.failure_kind or "tie" for i in decided if i.majority == NO))
    if not decided:
        details["status"] = AWAITING
    return proportion(name, sum(i.majority == success for i in decided), len(decided),
                      higher_is_better=not failure, **details)


def human_metric(store: Store, model: str, task: str, campaign: str | None = None) -> MetricValue:
    """`request_met_human` / `failure_rate_human` for one model and task from the named campaign (default:
    the most recent campaign with items for this model and task); value None while nobody has rated."""
    conn = store.conn
    if campaign is None:
        row = conn.execute(
            "SELECT c.campaign FROM rating_campaigns c JOIN rating_items i ON i.campaign = c.campaign "
            "JOIN generations g ON g.key = i.generation_key WHERE g.model=? AND i.task=? AND i.gold_verdict IS NULL "
            "ORDER BY c.created_at DESC LIMIT 1", (model, task)).fetchone()
        if row is None:
            return MetricValue(metric_name(task), None, 0, higher_is_better=not is_failure_task(task),
                               details={"status": AWAITING})
        campaign = row[0]
    per_item = campaign_info(conn, campaign)["raters_per_item"]
    items = [i for i in load_items(conn, campaign) if i.model == model and i.task == task]
    return _metric(task, items, campaign, per_item)


def judge_verdicts(conn: sqlite3.Connection, items: list[Item]) -> dict[str, dict[str, str]]:
    """judge (name@version) -> generation key -> the judge's answer to the people's question (yes/no).

    A judgment belongs to an item when it is linked by generation_key or asks the exact proxy prompt for the
    item's output (the judgment cache is keyed by prompt, so identical outputs share one row). For the failure
    tasks the judge answers "is this a failure?", so its "yes" is the people's "no"."""
    out: dict[str, dict[str, str]] = defaultdict(dict)
    for item in items:
        failure = is_failure_task(item.task)
        proxy = (failure_prompt if failure else request_met_prompt)(item.prompt, item.text)
        parse = parse_failure_prompt if failure else parse_request_met_prompt
        rows = conn.execute("SELECT judge, judge_version, prompt, verdict FROM judgments WHERE "
                            "(generation_key = ? OR prompt = ?) AND verdict IN ('yes', 'no') ORDER BY created_at",
                            (item.generation_key, proxy))
        for r in rows:
            if parse(r["prompt"]) is None:
                continue  # another kind of judgment of this generation (e.g. coverage)
            answer = r["verdict"] if not failure else (NO if r["verdict"] == YES else YES)
            out[f"{r['judge']}@{r['judge_version']}"].setdefault(item.generation_key, answer)
    return dict(out)


def campaign_results(store: Store, campaign: str, *, resamples: int = BOOTSTRAP, seed: int = 0) -> dict[str, Any]:
    """Everything `mgbench rate results` reports, as JSON-able data."""
    conn = store.conn
    per_item = campaign_info(conn, campaign)["raters_per_item"]
    items = load_items(conn, campaign)
    by_task: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_task[item.task].append(item)
    models, agreement, judges = [], [], []
    for task, task_items in sorted(by_task.items()):
        for model in sorted({i.model for i in task_items}):
            m = _metric(task, [i for i in task_items if i.model == model], campaign, per_item)
            models.append({"task": task, "model": model, "metric": m.name, "k": m.details.get("k", 0), "n": m.n,
                           "value": m.value, "ci_low": m.ci_low, "ci_high": m.ci_high, "details": m.details})
        label_sets = [("verdict", [i.labels for i in task_items], VERDICTS)]
        if is_failure_task(task):
            label_sets.append(("verdict+kind", [i.detailed for i in task_items],
                               (YES, *(f"{NO}:{k}" for k in FAILURE_KINDS))))
        for labels_name, units, categories in label_sets:
            for stat in (fleiss, kripp_alpha):
                a = stat(units, categories, resamples=resamples, seed=seed)
                agreement.append({"task": task, "labels": labels_name, **a.as_dict()})
        decided = {i.generation_key: i.majority for i in task_items if i.majority is not None}
        for judge, verdicts in sorted(judge_verdicts(conn, task_items).items()):
            pairs = [(decided[k], v) for k, v in sorted(verdicts.items()) if k in decided]
            judges.append({"task": task, "judge": judge, **judge_vs_people(pairs)})
    return {"campaign": campaign, "raters_per_item": per_item, "items": len(items), "per_model": models,
            "agreement": agreement, "judge_vs_people": judges}
