"""Stage-2 data curation (paper Sec. 3.2): the prompts, Continue, the fix-up judge, the rules, the verification
queue, the cc_sbu_align output and resume, on a small synthetic world."""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
from PIL import Image

from harness.adapter import ModelAdapter
from harness.judges import Budget, fixup_prompt, make_judge
from harness.store import Store
from harness.train.curate import (
    CONTINUE_TASK,
    DESCRIBE_PROMPT,
    DESCRIBE_TASK,
    QUEUE_FILE,
    REPORT_FILE,
    check_rules,
    continue_prompt,
    curate,
    read_queue,
)
from harness.train.curate_cli import add_parser, cmd_curate, list_images, select_images
from harness.types import Request, Response
from tasks.readers.ccsbu import read_cc_sbu_align
from tasks.readers.errors import DataError
from tasks.world import build_world

# The paper's text, typed out here rather than imported, so a drift in the module shows up.
PAPER_DESCRIBE = ("###Human: <Img><ImageHere></Img> Describe this image in detail. Give as many details as possible. "
                  "Say everything you see. ###Assistant:")
PAPER_FIXUP = ("Fix the error in the given paragraph. Remove any repeating sentences, meanless characters, not English "
               "sentences, and so on. Remove unnecessary repetition. Rewrite any incomplete sentences. Return directly "
               "the results without explanation. Return directly the input paragraph if it is already correct without "
               "explanation.")

FIRST = {  # image id -> the scripted first answer
    "2": "The image shows a red dog on a plain gray background. The dog is to the left of a small blue cat. "
         "The scene is simple and clearly arranged.",
    "3": "A large yellow umbrella.",  # short: asks for a Continue turn
    "4": "A white hot dog sits on a gray background. A white hot dog sits on a gray background. It is next to a "
         "purple traffic light in the bottom right corner.",  # the rule judge removes the repeated sentence
    "5": "I'm sorry, I made a mistake. I cannot see the image clearly, but there seems to be a kite.",
    "6": "dog dog dog dog dog dog dog dog dog dog dog dog dog",
    "7": "A small green bus is to the right of a large orange person in the picture. The background is plain gray.",
}
CONTINUED = {"3": "It is above a green elephant. The background is plain gray and without texture."}
MIN_TOKENS = 12  # whitespace words, for the scripted adapter (it has no tokenizer)


class ScriptedAdapter:
    """A real adapter (the ModelAdapter protocol) answering from a script by image id; it records every request."""

    def __init__(self, interrupt_on_call: int | None = None):
        self.requests: list[Request] = []
        self.calls = 0
        self.interrupt_on_call = interrupt_on_call

    def fingerprint(self) -> str:
        return "scripted:" + hashlib.sha256(json.dumps([FIRST, CONTINUED]).encode()).hexdigest()[:16]

    def generate(self, requests: Sequence[Request], images: Sequence[Image.Image | None]) -> list[Response]:
        self.calls += 1
        if self.calls == self.interrupt_on_call:
            raise KeyboardInterrupt("scripted interrupt")
        assert all(isinstance(img, Image.Image) for img in images)
        self.requests.extend(requests)
        texts = [CONTINUED.get(r.sample_id, "") if r.prompt.endswith("###Human: Continue ###Assistant:")
                 else FIRST[r.sample_id] for r in requests]
        return [Response(text=t, prompt_tokens=len(r.prompt.split()), completion_tokens=len(t.split()))
                for r, t in zip(requests, texts, strict=True)]

    def score_choices(self, requests: Sequence[Request], images: Sequence[Image.Image | None]) -> list[Response]:
        raise NotImplementedError


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_world(tmp_path_factory.mktemp("world") / "w", seed=0, size="small", progress=False)


@pytest.fixture
def images(world: Path, tmp_path: Path) -> list[tuple[str, Path]]:
    """Six world images under ids "2".."7"; "7" is a PNG (the output must convert it to JPEG)."""
    files = sorted((world / "stage1/images").iterdir())[:6]
    folder = tmp_path / "images"
    folder.mkdir()
    for image_id, src in zip(FIRST, files, strict=True):
        if image_id == "7":
            with Image.open(src) as img:
                img.save(folder / "7.png")
        else:
            shutil.copy(src, folder / f"{image_id}.jpg")
    return list_images(folder)


def run(adapter: ScriptedAdapter, images: list[tuple[str, Path]], out: Path, **kw):
    return curate(adapter, images, out, judge=make_judge("rule"), min_tokens=MIN_TOKENS, max_new_tokens=64,
                  batch_size=4, progress=False, **kw)


def counts(store_path: Path) -> tuple[int, int]:
    with Store(store_path) as store:
        return store.count_generations(), store.conn.execute("SELECT count(*) FROM judgments").fetchone()[0]


def queue_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_prompts_are_the_papers():
    assert DESCRIBE_PROMPT == PAPER_DESCRIBE
    assert continue_prompt(" A cat. ") == PAPER_DESCRIBE + " A cat.###Human: Continue ###Assistant:"
    assert fixup_prompt("A cat.") == PAPER_FIXUP + "\n\nA cat."


@pytest.mark.parametrize(("text", "rule"), [
    ("I'm sorry I made a mistake, the image shows a dog next to a cat on a gray background.", "apology"),
    ("I apologize for the confusion, the picture shows a small red dog on a plain background.", "apology"),
    ("I made a mistake in my previous description of the image with the small red dog in it.", "mistake"),
    ("As an AI language model I cannot see images, but this might be a dog on a gray background.", "judge_meta"),
    ("Here is the corrected paragraph: a red dog sits to the left of a blue cat on gray.", "judge_meta"),
    ("", "empty"),
    ("   ", "empty"),
    ("A dog.", "too_short"),
    ("the the the dog sits on a gray background next to a blue cat in the corner of it", "repetition"),
    ("A dog sits here. A cat sits there. A dog sits here. The background is plain gray.", "repetition"),
    ("dog cat " * 15, "repetition"),
    ("\ufffdhIre\ufffd t\ufffd`9ic\ufffd\ufffdz\ufffd2greAs\ufffd\x048BImage\x1f ro", "non_english"),
    ("这是一只狗，它在一只猫的左边。背景是灰色的，非常简单，没有其他东西，画面很干净。", "non_english"),
    ("A red dog sits to the left of a small blue cat on a plain gray background.", None),
])
def test_rules_name_what_they_reject(text, rule):
    hit = check_rules(text)
    assert (hit[0] if hit else None) == rule


def test_the_worlds_real_descriptions_pass_every_rule(world):
    for pair in read_cc_sbu_align(world / "cc_sbu_align"):
        assert check_rules(pair.caption) is None, pair.caption


def test_curation_describes_continues_fixes_filters_and_writes_cc_sbu_align(images, tmp_path):
    out, adapter = tmp_path / "out", ScriptedAdapter()
    assert isinstance(adapter, ModelAdapter)
    report = run(adapter, images, out)
    # 1. every image described with the paper's prompt; Continue exactly for the short answer, as the conversation
    describe = [r for r in adapter.requests if r.task == DESCRIBE_TASK]
    assert sorted(r.sample_id for r in describe) == sorted(FIRST) and {r.prompt for r in describe} == {PAPER_DESCRIBE}
    continued = [r for r in adapter.requests if r.task == CONTINUE_TASK]
    assert [(r.sample_id, r.prompt) for r in continued] == [
        ("3", PAPER_DESCRIBE + " " + FIRST["3"] + "###Human: Continue ###Assistant:")]
    items = {it.image_id: it for it in report.items}
    assert items["3"].continued and items["3"].raw == FIRST["3"] + " " + CONTINUED["3"]
    assert [i for i, it in items.items() if it.continued] == ["3"]
    # 2. the fix-up prompt is the paper's, one per description; the rule judge removed the repeated sentence
    with Store(out / "curation.sqlite") as store:
        prompts = {r[0] for r in store.conn.execute("SELECT prompt FROM judgments")}
    assert prompts == {PAPER_FIXUP + "\n\n" + it.raw for it in items.values()}
    assert items["4"].fixed == ("A white hot dog sits on a gray background. It is next to a purple traffic light "
                                "in the bottom right corner.")
    assert items["4"].raw == FIRST["4"] and report.fixed_changed == 1
    # 3. the rules: rejected items carry their rule and what it matched
    assert {i: it.rule for i, it in items.items()} == {"2": "passed", "3": "passed", "4": "passed", "5": "apology",
                                                       "6": "repetition", "7": "passed"}
    assert items["5"].rule_detail == "I'm sorry" and report.rejected == {"apology": 1, "repetition": 1}
    # 4. the queue: every item, with its rule verdict, undecided; nothing accepted yet
    rows = queue_rows(out / QUEUE_FILE)
    assert [r["image_id"] for r in rows] == list(FIRST)
    assert {r["image_id"]: r["rule"] for r in rows}["6"] == "repetition"
    assert all(r["decision"] is None and r["raw"] and r["fixed"] and Path(r["image"]).exists() for r in rows)
    assert (report.queued, report.pending, report.accepted) == (6, 4, 0)
    assert read_cc_sbu_align(out) == []
    assert (report.described, report.continued, report.generated) == (6, 1, 7)
    generations, judgments = counts(out / "curation.sqlite")
    assert (generations, judgments, report.judge_requested) == (7, 6, 6)

    # People decide: accept, edit, reject, overrule a rule; "7" stays undecided.
    decisions = {"2": ("accept", None), "3": ("edit", "A yellow umbrella above a green elephant, on plain gray."),
                 "4": ("reject", None), "5": ("accept", None)}
    for row in rows:
        row["decision"], row["caption"] = decisions.get(row["image_id"], (None, None))
    filled = tmp_path / "filled.jsonl"
    filled.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    calls = adapter.calls
    report = run(adapter, images, out, queue_in=filled)
    # the rerun asked neither the model nor the judge anything
    assert adapter.calls == calls and counts(out / "curation.sqlite") == (7, 6)
    assert (report.generated, report.from_store, report.judge_requested, report.judge_cached) == (0, 7, 0, 6)
    pairs = read_cc_sbu_align(out)
    assert [(p.image_id, p.caption) for p in pairs] == [("2", items["2"].fixed), ("3", decisions["3"][1]),
                                                       ("5", items["5"].fixed)]
    data = json.loads((out / "filter_cap.json").read_text(encoding="utf-8"))
    assert all(isinstance(a["image_id"], str) for a in data["annotations"])
    assert all(p.image_path.exists() for p in pairs)
    assert (report.accepted, report.edited, report.rejected_by_people, report.overruled_rules, report.pending) == (
        3, 1, 1, 1, 1)
    # the decisions were carried into the queue file, so a rerun without --queue-in keeps them
    assert {r["image_id"]: r["decision"] for r in queue_rows(out / QUEUE_FILE)} == {
        "2": "accept", "3": "edit", "4": "reject", "5": "accept", "6": None, "7": None}

    report = run(adapter, images, out, auto_accept=True)
    assert [p.image_id for p in read_cc_sbu_align(out)] == ["2", "3", "5", "7"]
    assert (report.auto_accepted, report.pending, report.generated, report.judge_requested) == (1, 0, 0, 0)
    with Image.open(out / "image/7.jpg") as img:  # the PNG was converted
        assert img.format == "JPEG"
    assert json.loads((out / REPORT_FILE).read_text())["accepted"] == 4

    # a person rejecting an accepted item removes it and its image
    rows = queue_rows(out / QUEUE_FILE)
    rows[0]["decision"] = "reject"
    (out / QUEUE_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    run(adapter, images, out, auto_accept=True)
    assert [p.image_id for p in read_cc_sbu_align(out)] == ["3", "5", "7"] and not (out / "image/2.jpg").exists()


def test_queue_reading(tmp_path):
    path = tmp_path / "q.jsonl"

    def write(*rows):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    write({"image_id": "1", "fixed": "A dog.", "decision": "accept"},
          {"image_id": "2", "fixed": "A cat.", "decision": "edit", "caption": " A grey cat. "},
          {"image_id": "3", "fixed": "A cow.", "decision": "reject"},
          {"image_id": "4", "fixed": "A hen.", "decision": None})
    assert read_queue(path) == {"1": ("accept", "A dog."), "2": ("edit", "A grey cat."), "3": ("reject", None)}
    write({"image_id": "1", "fixed": "A dog.", "decision": "maybe"})
    with pytest.raises(DataError, match="line 1.*decision"):
        read_queue(path)
    write({"image_id": "1", "fixed": "A dog.", "decision": "edit"})
    with pytest.raises(DataError, match="caption"):
        read_queue(path)


def test_an_accept_after_changing_fixed_in_place_is_an_edit(images, tmp_path):
    out, adapter = tmp_path / "out", ScriptedAdapter()
    run(adapter, images, out)
    rows = queue_rows(out / QUEUE_FILE)
    rows[0].update(fixed="A red dog left of a blue cat, on plain gray, simply arranged.", decision="accept")
    (out / QUEUE_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    report = run(adapter, images, out)
    assert report.edited == 1 and read_cc_sbu_align(out)[0].caption == rows[0]["fixed"]
    assert queue_rows(out / QUEUE_FILE)[0]["decision"] == "edit"


def test_an_interrupted_curation_resumes_where_it_stopped(images, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run(ScriptedAdapter(interrupt_on_call=2), images, out, auto_accept=True)
    with Store(out / "curation.sqlite") as store:
        assert [r["status"] for r in store.runs()] == ["interrupted"]
        kept = {row.sample_id for row in store.generations()}
    assert counts(out / "curation.sqlite") == (4, 0)  # the first batch of 4 was kept
    adapter = ScriptedAdapter()
    report = run(adapter, images, out, auto_accept=True)
    assert (report.from_store, report.generated) == (4, 3)  # 2 descriptions and the Continue of "3"
    assert sorted(r.sample_id for r in adapter.requests if r.task == DESCRIBE_TASK) == sorted(set(FIRST) - kept)
    assert [r.sample_id for r in adapter.requests if r.task == CONTINUE_TASK] == ["3"]
    assert [p.image_id for p in read_cc_sbu_align(out)] == ["2", "3", "4", "7"]


def test_a_judge_budget_and_an_unreadable_image_leave_items_for_a_rerun(images, tmp_path):
    out, adapter = tmp_path / "out", ScriptedAdapter()
    images = [*images, ("8", tmp_path / "missing.jpg")]
    report = run(adapter, images, out, budget=Budget(max_requests=2), auto_accept=True)
    assert (report.generation_errors, report.judge_requested, report.unjudged, report.queued) == (1, 2, 4, 2)
    assert "8" not in {r.sample_id for r in adapter.requests}
    assert "8" not in {r["image_id"] for r in queue_rows(out / QUEUE_FILE)}
    report = run(adapter, images, out, auto_accept=True)
    assert (report.generated, report.judge_requested, report.judge_cached, report.unjudged) == (0, 4, 2, 0)
    assert [p.image_id for p in read_cc_sbu_align(out)] == ["2", "3", "4", "7"]


def test_image_lists_from_a_folder_or_a_manifest(world):
    folder = list_images(world / "stage1/images")
    manifest = list_images(world / "stage1/pairs.jsonl")
    assert len(folder) == 70 and sorted(manifest) == folder  # pairs.jsonl names each image twice
    subset = select_images(manifest, 5, seed=0)
    assert len(subset) == 5 and subset == select_images(manifest, 5, seed=0) != select_images(manifest, 5, seed=1)
    assert [im for im in manifest if im in subset] == subset


def test_cli_with_a_tiny_random_minigpt4_rejects_its_garbage_and_resumes(world, tmp_path):
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "out"
    argv = ["curate", "--model", "tiny:minigpt4", "--images", str(world / "stage1/pairs.jsonl"), "--out", str(out),
            "--limit", "3", "--max-new-tokens", "6", "--device", "cpu", "--auto-accept", "--no-progress"]
    assert cmd_curate(parser.parse_args(argv), argv) == 0
    first = json.loads((out / REPORT_FILE).read_text())
    assert first["images"] == 3 and first["continued"] == 3  # 6 new tokens < 80: every answer was continued
    assert first["generated"] == 6 and first["judge_requested"] >= 1
    rows = queue_rows(out / QUEUE_FILE)
    assert len(rows) == 3 and all(r["rule"] != "passed" for r in rows)  # random weights: garbage, all rejected
    assert first["accepted"] == 0 and read_cc_sbu_align(out) == []
    assert cmd_curate(parser.parse_args(argv), argv) == 0
    again = json.loads((out / REPORT_FILE).read_text())
    assert (again["generated"], again["judge_requested"], again["from_store"]) == (0, 0, 6)
    assert again["rejected"] == first["rejected"]
