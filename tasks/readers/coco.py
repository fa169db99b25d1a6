"""COCO 2014/2017 annotation files and the Karpathy split file.

- `captions_{split}{year}.json`: {"images": [{"id", "file_name", ...}], "annotations": [{"id", "image_id",
  "caption"}]} (no "categories").
- `instances_{split}{year}.json`: the same "images", plus "categories": [{"id", "name", ...}] and
  "annotations": [{"id", "image_id", "category_id", "bbox", ...}].
- Karpathy `dataset_coco.json`: {"images": [{"filepath", "filename", "cocoid", "split", "sentences":
  [{"raw", "tokens"}, ...]}, ...]}; the 5,000 "test" images are the usual COCO test set.

The annotation files go through pycocotools' `COCO` index (what CHAIR and pycocoevalcap expect), but only
after this module has checked the fields that index relies on: pycocotools itself fails on a bad file with
a bare KeyError or, worse, indexes it silently. Image ids are COCO's ints in both years; `image_key` is
their string form, shared with A-OKVQA (whose ids are COCO 2017 ids, the same numbering).
"""

from __future__ import annotations

import contextlib
import io
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pycocotools.coco import COCO

from tasks.readers._fields import load_json, numbered, safe_stem, top_level
from tasks.readers.errors import DataError

Kind = Literal["captions", "instances"]
KARPATHY_SPLITS = ("train", "val", "test", "restval")


@dataclass(frozen=True)
class CocoImage:
    image_id: int
    file_name: str
    path: Path  # image folder / file_name; never opened here
    captions: tuple[str, ...]  # in file order; empty when no captions file was given
    categories: frozenset[str]  # instance category names; empty when no instances file was given

    @property
    def image_key(self) -> str:
        return str(self.image_id)


@dataclass(frozen=True)
class KarpathyImage:
    cocoid: int
    filepath: str  # "train2014" / "val2014": the COCO 2014 folder the image is in
    filename: str
    path: Path  # coco_root / filepath / filename
    split: str  # one of KARPATHY_SPLITS
    captions: tuple[str, ...]  # the sentences' "raw" text
    tokens: tuple[tuple[str, ...], ...]  # the sentences' "tokens", parallel to captions

    @property
    def image_key(self) -> str:
        return str(self.cocoid)


def load_coco(annotation_file: str | Path, kind: Kind) -> COCO:
    """A pycocotools `COCO` index of a validated captions or instances file."""
    path = Path(annotation_file)
    data = load_json(path)
    top_level(path, data, dict, "images", "annotations", *(["categories"] if kind == "instances" else []))
    image_ids = _check_images(path, data["images"])
    category_ids = _check_categories(path, data["categories"]) if kind == "instances" else set()
    for rec in numbered(path, data["annotations"], unit="annotation"):
        rec.name_by("id", rec.integer("id"))
        if rec.integer("image_id") not in image_ids:
            raise rec.error("image_id", f"no image with id {rec.data['image_id']} in 'images'")
        if kind == "captions":
            rec.text("caption")
        elif rec.integer("category_id") not in category_ids:
            raise rec.error("category_id", f"no category with id {rec.data['category_id']} in 'categories'")
    coco = COCO()
    coco.dataset = data
    # createIndex prints progress lines to stdout, which would interleave with the harness's own output.
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _check_images(path: Path, images: list[Any]) -> set[int]:
    seen: set[int] = set()
    for rec in numbered(path, images, unit="image"):
        image_id = rec.integer("id")
        rec.name_by("id", image_id)
        safe_stem(rec, "file_name", rec.text("file_name"))
        if image_id in seen:
            raise rec.error("id", "duplicate image id")
        seen.add(image_id)
    return seen


def _check_categories(path: Path, categories: list[Any]) -> set[int]:
    seen: set[int] = set()
    for rec in numbered(path, categories, unit="category"):
        category_id = rec.integer("id")
        rec.name_by("id", category_id)
        rec.text("name")
        if category_id in seen:
            raise rec.error("id", "duplicate category id")
        seen.add(category_id)
    return seen


def read_coco(
    image_dir: str | Path, *, captions: str | Path | None = None, instances: str | Path | None = None
) -> list[CocoImage]:
    """One record per image, in the order of the file's "images" list.

    With both files the captions file decides which images there are (it may be a subset such as a
    Karpathy test file in COCO format), and each of them must be in the instances file too: an image
    missing there would silently get no ground-truth objects and inflate CHAIR's hallucination count.
    """
    if captions is None and instances is None:
        raise ValueError("read_coco needs a captions file, an instances file, or both")
    cap = load_coco(captions, "captions") if captions is not None else None
    ins = load_coco(instances, "instances") if instances is not None else None
    images = (cap if cap is not None else ins).dataset["images"]  # type: ignore[union-attr]
    records = []
    for img in images:
        image_id, file_name = img["id"], img["file_name"]
        names: frozenset[str] = frozenset()
        if ins is not None:
            other = ins.imgs.get(image_id)
            if other is None:
                raise DataError(instances, None, None, f"image id {image_id} from {captions} is not in 'images'")
            if other["file_name"] != file_name:
                raise DataError(instances, f"image id {image_id}", "file_name",
                                f"{other['file_name']!r} differs from {file_name!r} in {captions}")
            names = frozenset(ins.cats[a["category_id"]]["name"] for a in ins.imgToAnns.get(image_id, []))
        texts = tuple(a["caption"] for a in cap.imgToAnns.get(image_id, [])) if cap is not None else ()
        records.append(CocoImage(image_id, file_name, Path(image_dir) / file_name, texts, names))
    return records


def read_karpathy(split_file: str | Path, coco_root: str | Path) -> list[KarpathyImage]:
    """Every image of `dataset_coco.json`, in file order; paths are `coco_root/filepath/filename`."""
    path = Path(split_file)
    data = load_json(path)
    top_level(path, data, dict, "images")
    records, seen = [], set()
    for rec in numbered(path, data["images"], unit="image"):
        cocoid = rec.integer("cocoid")
        rec.name_by("cocoid", cocoid)
        if cocoid in seen:
            raise rec.error("cocoid", "duplicate cocoid")
        seen.add(cocoid)
        split = rec.text("split")
        if split not in KARPATHY_SPLITS:
            raise rec.error("split", f"expected one of {', '.join(KARPATHY_SPLITS)}, got {split!r}")
        filepath = safe_stem(rec, "filepath", rec.text("filepath"))
        filename = safe_stem(rec, "filename", rec.text("filename"))
        sentences = [rec.entry("sentences", i) for i in range(len(rec.items("sentences")))]
        if not sentences:
            raise rec.error("sentences", "expected at least one sentence, got an empty list")
        captions = tuple(s.text("raw") for s in sentences)
        tokens = tuple(s.texts("tokens") for s in sentences)
        path_ = Path(coco_root) / filepath / filename
        records.append(KarpathyImage(cocoid, filepath, filename, path_, split, captions, tokens))
    return records


def karpathy_test_images(images: list[KarpathyImage], n: int | None = None, seed: int = 0) -> list[KarpathyImage]:
    """The Karpathy "test" images (5,000 in the real file), or a seeded draw of `n` of them (Table 3's 100).

    Both are sorted by cocoid, and the draw is made from that sorted list, so it depends on the seed alone
    and not on the order of the file.
    """
    return karpathy_split_images(images, "test", n, seed)


def karpathy_split_images(images: list[KarpathyImage], split: str, n: int | None = None,
                          seed: int = 0) -> list[KarpathyImage]:
    """The images of one Karpathy split ("val": 5,000 held out from both training and the test split), sorted
    by cocoid, or a seeded draw of `n` of them, as `karpathy_test_images` draws."""
    if split not in KARPATHY_SPLITS:
        raise ValueError(f"unknown Karpathy split {split!r}; expected one of {KARPATHY_SPLITS}")
    chosen = sorted((img for img in images if img.split == split), key=lambda img: img.cocoid)
    if n is None:
        return chosen
    if not 0 <= n <= len(chosen):
        raise ValueError(f"cannot draw {n} images from the {len(chosen)} Karpathy {split} images")
    return sorted(random.Random(seed).sample(chosen, n), key=lambda img: img.cocoid)
