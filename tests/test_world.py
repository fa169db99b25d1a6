"""The synthetic world generator (`tasks.world`): layout, formats, consistency and determinism (small size)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image
from pycocotools.coco import COCO

from tasks.world import GENERATOR_VERSION, build_world
from tasks.world.coco_names import COCO_CATEGORIES, TWO_WORD_NAMES, mentioned_categories
from tasks.world.vocab import CATEGORIES


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_world(tmp_path_factory.mktemp("world") / "w", seed=0, size="small", progress=False)


def load(world: Path, rel: str):
    return json.loads((world / rel).read_text(encoding="utf-8"))


def jsonl(world: Path, rel: str) -> list[dict]:
    return [json.loads(line) for line in (world / rel).read_text(encoding="utf-8").splitlines()]


def all_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def karpathy(world: Path) -> dict[int, dict]:
    return {im["cocoid"]: im for im in load(world, "coco/dataset_coco.json")["images"]}


def instance_names(world: Path) -> dict[int, set[str]]:
    """image id -> names of its instance categories, over both instance files."""
    names = {cid: name for cid, name, _ in COCO_CATEGORIES}
    out: dict[int, set[str]] = {}
    for split in ("train2014", "val2014"):
        data = load(world, f"coco/annotations/instances_{split}.json")
        for im in data["images"]:
            out.setdefault(im["id"], set())
        for ann in data["annotations"]:
            out[ann["image_id"]].add(names[ann["category_id"]])
    return out


def test_small_world_layout_and_manifest(world: Path):
    manifest = load(world, "world.json")
    assert (manifest["generator_version"], manifest["seed"], manifest["size"]) == (GENERATOR_VERSION, 0, "small")
    assert manifest["splits"] == {"train": 70, "val": 20, "test": 30}
    assert len(manifest["categories"]) == len(CATEGORIES) == 24
    assert len({(c["shape"], c["texture"]) for c in manifest["categories"]}) == 24
    for rel, count in manifest["counts"].items():
        path = world / rel
        if path.is_dir():
            assert len(list(path.iterdir())) == count, rel
        elif rel.endswith(".jsonl"):
            assert len(jsonl(world, rel)) == count, rel
        elif rel.endswith(".tar"):
            with tarfile.open(path) as tar:
                assert len(tar.getnames()) == 2 * count, rel
        else:  # COCO-style files count annotations (Karpathy: images); lists and GQA dicts count entries
            data = load(world, rel)
            if isinstance(data, dict) and ("annotations" in data or "images" in data):
                data = data.get("annotations", data.get("images"))
            assert len(data) == count, rel
    assert {"teddy bear", "hot dog", "traffic light", "fire hydrant", "stop sign", "bus", "person", "dog",
            "cat"} <= {c.name for c in CATEGORIES}


def test_same_seed_gives_identical_bytes_and_another_seed_differs(world: Path, tmp_path: Path):
    again = build_world(tmp_path / "again", seed=0, size="small", progress=False)
    first, second = all_files(world), all_files(again)
    assert sorted(first) == sorted(second)
    assert [rel for rel in first if first[rel] != second[rel]] == []
    other = all_files(build_world(tmp_path / "other", seed=1, size="small", progress=False))
    for rel in ("coco/annotations/captions_train2014.json", "text/corpus.jsonl", "stage1/pairs.jsonl"):
        assert other[rel] != first[rel], rel


def test_existing_world_is_reused_and_a_different_one_refused(world: Path):
    before = (world / "world.json").stat().st_mtime_ns
    assert build_world(world, seed=0, size="small", progress=False) == world
    assert (world / "world.json").stat().st_mtime_ns == before
    with pytest.raises(FileExistsError):
        build_world(world, seed=1, size="small", progress=False)
    with pytest.raises(ValueError, match="unknown world size"):
        build_world(world.parent / "x", size="huge", progress=False)


def test_splits_are_disjoint_and_each_format_uses_its_split(world: Path):
    split_of = {cocoid: im["split"] for cocoid, im in karpathy(world).items()}
    assert Counter(split_of.values()) == {"train": 70, "val": 20, "test": 30}
    train_ids = {im["id"] for im in load(world, "coco/annotations/instances_train2014.json")["images"]}
    val_ids = {im["id"] for im in load(world, "coco/annotations/instances_val2014.json")["images"]}
    assert not train_ids & val_ids
    assert train_ids == {i for i, s in split_of.items() if s == "train"}
    for split in ("train", "val", "test"):
        ids = {r["image_id"] for r in load(world, f"aokvqa/aokvqa_v1p0_{split}.json")}
        assert ids == {i for i, s in split_of.items() if s == split}
    for file_split, split in (("train", "train"), ("val", "val"), ("testdev", "test")):
        ids = {int(q["imageId"]) for q in load(world, f"gqa/{file_split}_balanced_questions.json").values()}
        assert ids == {i for i, s in split_of.items() if s == split}
    assert {int(r["image_id"]) for r in jsonl(world, "locna/narratives.jsonl")} == train_ids
    assert {r["image"] for r in jsonl(world, "stage1/pairs.jsonl")} <= {
        f"images/COCO_train2014_{i:012d}.jpg" for i in train_ids}
    for record in jsonl(world, "advanced/manifest.jsonl"):
        assert split_of[record["image_id"]] == "test"


def test_every_coco_image_exists_opens_and_matches_its_record(world: Path):
    for split in ("train2014", "val2014"):
        data = load(world, f"coco/annotations/captions_{split}.json")
        for im in data["images"]:
            path = world / "coco" / split / im["file_name"]
            assert im["file_name"] == f"COCO_{split}_{im['id']:012d}.jpg"
            with Image.open(path) as image:
                assert image.format == "JPEG" and image.size == (im["width"], im["height"])
                assert 64 <= min(image.size) and max(image.size) <= 128
                assert "exif" not in image.info
    for cocoid, im in karpathy(world).items():
        assert (world / "coco" / im["filepath"] / im["filename"]).is_file()
        year2017 = "train2017" if im["split"] == "train" else "val2017"
        copy = world / "coco" / year2017 / f"{cocoid:012d}.jpg"
        assert copy.read_bytes() == (world / "coco" / im["filepath"] / im["filename"]).read_bytes()
        assert (world / "gqa/images" / f"{cocoid}.jpg").is_file()
        assert (world / "coco/test2017" / f"{cocoid:012d}.jpg").is_file() == (im["split"] == "test")


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools vs numpy 2
def test_pycocotools_loads_the_annotation_files(world: Path):
    for name in ("captions_train2014", "captions_val2014", "instances_train2014", "instances_val2014"):
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(world / "coco/annotations" / f"{name}.json"))
        assert coco.getImgIds() and coco.getAnnIds()
        if name.startswith("instances"):
            assert {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())} == {
                cid: n for cid, n, _ in COCO_CATEGORIES}
            ann = coco.loadAnns(coco.getAnnIds())[0]
            assert ann["iscrowd"] == 0 and len(ann["bbox"]) == 4 and ann["area"] > 0
            assert coco.annToMask(ann).sum() > 0
        else:
            assert all(len(coco.getAnnIds(imgIds=[i])) == 5 for i in coco.getImgIds())


def test_text_mentions_only_the_scene_objects(world: Path):
    objects = instance_names(world)
    all_captions = []
    for cocoid, im in karpathy(world).items():
        captions = [s["raw"] for s in im["sentences"]]
        assert len(set(captions)) == 5
        assert all(s["tokens"] == s["raw"].lower().replace(".", "").replace(",", "").split() for s in im["sentences"])
        for caption in captions:
            assert mentioned_categories(caption) <= objects[cocoid], caption
        all_captions += captions
    text = " ".join(all_captions).lower()
    assert any(two in text for two in TWO_WORD_NAMES) and "two " in text
    synonyms = {w for c in CATEGORIES for w in c.singulars[1:]}
    assert sum(f" {w} " in f" {text} " for w in synonyms) >= 5  # several CHAIR synonyms ("puppy", "kitten", ...)
    for record in jsonl(world, "locna/narratives.jsonl"):
        assert record["caption"].startswith("In this picture we can see")
        assert mentioned_categories(record["caption"]) <= objects[int(record["image_id"])]
    by_path = {r["image"]: r for r in jsonl(world, "stage1/pairs.jsonl")}
    for path, record in by_path.items():
        cocoid = int(path.rsplit("_", 1)[1].split(".")[0])
        assert mentioned_categories(record["caption"]) <= objects[cocoid]


def test_stage2_descriptions_cover_every_object(world: Path):
    digest_to_id = {}
    for cocoid, im in karpathy(world).items():
        digest_to_id[hashlib.sha1((world / "coco" / im["filepath"] / im["filename"]).read_bytes()).hexdigest()] = cocoid
    objects = instance_names(world)
    annotations = load(world, "cc_sbu_align/filter_cap.json")["annotations"]
    assert len(annotations) == 70
    for ann in annotations:
        assert isinstance(ann["image_id"], str)
        image = world / "cc_sbu_align/image" / f"{ann['image_id']}.jpg"
        cocoid = digest_to_id[hashlib.sha1(image.read_bytes()).hexdigest()]
        found = mentioned_categories(ann["caption"])
        missing = objects[cocoid] - found - ({"cat"} if "kitty" in ann["caption"] else set())
        assert found <= objects[cocoid] and not missing, ann["caption"]
        assert ann["caption"].count(".") >= 3


def test_aokvqa_answers_are_consistent(world: Path):
    ids = set()
    for split in ("train", "val"):
        for r in load(world, f"aokvqa/aokvqa_v1p0_{split}.json"):
            assert isinstance(r["question_id"], str) and isinstance(r["image_id"], int)
            assert len(r["choices"]) == 4 == len(set(r["choices"])) and len(r["direct_answers"]) == 10
            assert len(r["rationales"]) == 3 and isinstance(r["difficult_direct_answer"], bool)
            correct = r["choices"][r["correct_choice_idx"]]
            assert correct in r["direct_answers"]
            ids.add(r["question_id"])
    for r in load(world, "aokvqa/aokvqa_v1p0_test.json"):
        assert set(r) == {"question_id", "image_id", "question", "choices", "difficult_direct_answer"}
        ids.add(r["question_id"])
    assert len(ids) == 120


def test_gqa_questions(world: Path):
    seen = set()
    for split in ("train", "val", "testdev"):
        questions = load(world, f"gqa/{split}_balanced_questions.json")
        for qid, q in questions.items():
            assert qid.isdigit() and qid not in seen and q["equivalent"] == [qid]
            seen.add(qid)
            assert isinstance(q["imageId"], str) and (world / "gqa/images" / f"{q['imageId']}.jpg").is_file()
            assert set(q["types"]) == {"structural", "semantic", "detailed"} and q["isBalanced"] is True
            assert q["answer"] and q["fullAnswer"] and q["semanticStr"]
    assert len(seen) == 240


def test_stage1_shards_hold_jpg_json_pairs(world: Path):
    keys = []
    for shard in sorted((world / "stage1/shards").glob("pairs-*.tar")):
        with tarfile.open(shard) as tar:
            members = tar.getmembers()
            assert all(m.mtime == 0 and m.uid == 0 and m.uname == "" for m in members)
            names = [m.name for m in members]
            assert names[0::2] == [n.replace(".json", ".jpg") for n in names[1::2]]
            for jpg, js in zip(members[0::2], members[1::2], strict=True):
                assert jpg.name.endswith(".jpg") and js.name.endswith(".json")
                assert json.loads(tar.extractfile(js).read())["caption"]
                with Image.open(io.BytesIO(tar.extractfile(jpg).read())) as image:
                    assert image.format == "JPEG"
                keys.append(jpg.name[:-4])
    assert [p.name for p in sorted((world / "stage1/shards").iterdir())] == [
        "pairs-00000.tar", "pairs-00001.tar", "pairs-00002.tar"]
    pairs = jsonl(world, "stage1/pairs.jsonl")
    assert len(keys) == len(set(keys)) == len(pairs) == 140
    assert all((world / "stage1" / p["image"]).is_file() for p in pairs)  # relative to the file's folder


def test_advanced_manifest_has_25_test_images_per_task(world: Path):
    records = jsonl(world, "advanced/manifest.jsonl")
    assert Counter(r["task"] for r in records) == {"meme": 25, "recipe": 25, "ad": 25, "poem": 25}
    for r in records:  # relative to the manifest's folder, the same bytes as the COCO file
        coco = world / "coco/val2014" / f"COCO_val2014_{r['image_id']:012d}.jpg"
        assert (world / "advanced" / r["image"]).read_bytes() == coco.read_bytes()
    assert len(records) == len({(r["image"], r["task"]) for r in records})


def test_corpus_is_text_only_instructions(world: Path):
    records = jsonl(world, "text/corpus.jsonl")
    assert len(records) == 300
    assert all(set(r) == {"kind", "text"} for r in records)
    assert not any(".jpg" in r["text"] or "<Img>" in r["text"] for r in records)
    instructions = [r for r in records if r["kind"] != "plain"]
    assert all(r["text"].startswith("###Human: ") and " ###Assistant: " in r["text"] for r in instructions)
    assert {r["kind"] for r in records} == {"description", "poem", "recipe", "ad", "meme", "plain"}
    humans = " ".join(r["text"].split(" ###Assistant: ")[0] for r in instructions)
    for word in ("poem", "recipe", "advertisement", "meme"):
        assert word in humans
    assert not any("###" in r["text"] for r in records if r["kind"] == "plain")


def test_bytes_do_not_depend_on_the_hash_seed(world: Path, tmp_path: Path):
    """Set iteration order changes with PYTHONHASHSEED; a build in another process must not."""
    code = "import sys; from tasks.world import build_world; build_world(sys.argv[1], size='small', progress=False)"
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "hashed"
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(root)}
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, env=env, cwd=root)
    assert all_files(out) == all_files(world)
