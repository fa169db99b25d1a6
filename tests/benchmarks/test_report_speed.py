"""Benchmark: the report for a store of 10 models x 10 tasks x 5,000 samples must build in under 30 s.

The store is synthesised with the Store API: one run on a data root that is the small synthetic world scaled
up to 5,000 samples per task (records copied under new ids, images shared or hard-linked), so the report
rescores real task classes on real data. Generations are fake but well-formed (real requests and keys;
texts shaped like each task's answers: colours, choices, 25- and 150-word captions), with metrics per pair
and judge verdicts for the judged tasks stored under the judge's real cache keys.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path

import pytest

from harness.config import RunConfig
from harness.judges import judgment_key
from harness.metrics import MetricValue, proportion
from harness.registry import TASKS
from harness.store import GenerationRow, Store, utc_now
from harness.task import TaskContext
from harness.types import Response, generation_key
from tasks.world import build_world

BUDGET_S = 30.0
N_SAMPLES = 5000
MODELS = ("blip2-flant5xxl", "blip2-ft", "minigpt4-13b", "minigpt4-3layers", "minigpt4-7b", "minigpt4-ftqformer",
          "minigpt4-locna", "minigpt4-lora", "minigpt4-noqformer", "minigpt4-stage1")
TASK_NAMES = ("advanced_meme", "aokvqa_da", "aokvqa_mc", "aokvqa_mc_ll", "chair_long", "chair_short",
              "coco_caption_metrics", "coco_coverage", "gqa_testdev", "smoke_colours")
OBJECTS = ("dog", "cat", "person", "car", "bus", "chair", "table", "bottle", "cup", "pizza", "horse", "sheep",
           "cow", "elephant", "bicycle", "umbrella", "laptop", "clock", "vase", "bench")
JUDGE, JUDGE_VERSION, LABEL = "offline-rule-judge", "2", "offline rule judge (not ChatGPT)"


def scaled_world(out: Path, n: int) -> Path:
    """The small world with every evaluation file grown to `n` samples (new ids, the same images)."""
    build_world(out, seed=0, size="small", progress=False)
    coco = out / "coco"
    split = json.loads((coco / "dataset_coco.json").read_text())
    test = [im for im in split["images"] if im["split"] == "test"]
    grown = [{**test[i % len(test)], "cocoid": 1_000_000 + i, "imgid": 1_000_000 + i} for i in range(n)]
    split["images"] = [im for im in split["images"] if im["split"] != "test"] + grown
    (coco / "dataset_coco.json").write_text(json.dumps(split))
    for kind in ("instances", "captions"):
        path = coco / "annotations" / f"{kind}_val2014.json"
        data = json.loads(path.read_text())
        by_id = {im["id"]: im for im in data["images"]}
        anns: dict[int, list] = {}
        for a in data["annotations"]:
            anns.setdefault(a["image_id"], []).append(a)
        next_id = max(a["id"] for a in data["annotations"]) + 1
        for im in grown:
            source = test[(im["cocoid"] - 1_000_000) % len(test)]["cocoid"]
            data["images"].append({**by_id[source], "id": im["cocoid"]})
            for a in anns.get(source, []):
                data["annotations"].append({**a, "id": next_id, "image_id": im["cocoid"]})
                next_id += 1
        path.write_text(json.dumps(data))
    aok = out / "aokvqa" / "aokvqa_v1p0_val.json"
    questions = json.loads(aok.read_text())
    aok.write_text(json.dumps([{**questions[i % len(questions)], "question_id": f"bench{i:05d}"} for i in range(n)]))
    gqa = out / "gqa" / "testdev_balanced_questions.json"
    records = list(json.loads(gqa.read_text()).values())
    gqa.write_text(json.dumps({f"9{i:07d}": records[i % len(records)] for i in range(n)}))
    manifest = out / "advanced" / "manifest.jsonl"
    items = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    lines = []
    for i in range(n):
        item = items[i % len(items)]
        name = f"images/bench_{i:05d}.jpg"
        os.link(out / "advanced" / item["image"], out / "advanced" / name)
        lines.append(json.dumps({**item, "image": name, "task": "meme"}))
    manifest.write_text("\n".join(lines) + "\n")
    smoke = [{"sample_id": f"{i:05d}", "image": f"coco/val2014/{test[i % len(test)]['filename']}",
              "question": "What colour is the shape?", "answer": "red", "choices": ["red", "green", "blue", "yellow"]}
             for i in range(n)]
    (out / "questions.json").write_text(json.dumps(smoke))
    return out


def fake_text(task: str, req, rng: random.Random, references: dict[str, list[str]]) -> tuple[str, list | None]:
    if task == "aokvqa_mc_ll":
        return "", [rng.uniform(-9, -0.1) for _ in req.choices]
    if task in ("aokvqa_mc", "aokvqa_da", "gqa_testdev", "smoke_colours"):
        return rng.choice(("red", "left", "yes", "no", "two", "the red one", "blue", "a dog")), None
    words = {"chair_long": 150, "coco_coverage": 60, "advanced_meme": 80}.get(task, 25)
    refs = references.get(req.sample_id) or ["A picture of something."]
    out: list[str] = []
    while len(out) < words:
        if rng.random() < 0.5:
            out += rng.choice(refs).split()
        else:
            out += f"There is a {rng.choice(OBJECTS)} next to a {rng.choice(OBJECTS)}.".split()
    return " ".join(out[:words]) + ".", None


def fake_metrics(task: str, rng: random.Random, n: int) -> list[MetricValue]:
    k = rng.randint(0, n)
    judged = {"judge": JUDGE, "judge_label": LABEL, "is_proxy": True}
    metrics = {
        "advanced_meme": [proportion("request_met_judge_proxy", k, n, **judged),
                          MetricValue("request_met_human", None, 0, details={"status": "awaiting human ratings"})],
        "coco_coverage": [proportion("coverage", k, n, **judged)],
        "chair_long": [proportion("CHAIRi", k // 10, n, higher_is_better=False),
                       proportion("CHAIRs", k, n, higher_is_better=False), proportion("recall", k, n),
                       MetricValue("length_words", 150.0, n, higher_is_better=False)],
        "coco_caption_metrics": [MetricValue(m, rng.random(), n) for m in ("Bleu_4", "METEOR", "ROUGE_L", "CIDEr")],
        "aokvqa_da": [MetricValue("da_accuracy", k / n, n, 0.0, 1.0)],
        "aokvqa_mc": [proportion("mc_accuracy", k, n)], "aokvqa_mc_ll": [proportion("mc_accuracy", k, n)],
    }
    metrics["chair_short"] = metrics["chair_long"]
    return [*metrics.get(task, [proportion("accuracy", k, n)]),
            MetricValue("errors", 0.0, n, higher_is_better=False)]


def synthesise_store(path: Path, root: Path) -> dict[str, int]:
    config = RunConfig(models=MODELS, tasks=TASK_NAMES, store=str(path), data_root=str(root), progress=False,
                       cache_dir=str(root / ".cache"))
    counts = {"generations": 0, "judgments": 0}
    ctx = TaskContext(cache_dir=root / ".cache", data_root=root)
    with Store(path) as store:
        run_id = store.start_run(config=config.to_dict(), config_hash=config.config_hash(), seed=0,
                                 argv=["benchmark"], provenance={"package_version": "bench", "host": "bench"})
        for task_name in TASK_NAMES:
            task = TASKS.load(task_name)()
            requests = task.requests(ctx)[:N_SAMPLES]
            references = {sid: list(img.captions) for sid, img in getattr(task, "by_id", {}).items()}
            if task_name.startswith("chair"):  # scoring builds the CHAIR ground-truth cache, as a real run's does
                task.score([(requests[0], Response(text="A dog."))])
            store.record_run_samples(run_id, task_name, (r.sample_id for r in requests))
            judgments = []
            for model in MODELS:
                rng = random.Random(f"{model}:{task_name}")
                fingerprint = f"fp-{model}"
                rows = []
                for req in requests:
                    text, logprobs = fake_text(task_name, req, rng, references)
                    key = generation_key(fingerprint, req)
                    rows.append(GenerationRow(key, model, fingerprint, task_name, req.sample_id, req.to_json(), text,
                                              40, len(text.split()), 0.01, logprobs, None, run_id, 0))
                    if task_name == "coco_coverage":
                        from harness.judges.prompts import coverage_prompt

                        prompt = coverage_prompt(task.reference_caption(req.sample_id), text)
                    elif task_name == "advanced_meme":
                        prompt = task.proxy_prompt(req, Response(text=text))
                    else:
                        continue
                    answer = rng.choice(("Yes", "No", "No."))
                    judgments.append((judgment_key(JUDGE, JUDGE_VERSION, prompt), key, JUDGE, JUDGE_VERSION, prompt,
                                      answer, answer.rstrip(".").lower(), 300, 1, run_id, utc_now()))
                for start in range(0, len(rows), 5000):
                    counts["generations"] += store.write_generations(rows[start:start + 5000])
                store.write_metrics(run_id, model, task_name, fake_metrics(task_name, rng, len(requests)))
            with store._transaction():
                store.conn.executemany(
                    "INSERT OR IGNORE INTO judgments (key, generation_key, judge, judge_version, prompt, raw_text, "
                    "verdict, prompt_tokens, completion_tokens, run_id, created_at) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", judgments)
            counts["judgments"] += len(judgments)
        store.finish_run(run_id)
    return counts


@pytest.mark.benchmark
def test_report_for_10_models_10_tasks_5000_samples_within_budget(tmp_path, capsys):
    from reports.leaderboard import build_report

    start = time.perf_counter()
    root = scaled_world(tmp_path / "world", N_SAMPLES)
    counts = synthesise_store(tmp_path / "big.sqlite", root)
    setup = time.perf_counter() - start
    with Store(tmp_path / "big.sqlite") as store:
        start = time.perf_counter()
        index = build_report(store, tmp_path / "report")
        seconds = time.perf_counter() - start
    html, data = index.stat().st_size, (tmp_path / "report" / "report.json").stat().st_size
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    with capsys.disabled():
        print()
        print(f"report: {len(MODELS)} models x {len(TASK_NAMES)} tasks x {N_SAMPLES} samples "
              f"({counts['generations']} generations, {counts['judgments']} judgments; store built in {setup:.1f} s)")
        print(f"  built in {seconds:.1f} s (budget {BUDGET_S:.0f} s): index.html {html / 1e6:.1f} MB, "
              f"report.json {data / 1e6:.1f} MB")
    assert counts["generations"] == len(MODELS) * len(TASK_NAMES) * N_SAMPLES
    assert set(report["tasks"]) == set(TASK_NAMES)
    assert all(s["shown"] == 50 and s["total"] == N_SAMPLES for s in report["drilldown"])
    assert sum(len(p["tests"]) for groups in report["paired_tests"].values() for p in groups) >= 45 * 8
    assert seconds < BUDGET_S
    shutil.rmtree(tmp_path / "world", ignore_errors=True)
