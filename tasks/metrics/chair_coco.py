"""CHAIR's COCO side: ground truth from annotation files (cached), captions files, and the CLI entry.

Ground truth of an image = the categories of its instance annotations (through the synonym table, as the
reference does) UNION the categories its reference captions mention (`Chair.caption_objects`, so the
mode's quirks apply to it too). Every image listed in any file gets an entry, possibly empty. The reference
builds it only for the images it scores; the per-image sets are the same.

Building it for COCO train+val 2014 means tokenising ~600k captions, so `load_ground_truth` caches the
result as JSON under `<cache>/chair/`, keyed by a digest of: a format version, the mode, the synonym file's
sha256, and each annotation file's resolved path, size and mtime (a changed file means a new key). Writes
go to a temporary file that is renamed into place, so an interrupted run never leaves a torn cache entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.readers._fields import Record, iter_jsonl, load_json, read_text, top_level
from tasks.readers.coco import load_coco
from tasks.readers.errors import DataError, describe

if TYPE_CHECKING:
    from tasks.metrics.chair import Chair

CACHE_FORMAT = 1  # bump whenever the pipeline changes what a cached ground truth would contain


def build_ground_truth(chair: Chair, instances: Iterable[Mapping[str, Any]],
                       captions: Iterable[Mapping[str, Any]]) -> dict[Any, frozenset[str]]:
    """Per-image ground truth from parsed COCO dicts (any number of instances and captions datasets)."""
    objects: dict[Any, set[str]] = {}
    category_of = chair.rules.category_of
    for dataset in instances:
        names = {cat["id"]: cat["name"] for cat in dataset["categories"]}
        for image in dataset.get("images", ()):
            objects.setdefault(image["id"], set())
        for ann in dataset["annotations"]:
            name = names[ann["category_id"]]
            if name not in category_of:
                raise ValueError(f"instance category {name!r} is not in the CHAIR synonym list")
            objects.setdefault(ann["image_id"], set()).add(category_of[name])
    for dataset in captions:
        for image in dataset.get("images", ()):
            objects.setdefault(image["id"], set())
        for ann in dataset["annotations"]:
            objects.setdefault(ann["image_id"], set()).update(chair.caption_objects(ann["caption"]).categories)
    return {image_id: frozenset(found) for image_id, found in objects.items()}


def _kind(path: Path) -> str:
    for kind in ("instances", "captions"):
        if path.name.startswith(kind):
            return kind
    raise DataError(path, None, None, "cannot tell an instances file from a captions file: "
                                      "name it instances_*.json or captions_*.json")


def _cache_key(chair: Chair, files: list[Path]) -> str:
    parts: list[Any] = [CACHE_FORMAT, chair.mode, hashlib.sha256(_synonyms_bytes()).hexdigest()]
    for path in sorted(files, key=lambda p: str(p.resolve())):
        stat = path.stat()
        parts.append([_kind(path), str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def _synonyms_bytes() -> bytes:
    from tasks.metrics.chair import SYNONYMS_FILE

    return SYNONYMS_FILE.read_bytes()


def load_ground_truth(chair: Chair, files: list[Path], cache_dir: str | Path | None,
                      use_cache: bool) -> tuple[dict[Any, frozenset[str]], Path | None, bool]:
    """(ground truth, cache file or None, whether it came from the cache) for COCO annotation files."""
    if not files:
        raise ValueError("CHAIR needs at least one COCO annotation file")
    for path in files:
        if not path.is_file():
            raise DataError(path, None, None, "no such file")
        _kind(path)
    cache_path = None
    if use_cache:
        if cache_dir is None:
            from harness.config import default_cache_dir

            cache_dir = default_cache_dir()
        cache_path = Path(cache_dir) / "chair" / f"ground_truth-{chair.mode}-{_cache_key(chair, files)}.json"
        if cache_path.is_file():
            stored = json.loads(cache_path.read_text(encoding="utf-8"))
            return {int(k): frozenset(v) for k, v in stored["ground_truth"].items()}, cache_path, True
    indexes = {kind: [load_coco(p, kind).dataset for p in files if _kind(p) == kind]  # type: ignore[arg-type]
               for kind in ("instances", "captions")}
    ground_truth = build_ground_truth(chair, indexes["instances"], indexes["captions"])
    if cache_path is not None:
        _write_atomically(cache_path, {
            "format": CACHE_FORMAT, "mode": chair.mode, "files": [str(p) for p in files],
            "ground_truth": {str(k): sorted(v) for k, v in sorted(ground_truth.items())},
        })
    return ground_truth, cache_path, False


def _write_atomically(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def find_annotation_files(coco_dir: Path) -> list[Path]:
    """instances_*.json and captions_*.json in `coco_dir`, or in `coco_dir/annotations`."""
    if not coco_dir.is_dir():
        raise DataError(coco_dir, None, None, "not a directory")
    for folder in (coco_dir, coco_dir / "annotations"):
        instances = sorted(folder.glob("instances_*.json"))
        captions = sorted(folder.glob("captions_*.json"))
        if instances or captions:
            if not instances or not captions:
                missing = "instances_*.json" if not instances else "captions_*.json"
                raise DataError(folder, None, None, f"CHAIR needs both instances_*.json and captions_*.json "
                                                    f"files; found no {missing}")
            return instances + captions
    raise DataError(coco_dir, None, None, "no instances_*.json / captions_*.json files here or in annotations/")


def read_captions_file(path: Path) -> list[dict[str, Any]]:
    """[{"image_id": int, "caption": str, "index": position}] from a JSON list or a JSONL file."""
    text = read_text(path)
    if text.lstrip().startswith("["):
        data = load_json(path)
        top_level(path, data, list)
        records = [(f"record {i}", item) for i, item in enumerate(data)]
    else:
        records = [(f"line {number}", item) for number, item in iter_jsonl(path)]
    if not records:
        raise DataError(path, None, None, "no captions in the file")
    out = []
    for label, item in records:
        rec = Record(item, path, label)
        image_id = rec.get("image_id")
        if isinstance(image_id, str) and image_id.strip().isdigit():
            image_id = int(image_id)
        if not isinstance(image_id, int) or isinstance(image_id, bool):
            raise rec.error("image_id", f"expected a COCO image id (an integer), got {describe(image_id)}")
        rec.name_by("image_id", image_id)
        out.append({"image_id": image_id, "caption": rec.text("caption", allow_empty=True), "label": rec.label})
    return out


def run_cli(captions_file: Path, coco_dir: Path, mode: str, cache_dir: str | Path | None) -> dict[str, Any]:
    from tasks.metrics.chair import Chair

    records = read_captions_file(captions_file)
    files = find_annotation_files(coco_dir)
    chair = Chair.from_coco(files, mode=mode, cache_dir=cache_dir)
    for rec in records:
        if rec["image_id"] not in chair.ground_truth:
            raise DataError(captions_file, rec["label"], "image_id",
                            f"image {rec['image_id']} is in none of the annotation files in {coco_dir}")
    result = chair.compute(records)
    captions = []
    for rec, detail in zip(records, result.details, strict=True):
        entry = detail.to_dict(result.suffix)
        entry["record"] = rec["label"]
        captions.append(entry)
    return {
        "metric": "chair", "mode": mode, "captions_file": str(captions_file),
        "annotation_files": [str(p) for p in files], "ground_truth_cache": str(chair.cache_path or ""),
        "metrics": result.metrics(), "captions": captions,
    }
