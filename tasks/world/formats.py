"""Writers for each public dataset format, given the world's images (`Item`s) and their texts.

Each function writes its files under the world folder `out`, records what it wrote in `counts`
(path relative to `out` -> number of records) and takes its own `random.Random` stream, so adding a
format never changes the bytes of another. Image paths inside a JSONL file are relative to that file's
folder, and the images it names are hard links next to it (`stage1/images/`, `advanced/images/`), so a
folder can be moved or read on its own like the real datasets.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from tasks.world.captions import detailed_description, narrative, web_caption
from tasks.world.coco_names import COCO_CATEGORIES
from tasks.world.corpus import corpus_record
from tasks.world.questions import aokvqa_question, gqa_question
from tasks.world.scenes import Scene, segmentation
from tasks.world.writers import dumps, link_or_copy, write_json, write_jsonl, write_tar

ADVANCED_TASKS = ("meme", "recipe", "ad", "poem")
ADVANCED_PER_TASK = 25
COCO_INFO = {"description": "mgbench synthetic world in the COCO 2014 format", "url": "", "version": "1.0",
             "year": 2014, "contributor": "mgbench", "date_created": "2014-01-01 00:00:00"}
COCO_LICENSES = [{"id": 1, "name": "CC0 1.0 (synthetic images)", "url": ""}]
A_OKVQA_TEST_DROPS = ("correct_choice_idx", "direct_answers", "rationales")


@dataclass
class Item:
    """One image of the world: its scene, split ("train" | "val" | "test") and the five COCO captions."""

    scene: Scene
    split: str
    captions: list[str] = field(default_factory=list)

    @property
    def image_id(self) -> int:
        return self.scene.image_id

    @property
    def file_name(self) -> str:
        """The COCO 2014 file name: COCO_{train,val}2014_{id:012d}.jpg."""
        return f"COCO_{self.folder2014}_{self.image_id:012d}.jpg"

    @property
    def folder2014(self) -> str:
        return "train2014" if self.split == "train" else "val2014"

    @property
    def coco2014(self) -> str:
        """Path (relative to the world folder) of the image's primary file, in COCO 2014's layout."""
        return f"coco/{self.folder2014}/{self.file_name}"


def write_coco(out: Path, items: list[Item], counts: dict[str, int]) -> dict[int, str]:
    """captions_/instances_{train,val}2014.json and dataset_coco.json; returns id(obj) -> annotation id."""
    categories = [{"id": cid, "name": name, "supercategory": sup} for cid, name, sup in COCO_CATEGORIES]
    object_ids: dict[int, str] = {}
    ann_id, cap_id = 1, 1
    for year_split, splits in (("train2014", ("train",)), ("val2014", ("val", "test"))):
        images, instances, captions = [], [], []
        for item in (i for i in items if i.split in splits):
            scene = item.scene
            images.append({"id": scene.image_id, "file_name": item.file_name, "width": scene.width,
                           "height": scene.height, "license": 1, "coco_url": "", "flickr_url": "",
                           "date_captured": "2014-01-01 00:00:00"})
            for obj in scene.objects:
                polygon, area = segmentation(obj)
                x0, y0, x1, y1 = obj.box
                instances.append({"id": ann_id, "image_id": scene.image_id, "category_id": obj.category.coco_id,
                                  "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)], "area": area,
                                  "iscrowd": 0, "segmentation": [polygon]})
                object_ids[id(obj)] = str(ann_id)
                ann_id += 1
            for caption in item.captions:
                captions.append({"id": cap_id, "image_id": scene.image_id, "caption": caption})
                cap_id += 1
        base = {"info": COCO_INFO, "licenses": COCO_LICENSES, "images": images}
        for kind, anns, extra in (("captions", captions, {}), ("instances", instances, {"categories": categories})):
            path = f"coco/annotations/{kind}_{year_split}.json"
            write_json(out / path, {**base, "annotations": anns, **extra})
            counts[path] = len(anns)
    karpathy, sent_id = [], 0
    for imgid, item in enumerate(items):
        sentences = []
        for raw in item.captions:
            sentences.append({"raw": raw, "tokens": re.findall(r"[a-z0-9]+", raw.lower()), "imgid": imgid,
                              "sentid": sent_id + len(sentences)})
        karpathy.append({"filepath": item.folder2014, "filename": item.file_name,
                         "cocoid": item.image_id, "split": item.split, "sentences": sentences, "imgid": imgid,
                         "sentids": [s["sentid"] for s in sentences]})
        sent_id += len(sentences)
    write_json(out / "coco/dataset_coco.json", {"images": karpathy, "dataset": "coco"})
    counts["coco/dataset_coco.json"] = len(karpathy)
    return object_ids


def write_aokvqa(out: Path, items: list[Item], per_image: int, rng: random.Random, counts: dict[str, int]) -> None:
    """aokvqa_v1p0_{train,val,test}.json: world train/val/test; the test file has no answers, like the real one."""
    for split in ("train", "val", "test"):
        records = [aokvqa_question(rng, item.scene) for item in items if item.split == split for _ in range(per_image)]
        if split == "test":
            records = [{k: v for k, v in r.items() if k not in A_OKVQA_TEST_DROPS} for r in records]
        path = f"aokvqa/aokvqa_v1p0_{split}.json"
        write_json(out / path, records)
        counts[path] = len(records)


def write_gqa(out: Path, items: list[Item], per_image: int, object_ids: dict[int, str], rng: random.Random,
              counts: dict[str, int]) -> None:
    """{train,val,testdev}_balanced_questions.json keyed by numeric-string question ids (testdev <- world test)."""
    qid = 10_000_000 + rng.randrange(1_000_000)
    for split, file_split in (("train", "train"), ("val", "val"), ("test", "testdev")):
        questions = {}
        for item in (i for i in items if i.split == split):
            for _ in range(per_image):
                record = gqa_question(rng, item.scene, object_ids)
                record["equivalent"] = [str(qid)]
                questions[str(qid)] = record
                qid += rng.randint(1, 9)
        path = f"gqa/{file_split}_balanced_questions.json"
        write_json(out / path, questions)
        counts[path] = len(questions)


def write_stage1(out: Path, items: list[Item], jpegs: dict[int, bytes], per_image: int, shard_size: int,
                 rng: random.Random, counts: dict[str, int]) -> None:
    """stage1/shards/pairs-NNNNN.tar (webdataset: KEY.jpg + KEY.json) and stage1/pairs.jsonl, train images only."""
    pairs = [(item, web_caption(rng, item.scene)) for item in items if item.split == "train" for _ in range(per_image)]
    rng.shuffle(pairs)
    for shard, start in enumerate(range(0, len(pairs), shard_size)):
        members = []
        for key, (item, caption) in enumerate(pairs[start : start + shard_size], start=start):
            members.append((f"{key:09d}.jpg", jpegs[item.image_id]))
            members.append((f"{key:09d}.json", dumps({"caption": caption}).encode("utf-8")))
        path = f"stage1/shards/pairs-{shard:05d}.tar"
        counts[path] = write_tar(out / path, members) // 2
    linked = {item.image_id: item for item, _ in pairs}
    for item in linked.values():
        link_or_copy(out / item.coco2014, out / "stage1/images" / item.file_name)
    counts["stage1/images"] = len(linked)
    records = [{"image": f"images/{item.file_name}", "caption": caption}
               for item, caption in pairs]
    counts["stage1/pairs.jsonl"] = write_jsonl(out / "stage1/pairs.jsonl", records)


def write_stage2(out: Path, items: list[Item], rng: random.Random, counts: dict[str, int]) -> None:
    """cc_sbu_align/filter_cap.json and image/{image_id}.jpg over the train images (ids are strings: "2", ...)."""
    train = [item for item in items if item.split == "train"]
    ids = [(item, str(k)) for k, item in enumerate(train, start=2)]
    annotations = [{"image_id": image_id, "caption": detailed_description(rng, item.scene)} for item, image_id in ids]
    for item, image_id in ids:
        link_or_copy(out / item.coco2014, out / f"cc_sbu_align/image/{image_id}.jpg")
    write_json(out / "cc_sbu_align/filter_cap.json", {"annotations": annotations})
    counts["cc_sbu_align/filter_cap.json"] = len(annotations)
    counts["cc_sbu_align/image"] = len(ids)


def write_locna(out: Path, items: list[Item], rng: random.Random, counts: dict[str, int]) -> None:
    """locna/narratives.jsonl in the Localized Narratives layout, over the train images (COCO 2017 ids)."""
    records = []
    for item in (i for i in items if i.split == "train"):
        annotator = rng.randint(1, 150)
        records.append({"dataset_id": "mscoco_train2017", "image_id": str(item.image_id), "annotator_id": annotator,
                        "caption": narrative(rng, item.scene), "timed_caption": [], "traces": [],
                        # the real file's naming; no audio is written (the real recordings are a separate download)
                        "voice_recording": f"coco_train/coco_train_{item.image_id}_{annotator}.ogg"})
    counts["locna/narratives.jsonl"] = write_jsonl(out / "locna/narratives.jsonl", records)


def write_advanced(out: Path, items: list[Item], rng: random.Random, counts: dict[str, int]) -> None:
    """advanced/manifest.jsonl: 25 test images per task (different images per task when there are enough)."""
    test = [item for item in items if item.split == "test"]
    if len(test) < ADVANCED_PER_TASK:
        raise ValueError(f"the advanced tasks need {ADVANCED_PER_TASK} test images, the world has {len(test)}")
    disjoint = len(test) >= ADVANCED_PER_TASK * len(ADVANCED_TASKS)
    pool = rng.sample(test, len(test))
    records, linked = [], {}
    for k, task in enumerate(ADVANCED_TASKS):
        chosen = pool[k * ADVANCED_PER_TASK : (k + 1) * ADVANCED_PER_TASK] if disjoint else rng.sample(
            test, ADVANCED_PER_TASK)
        records += [{"image": f"images/{item.file_name}", "image_id": item.image_id, "task": task} for item in chosen]
        linked.update((item.image_id, item) for item in chosen)
    for item in linked.values():
        link_or_copy(out / item.coco2014, out / "advanced/images" / item.file_name)
    counts["advanced/images"] = len(linked)
    counts["advanced/manifest.jsonl"] = write_jsonl(out / "advanced/manifest.jsonl", records)


def write_corpus(out: Path, n: int, rng: random.Random, counts: dict[str, int]) -> None:
    """text/corpus.jsonl: `n` text-only records ({"kind", "text"}), none tied to an image."""
    counts["text/corpus.jsonl"] = write_jsonl(out / "text/corpus.jsonl", (corpus_record(rng) for _ in range(n)))
