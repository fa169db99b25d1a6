"""Per-item outcomes, recomputed from the stored generations and judgments through the task classes.

The store keeps aggregate metrics only; paired tests need each item's outcome. For each task the report loads
the task (`TASKS.load(name)()`), rebuilds its requests from the data its run used (the run's `data_root` /
`cache_dir`), and scores every stored generation alone, the way the task's `score` counts it:

  binary  one success or not per item (accuracy, multiple choice, judged yes/no, CHAIRs): McNemar
  ratio   (numerator, denominator) per item, pooled as sum/sum (CHAIRi: hallucinated / all mentions)
  mean    one number per item (A-OKVQA direct-answer credit, caption length): paired bootstrap

Judged items take the stored verdict of the prompt the task builds (the judge's cache key); undecided
verdicts (unparseable, error) are left out, as the task's metric leaves them out. CHAIR is slow per caption,
so it is recomputed on a seeded subset of items (the drill-down's samples first), stated in the report.
Corpus-level metrics (BLEU, CIDEr, ...) have no per-item outcome.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import default_cache_dir
from harness.judges import ERROR, NO, YES, judgment_key
from harness.registry import TASKS
from harness.task import Task, TaskContext
from harness.types import Request, Response
from reports.gather import Gen, Judgment, Pair, StoreData, majority


@dataclass
class PerItem:
    kind: str  # "binary" | "ratio" | "mean"
    higher_is_better: bool
    values: dict[str, tuple[float, float]] = field(default_factory=dict)  # sample id -> (numerator, denominator)

    def aggregate(self) -> float | None:
        den = sum(d for _, d in self.values.values())
        return sum(n for n, _ in self.values.values()) / den if den else None


@dataclass
class TaskOutcomes:
    task: str
    status: str = ""  # why per-item outcomes are missing or partial ("" when complete)
    per_model: dict[str, dict[str, PerItem]] = field(default_factory=dict)
    subset: int | None = None  # items scored per model when a costly scorer ran on a seeded subset
    notes: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # model -> sample -> lines
    judged: dict[str, dict[str, str]] = field(default_factory=dict)  # model -> sample -> judgment key
    references: dict[str, str] = field(default_factory=dict)  # sample -> the expected answer, for reading
    memo: dict[Any, Any] = field(default_factory=dict, repr=False)  # a scorer's cache across models


@dataclass
class _Scoring:
    task: Task
    model: str
    pair: Pair
    items: list[tuple[str, Request, Response, Gen]]
    data: StoreData
    out: TaskOutcomes
    shown: set[str]

    def note(self, sid: str, text: str) -> None:
        if sid in self.shown:
            self.out.notes.setdefault(self.model, {}).setdefault(sid, []).append(text)

    def verdict(self, metric: str, sid: str, prompt: str) -> Judgment | None:
        judge = self.pair.metrics.get(metric, {}).get("details", {}).get("judge", "")
        for version in self.data.judge_versions.get(judge, []):
            found = self.data.judgments.get(judgment_key(judge, version, prompt))
            if found is not None and found.verdict != ERROR:
                self.out.judged.setdefault(self.model, {})[sid] = found.key
                return found
        return None


def _binary(s: _Scoring, metric: str, outcome: Callable[[str, Request, Response], bool | None],
            higher_is_better: bool = True) -> dict[str, PerItem]:
    item = PerItem("binary", higher_is_better)
    for sid, req, resp, _ in s.items:
        ok = outcome(sid, req, resp)
        if ok is not None:
            item.values[sid] = (float(ok), 1.0)
    return {metric: item}


def _smoke(s: _Scoring) -> dict[str, PerItem]:
    answers = s.task._answers  # type: ignore[attr-defined]

    def outcome(sid: str, req: Request, resp: Response) -> bool:
        s.out.references[sid] = answers[sid]
        prediction = s.task.prediction(req, resp)  # type: ignore[attr-defined]
        s.note(sid, f"prediction: {prediction}")
        return prediction == answers[sid]

    return _binary(s, "accuracy", outcome)


def _aokvqa_mc(s: _Scoring) -> dict[str, PerItem]:
    memo = s.out.memo  # models often give the same answer: map each (question, answer) to a choice once

    def outcome(sid: str, req: Request, resp: Response) -> bool:
        correct = s.task.questions[sid].correct_choice  # type: ignore[attr-defined]
        s.out.references[sid] = str(correct)
        key = (sid, resp.text, resp.choice_logprobs)
        if key not in memo:
            memo[key] = s.task.predict(req, resp)  # type: ignore[attr-defined]
        choice, rule = memo[key]
        s.note(sid, f"prediction: {choice or '(none)'} [{rule}]")
        return choice == correct

    return _binary(s, "mc_accuracy", outcome)


def _aokvqa_da(s: _Scoring) -> dict[str, PerItem]:
    from tasks.metrics.vqa import aokvqa_scores

    questions = [s.task.questions[sid] for sid, *_ in s.items]  # type: ignore[attr-defined]
    predictions = {sid: {"direct_answer": resp.text.strip()} for sid, _, resp, _ in s.items}
    scores = aokvqa_scores(questions, predictions, per_question=True)["direct_answer"]["per_question"]
    for sid, *_ in s.items:
        s.out.references[sid] = ", ".join(sorted(set(s.task.questions[sid].direct_answers or ())))  # type: ignore
        if sid in scores:
            s.note(sid, f"credit: {scores[sid]:.3f}")
    return {"da_accuracy": PerItem("mean", True, {sid: (float(v), 1.0) for sid, v in scores.items()})}


def _gqa(s: _Scoring) -> dict[str, PerItem]:
    from tasks.metrics.vqa import gqa_normalize

    normalize = s.task.spec.dataset.get("normalize", "none")

    def outcome(sid: str, req: Request, resp: Response) -> bool:
        answer = s.task.questions[sid].answer  # type: ignore[attr-defined]
        s.out.references[sid] = str(answer)
        return gqa_normalize(resp.text, normalize, "prediction") == gqa_normalize(answer, normalize, "answer")

    return _binary(s, "accuracy", outcome)


def _chair(s: _Scoring) -> dict[str, PerItem]:
    from tasks.metrics.chair import Chair

    if not s.items:
        return {}
    metric = getattr(s.task, "_report_chair", None)
    if metric is None:  # ground truth built once per task (the CHAIR cache makes it cheap after the run)
        files = [_data_file(s.task, rel) for rel in s.task.spec.dataset["annotations"]]
        metric = Chair.from_coco(files, mode=s.task.spec.dataset.get("chair_mode", "reference"),
                                 cache_dir=s.task.ctx.cache_dir / "chair")  # type: ignore[attr-defined]
        s.task._report_chair = metric  # type: ignore[attr-defined]
    result = metric.compute([{"image_id": int(sid), "caption": resp.text} for sid, _, resp, _ in s.items])
    sfx = result.suffix
    out = {f"CHAIRi{sfx}": PerItem("ratio", False), f"CHAIRs{sfx}": PerItem("binary", False),
           f"recall{sfx}": PerItem("ratio", True), "length_words": PerItem("mean", False)}
    for (sid, *_), d in zip(s.items, result.details, strict=True):
        out[f"CHAIRi{sfx}"].values[sid] = (float(len(d.hallucinated)), float(len(d.words)))
        out[f"CHAIRs{sfx}"].values[sid] = (float(d.chair_s), 1.0)
        out[f"recall{sfx}"].values[sid] = (float(len(d.recalled)), float(len(d.ground_truth)))
        out["length_words"].values[sid] = (float(d.length), 1.0)
        s.out.references[sid] = "objects: " + ", ".join(d.ground_truth)
        s.note(sid, "hallucinated: " + (", ".join(sorted({c for _, c in d.hallucinated})) or "none"))
    return out


def _data_file(task: Task, relative: str) -> Path:
    from tasks.data import data_path

    return data_path(task.ctx, relative)  # type: ignore[attr-defined]


def _judged(s: _Scoring, metric: str, prompt: Callable[[str, Request, Response], str], success: str,
            higher_is_better: bool) -> dict[str, PerItem]:
    def outcome(sid: str, req: Request, resp: Response) -> bool | None:
        found = s.verdict(metric, sid, prompt(sid, req, resp))
        return None if found is None or found.verdict not in (YES, NO) else found.verdict == success

    return _binary(s, metric, outcome, higher_is_better)


def _coverage(s: _Scoring) -> dict[str, PerItem]:
    def prompt(sid: str, req: Request, resp: Response) -> str:
        from harness.judges.prompts import coverage_prompt

        s.out.references[sid] = s.task.reference_caption(sid)  # type: ignore[attr-defined]
        return coverage_prompt(s.out.references[sid], resp.text)

    return _judged(s, "coverage", prompt, YES, True)


def _human_rated(s: _Scoring) -> dict[str, PerItem]:
    task: Any = s.task
    return _judged(s, task.proxy_metric, lambda sid, req, resp: task.proxy_prompt(req, resp), task.success,
                   task.higher_is_better)


def human_items(pair: Pair, data: StoreData, metric: str) -> PerItem | None:
    """The human figure per item: each rated generation's majority verdict (ties left out), from the campaign
    the human metric was read from (all campaigns pooled when the rating app is not installed). People answer
    "does it meet the request?", so on the failure tasks a majority "no" is the failure (counted 1)."""
    campaign = (pair.human or {}).get("details", {}).get("campaign")
    failure = metric.startswith("failure")
    item = PerItem("binary", not failure)
    for sid, gen in pair.gens.items():
        ratings = [r for r in data.ratings.get(gen.key, []) if campaign is None or r["campaign"] == campaign]
        verdict = majority(ratings)
        if verdict in (YES, NO):
            item.values[sid] = (float(verdict == (NO if failure else YES)), 1.0)
    return item if item.values else None


def _scorer(task: Task) -> tuple[Callable[[_Scoring], dict[str, PerItem]] | None, bool]:
    """(scorer, costly) for a task instance; (None, False) where there is no per-item outcome."""
    from tasks.caption_tasks import Chair, CocoCaptionMetrics
    from tasks.judged_tasks import CocoCoverage, _HumanRated
    from tasks.smoke import SmokeColours
    from tasks.vqa_tasks import AokvqaDA, AokvqaMC, GqaTestdev

    for cls, scorer, costly in ((SmokeColours, _smoke, False), (AokvqaMC, _aokvqa_mc, False),
                                (AokvqaDA, _aokvqa_da, False), (GqaTestdev, _gqa, False), (Chair, _chair, True),
                                (CocoCoverage, _coverage, False), (_HumanRated, _human_rated, False),
                                (CocoCaptionMetrics, None, False)):
        if isinstance(task, cls):
            return scorer, costly
    return None, False


def task_context(data: StoreData, pairs: list[Pair]) -> TaskContext:
    """The data the newest of these pairs' runs used (`data_root`, `cache_dir` from its config)."""
    runs = {r["run_id"]: r for r in data.runs}
    newest = max((runs[p.run_id] for p in pairs if p.run_id in runs), key=lambda r: (r["started_at"], r["run_id"]),
                 default={"config": {}})
    config = newest["config"]
    cache = Path(config["cache_dir"]) if config.get("cache_dir") else default_cache_dir()
    root = config.get("data_root")
    if root is None:  # e.g. a `rescore` run without --data-root: the data of the newest generation's run (as rescore)
        gen = max((g for p in pairs for g in p.gens.values()), key=lambda g: (g.created_at, g.key), default=None)
        root = runs.get(gen.run_id, {"config": {}})["config"].get("data_root") if gen else None
    return TaskContext(cache_dir=cache, data_root=None if root is None else Path(root))


def compute_outcomes(data: StoreData, task_name: str, order: list[str], shown: set[str],
                     costly_items: int) -> TaskOutcomes:
    """Per-item outcomes of every model on one task; `order` is the task's seeded sample order."""
    out = TaskOutcomes(task_name)
    pairs = data.task_pairs(task_name)
    for pair in pairs:
        for metric in [m for m in pair.metrics if m.endswith("_human")]:
            human = human_items(pair, data, metric)
            if human is not None:
                out.per_model.setdefault(pair.model, {})[metric] = human
    try:
        task = TASKS.load(task_name)()
    except Exception as exc:  # an unregistered or broken task: the report still shows its metrics
        out.status = f"task not loadable here ({type(exc).__name__}: {exc}); no per-item outcomes"
        return out
    scorer, costly = _scorer(task)
    if scorer is None:
        out.status = "no per-item outcome for this task (corpus-level metrics); no paired tests"
        return out
    ctx = task_context(data, pairs)
    requests = _requests(task, ctx, out)
    if requests is None:
        return out
    task.ctx = ctx  # type: ignore[attr-defined]
    wanted = order[:costly_items] if costly and len(order) > costly_items else order
    if len(wanted) < len(order):
        out.subset = len(wanted)
    for pair in pairs:
        items = [(sid, requests[sid], _response(pair.gens[sid]), pair.gens[sid]) for sid in sorted(wanted)
                 if sid in pair.gens and sid in requests and pair.gens[sid].error is None]
        scoring = _Scoring(task, pair.model, pair, items, data, out, shown)
        try:
            out.per_model.setdefault(pair.model, {}).update(scorer(scoring))
        except Exception as exc:  # data that no longer matches the generations
            out.status = f"per-item rescoring failed for {pair.model} ({type(exc).__name__}: {exc})"
    return out


def _requests(task: Task, ctx: TaskContext, out: TaskOutcomes) -> dict[str, Request] | None:
    from tasks.data import data_root
    from tasks.smoke import SmokeColours
    from tasks.world.cache import world_dir

    where = ctx.data_root if ctx.data_root is not None else world_dir(ctx.cache_dir)
    if not isinstance(task, SmokeColours) and ctx.data_root is None and not (where / "world.json").exists():
        out.status = f"task data not found (the run's default world, {where}); no per-item outcomes"
        return None
    try:
        if not isinstance(task, SmokeColours):
            data_root(ctx)
        return {r.sample_id: r for r in task.requests(ctx)}
    except Exception as exc:
        out.status = f"task data not readable ({type(exc).__name__}: {exc}); no per-item outcomes"
        return None


def _response(gen: Gen) -> Response:
    logprobs = None if gen.logprobs is None else tuple(json.loads(gen.logprobs))
    return Response(text=gen.text, choice_logprobs=logprobs)
