"""The paper's Tables 1-6: which task metrics fill each, which rows (roles) it has, and the paper's numbers.

The numbers come from each task spec's `paper.numbers` block where it has one; the human-rated Tables 1 and 3
have no numbers in their specs (their specs name only the table), so `FALLBACK_NUMBERS` holds them, copied
from the paper (shared/paper.md section 5). A paper number is stored as a fraction (0.582), with k and n
where the paper gives counts, so it sits beside this run's value on the same scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reports.roles import ROLE_KEYS

TABLE1_TASKS = ("advanced_meme", "advanced_recipe", "advanced_ad", "advanced_poem")
TABLE3_TASKS = ("failure_caption", "failure_poem")

# Table 1 (k of 25 per task) and Table 3 (percent of 100 images), keyed like the specs' numbers.
FALLBACK_NUMBERS: dict[str, dict[str, Any]] = {
    "advanced_meme": {"blip2": {"k": 0, "n": 25}, "minigpt4": {"k": 8, "n": 25}},
    "advanced_recipe": {"blip2": {"k": 4, "n": 25}, "minigpt4": {"k": 18, "n": 25}},
    "advanced_ad": {"blip2": {"k": 1, "n": 25}, "minigpt4": {"k": 19, "n": 25}},
    "advanced_poem": {"blip2": {"k": 0, "n": 25}, "minigpt4": {"k": 20, "n": 25}},
    "failure_caption": {"stage1": {"k": 35, "n": 100}, "minigpt4": {"k": 2, "n": 100}},
    "failure_poem": {"stage1": {"k": 32, "n": 100}, "minigpt4": {"k": 1, "n": 100}},
}
# Which field of a {field: value} paper entry a metric reads (Table 5's entries hold two numbers).
PAPER_FIELDS = {"CHAIRi": "chair_i", "length_words": "length"}
PERCENT_FIELDS = {"chair_i"}


@dataclass(frozen=True)
class Column:
    task: str
    metric: str
    label: str
    percent: bool = True  # shown x100 with a % sign
    paper: bool = True  # a paper column sits beside it
    human: bool = False  # the human-rated figure ("awaiting ratings" until ratings exist)
    rank: bool = True  # False for descriptive numbers (caption length), which are not better or worse


@dataclass(frozen=True)
class PaperTable:
    number: int
    title: str
    caption: str
    roles: tuple[str, ...]  # the paper's rows, in its order
    columns: tuple[Column, ...]
    total: bool = False  # Table 1: pooled totals over its tasks
    human: bool = False


def _human_rated(tasks: tuple[str, ...], labels: tuple[str, ...], proxy: str, human: str) -> tuple[Column, ...]:
    cols: list[Column] = []
    for task, label in zip(tasks, labels, strict=True):
        cols.append(Column(task, proxy, f"{label}: judge proxy", paper=False))
        cols.append(Column(task, human, f"{label}: human", human=True))
    return tuple(cols)


TABLES: tuple[PaperTable, ...] = (
    PaperTable(
        1, "Advanced tasks (human-rated)",
        "Does the output meet the request? 25 images per task, rated by people in the paper.",
        ("BLIP-2", "MiniGPT-4"),
        _human_rated(TABLE1_TASKS, ("meme", "recipe", "ad", "poem"), "request_met_judge_proxy", "request_met_human"),
        total=True, human=True,
    ),
    PaperTable(
        2, "COCO caption coverage (judged)",
        "Does the description cover all objects and relations of one ground-truth caption? ChatGPT-judged in "
        "the paper, 5,000 COCO images.",
        ("BLIP-2", "MiniGPT-4"),
        (Column("coco_coverage", "coverage", "coverage"),),
    ),
    PaperTable(
        3, "Failure rate before and after stage 2 (human-rated)",
        "Share of failed outputs on 100 random COCO test images, counted by people in the paper (lower is better).",
        ("stage-1 only", "MiniGPT-4"),
        _human_rated(TABLE3_TASKS, ("caption", "poem"), "failure_rate_judge_proxy", "failure_rate_human"),
        human=True,
    ),
    PaperTable(
        4, "Ablations (A-OKVQA / GQA accuracy)",
        "Architecture ablations. A-OKVQA multiple choice by generated answer mapped to a choice; GQA exact match. "
        "The log-likelihood-ranked A-OKVQA variant is shown apart (the paper reports no such number).",
        ("MiniGPT-4", "No Q-Former", "+ 3 layers", "+ finetune Q-Former"),
        (Column("aokvqa_mc", "mc_accuracy", "A-OKVQA"), Column("gqa_testdev", "accuracy", "GQA"),
         Column("aokvqa_mc_ll", "mc_accuracy", "A-OKVQA (log-lik.)", paper=False)),
    ),
    PaperTable(
        5, "Hallucination (CHAIRi) and caption length",
        "CHAIRi (share of object mentions not in the image; lower is better) and mean length in words, for the "
        "short and the long description prompt.",
        ("BLIP-2", "MiniGPT-4"),
        (Column("chair_short", "CHAIRi", "short: CHAIRi"),
         Column("chair_short", "length_words", "short: length (words)", percent=False, rank=False),
         Column("chair_long", "CHAIRi", "long: CHAIRi"),
         Column("chair_long", "length_words", "long: length (words)", percent=False, rank=False)),
    ),
    PaperTable(
        6, "Traditional VQA (A-OKVQA multiple choice / GQA)",
        "BLIP-2 (129M pairs), MiniGPT-4 (5M pairs) and MiniGPT-4 with Vicuna fine-tuned (LoRA).",
        ("BLIP-2", "MiniGPT-4", "Finetune Vicuna"),
        (Column("aokvqa_mc", "mc_accuracy", "A-OKVQA"), Column("gqa_testdev", "accuracy", "GQA")),
    ),
)


def table_tasks(table: PaperTable) -> list[str]:
    return sorted({c.task for c in table.columns})


def paper_numbers(task: str, spec_paper: dict[str, Any] | None) -> dict[str, Any]:
    """The paper's numbers for a task: its spec's `paper.numbers`, else the fallback copied from the paper."""
    numbers = (spec_paper or {}).get("numbers")
    return dict(numbers) if numbers else dict(FALLBACK_NUMBERS.get(task, {}))


def paper_value(numbers: dict[str, Any], role: str | None, task: str, metric: str) -> dict[str, Any] | None:
    """{"value": fraction or number, "k", "n"} of the paper for this role's row, or None if the paper has none.

    Entries are looked up as `<role key>_<prompt variant>` first (Table 5: "minigpt4_short"), then `<role key>`.
    """
    if role is None or role not in ROLE_KEYS:
        return None
    key = ROLE_KEYS[role]
    variant = task.rsplit("_", 1)[-1]
    entry = numbers.get(f"{key}_{variant}", numbers.get(key))
    if entry is None:
        return None
    if isinstance(entry, dict) and "k" in entry and "n" in entry:
        k, n = int(entry["k"]), int(entry["n"])
        return {"value": k / n, "k": k, "n": n}
    if isinstance(entry, dict):
        field = PAPER_FIELDS.get(metric.split("_fixed")[0])
        if field is None or field not in entry:
            return None
        raw = float(entry[field])
        return {"value": raw / 100 if field in PERCENT_FIELDS else raw, "k": None, "n": None}
    if metric in PAPER_FIELDS:  # a bare number only ever means a percentage accuracy
        return None
    return {"value": float(entry) / 100, "k": None, "n": None}
