"""The generator and the readers agree: every file of a small world loads through its reader, and the
records point at images that exist. Plus the cached default-world helper and `mgbench world build`."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from harness.cli import main
from tasks.readers.advanced import read_advanced_manifest
from tasks.readers.aokvqa import read_aokvqa
from tasks.readers.ccsbu import read_cc_sbu_align
from tasks.readers.coco import karpathy_test_images, read_coco, read_karpathy
from tasks.readers.gqa import read_gqa
from tasks.readers.locna import read_localized_narratives
from tasks.readers.pairs import iter_shard_samples, read_jsonl_pairs
from tasks.world import build_world, cached_world, world_dir


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_world(tmp_path_factory.mktemp("world") / "w", seed=3, size="small", progress=False)


def opens(path: Path) -> bool:
    with Image.open(path) as img:
        img.load()
    return True


def test_coco_and_karpathy(world):
    coco = world / "coco"
    train = read_coco(coco / "train2014", captions=coco / "annotations/captions_train2014.json",
                      instances=coco / "annotations/instances_train2014.json")
    val = read_coco(coco / "val2014", captions=coco / "annotations/captions_val2014.json",
                    instances=coco / "annotations/instances_val2014.json")
    assert len(train) == 70 and len(val) == 50
    assert all(len(img.captions) == 5 and img.categories for img in train + val)
    assert opens(train[0].path) and opens(val[-1].path)
    karpathy = read_karpathy(coco / "dataset_coco.json", coco)
    test = karpathy_test_images(karpathy)
    assert len(test) == 30 and all(opens(img.path) for img in test[:3])
    assert {img.cocoid for img in test} <= {img.image_id for img in val}
    assert not {img.cocoid for img in test} & {img.image_id for img in train}


def test_vqa_sets(world):
    for split, n in (("train", 70), ("val", 20), ("test", 30)):
        questions = read_aokvqa(world / f"aokvqa/aokvqa_v1p0_{split}.json", world / "coco")
        assert len(questions) == n and opens(questions[0].image_path)
        assert all((q.correct_choice_idx is None) == (split == "test") for q in questions)
    for split, n in (("train", 140), ("val", 40), ("testdev", 60)):
        questions = read_gqa(world / f"gqa/{split}_balanced_questions.json", world / "gqa/images")
        assert len(questions) == n and all(q.answer for q in questions) and opens(questions[0].image_path)


def test_training_data(world):
    shards = sorted((world / "stage1/shards").glob("*.tar"))
    samples = list(iter_shard_samples([str(p) for p in shards]))
    pairs = read_jsonl_pairs(world / "stage1/pairs.jsonl")
    assert len(samples) == len(pairs) == 140
    assert {s.caption for s in samples} == {p.caption for p in pairs}
    assert opens(pairs[0].image_path)
    stage2 = read_cc_sbu_align(world / "cc_sbu_align")
    assert len(stage2) == 70 and all(p.image_path.exists() for p in stage2)
    # Like the real release, the COCO narratives name COCO 2017 images (dataset_id mscoco_train2017).
    narratives = read_localized_narratives(world / "locna/narratives.jsonl", world / "coco/train2017")
    assert len(narratives) == 70 and all(n.caption and n.image_path.exists() for n in narratives)


def test_advanced_manifest(world):
    items = read_advanced_manifest(world / "advanced/manifest.jsonl")
    assert sorted({i.task for i in items}) == ["ad", "meme", "poem", "recipe"]
    assert all(sum(i.task == t for i in items) == 25 for t in ("ad", "meme", "poem", "recipe"))
    assert all(i.image_path.exists() for i in items)


def test_cached_world_builds_once_and_cli_prints_its_path(tmp_path, capsys):
    first = cached_world(tmp_path, seed=1, size="small", progress=False)
    assert first == world_dir(tmp_path, 1, "small") and (first / "world.json").exists()
    stamp = (first / "world.json").stat().st_mtime_ns
    assert cached_world(tmp_path, seed=1, size="small", progress=False) == first
    assert (first / "world.json").stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert not [p for p in first.parent.iterdir() if ".building-" in p.name]  # no leftovers
    assert main(["world", "build", "--cache-dir", str(tmp_path), "--seed", "1", "--size", "small",
                 "--no-progress"]) == 0
    assert str(first.resolve()) in capsys.readouterr().out
    out = tmp_path / "explicit"
    assert main(["world", "build", "--out", str(out), "--size", "small", "--no-progress"]) == 0
    assert (out / "coco/dataset_coco.json").exists()
