"""Every paper task runs end to end on a small synthetic world, and judged tasks re-judge from the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.config import RunConfig
from harness.registry import TASKS
from harness.runner import Runner
from harness.store import Store
from harness.testing.openai_server import FakeOpenAIServer
from tasks.world import build_world

PAPER_TASKS = [t for t in TASKS.names() if not t.startswith("smoke")]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_world(tmp_path_factory.mktemp("world") / "w", seed=0, size="small", progress=False)


@pytest.fixture(scope="module")
def run(world: Path, tmp_path_factory: pytest.TempPathFactory):
    store = tmp_path_factory.mktemp("store") / "s.sqlite"
    config = RunConfig(models=("dummy",), tasks=tuple(PAPER_TASKS), store=str(store), limit=12,
                       data_root=str(world), progress=False)
    return Runner(config).run(), store


def metrics_of(result, task: str) -> dict:
    return {m.name: m for m in result.pair("dummy", task).metrics}


def test_every_paper_task_has_a_spec_with_its_table_and_runs_without_errors(run):
    result, _ = run
    assert len(PAPER_TASKS) >= 14
    for task in PAPER_TASKS:
        pair = result.pair("dummy", task)
        assert pair.errors == 0 and pair.generated == pair.selected > 0, task


def test_vqa_tasks_record_how_they_scored(run):
    result, _ = run
    mc = metrics_of(result, "aokvqa_mc")["mc_accuracy"]
    assert mc.details["mapping"].startswith("generate, then map_to_choice")
    assert sum(mc.details["mapping_rules"].values()) == mc.n == 12
    assert metrics_of(result, "aokvqa_mc_ll")["mc_accuracy"].details["mapping_rules"] == {"log-likelihood": 12}
    assert metrics_of(result, "gqa_testdev")["accuracy"].details["normalize"] == "none"
    assert metrics_of(result, "aokvqa_da")["da_accuracy"].details["scored_on"] == "questions not marked difficult"


def test_chair_and_caption_metrics(run):
    result, _ = run
    chair = metrics_of(result, "chair_short")
    assert chair["CHAIRs"].details["mode"] == "reference" and chair["CHAIRs"].n == 12
    assert chair["length_words"].value > 0
    caption = metrics_of(result, "coco_caption_metrics")
    assert caption["SPICE"].value is None and "unavailable" in caption["SPICE"].details["status"]
    assert caption["CIDEr"].value is not None


def test_judged_tasks_are_labelled_and_human_tables_await_ratings(run):
    result, _ = run
    coverage = metrics_of(result, "coco_coverage")["coverage"]
    assert coverage.details["judge_label"] == "offline rule judge (not ChatGPT)" and coverage.details["is_proxy"]
    assert coverage.details["reference_seed"] == 0
    for task, proxy, human in (("failure_poem", "failure_rate_judge_proxy", "failure_rate_human"),
                               ("advanced_recipe", "request_met_judge_proxy", "request_met_human")):
        found = metrics_of(result, task)
        assert found[proxy].n == 12 and found[proxy].details["is_proxy"]
        assert found[human].value is None and "awaiting human ratings" in found[human].details["status"]


def test_rejudging_with_an_api_judge_asks_once_then_answers_from_the_cache(run, capsys, monkeypatch):
    _, store = run
    monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback-test")
    with FakeOpenAIServer(responder=lambda prompt: "Yes" if "cat" in prompt else "No.") as server:
        args = ["judge", "--store", str(store), "--tasks", "coco_coverage", "--judge", "openai",
                "--judge-option", "model=judge-test", "--judge-option", f"base_url={server.base_url}"]
        assert main(args) == 0
        first = len(server.requests)
        assert first == 12  # one request per stored generation
        assert main(args) == 0
        assert len(server.requests) == first  # the re-run is answered from the store
    out = capsys.readouterr().out
    assert "coverage" in out
    with Store(store) as st:
        rows = st.conn.execute("SELECT judge, raw_text FROM judgments WHERE judge='openai:judge-test'").fetchall()
        assert len(rows) == 12 and {r["raw_text"] for r in rows} <= {"Yes", "No."}
        runs = st.runs()
        assert json.loads(runs[-1]["config_json"])["command"] == "rescore"
        assert "sk-loopback-test" not in json.dumps([dict(r) for r in runs])


def test_chairi_without_any_object_word_is_undefined_and_says_so(world, tmp_path):
    from harness.task import TaskContext
    from harness.types import Response

    task = TASKS.load("chair_short")()
    requests = task.requests(TaskContext(cache_dir=tmp_path, data_root=world))[:3]
    scored = {m.name: m for m in task.score([(r, Response(text="A yellow.")) for r in requests])}
    assert scored["CHAIRi"].value is None and scored["CHAIRi"].n == 0
    assert scored["CHAIRi"].details["status"] == "undefined: no object words in 3 captions"
    assert scored["CHAIRs"].value == 0.0


def test_coverage_is_broken_down_by_how_many_objects_the_reference_names(run):
    result, _ = run
    m = metrics_of(result, "coco_coverage")
    one, several, whole = m["coverage_one_object"], m["coverage_several_objects"], m["coverage"]
    assert one.n + several.n == whole.n and one.details["k"] + several.details["k"] == whole.details["k"]
    assert one.n > 0 and several.n > 0  # the world's references name one object or several
    assert m["objects_named"].n == 12 and m["objects_named"].value is not None


def test_coverage_breakdown_reads_objects_as_chair_does_and_counts_yes_no_verdicts_only():
    from harness.judges import NO, YES
    from tasks.judged_tasks import coverage_breakdown

    references = ["A dog on the grass.", "Two puppies and a kitty.", "A man riding a motor bike.",
                  "A bus next to a car.", "An empty road."]
    texts = ["A dog and a cat.", "A dog.", "A person.", "A bus next to a car and a truck.", "Nothing here."]
    one, several, named = coverage_breakdown(references, texts, [YES, NO, "unparseable", YES, NO])
    # "puppies and a kitty": dog and cat, two categories; "man ... motor bike": person and motorcycle; "road": none
    assert (one.name, one.details["k"], one.n) == ("coverage_one_object", 1, 2)
    assert (several.name, several.details["k"], several.n) == ("coverage_several_objects", 1, 2)
    assert named.name == "objects_named" and named.value == (2 + 1 + 1 + 3 + 0) / 5 and named.n == 5


def test_coverage_on_the_val_split_reads_val_images_only_and_names_a_bad_split(world, tmp_path):
    import dataclasses

    import pytest

    from harness.task import TaskContext
    from tasks.readers.coco import read_karpathy

    ctx = TaskContext(cache_dir=tmp_path, data_root=world)
    val = TASKS.load("coco_coverage_val")().requests(ctx)
    test = TASKS.load("coco_coverage")().requests(ctx)
    split = {str(r.cocoid): r.split for r in read_karpathy(world / "coco/dataset_coco.json", world / "coco")}
    assert val and {split[r.sample_id] for r in val} == {"val"} and {split[r.sample_id] for r in test} == {"test"}
    assert len(val) == sum(s == "val" for s in split.values())
    assert val[0].prompt == test[0].prompt and val[0].settings == test[0].settings
    task = TASKS.load("coco_coverage_val")()
    task.spec = dataclasses.replace(task.spec, dataset={**task.spec.dataset, "split": "dev"})
    with pytest.raises(ValueError, match="task coco_coverage_val: dataset.split 'dev'"):
        task.requests(ctx)
