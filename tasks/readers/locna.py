"""Localized Narratives (Pont-Tuset et al. 2020), the paper's "LocNa" stage-2 variant.

A JSONL file, one narrative per line: {"dataset_id": "mscoco_val2017", "image_id": "137576",
"annotator_id": 93, "caption": "...", "timed_caption": [{"utterance", "start_time", "end_time"}, ...],
"traces": [[{"x", "y", "t"}, ...], ...], "voice_recording": "coco_val/coco_val_137576_93.ogg"}.
An image can have several narratives (one per annotator), so each line is its own record.

Errors name the line number, since that is what an editor or `sed -n` shows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tasks.readers._fields import Record, iter_jsonl, safe_stem


@dataclass(frozen=True)
class TimedUtterance:
    utterance: str
    start_time: float
    end_time: float


@dataclass(frozen=True)
class LocalizedNarrative:
    dataset_id: str
    image_id: str  # a string in every LN subset: "137576" (COCO), "0001eeaf4aed83f9" (Open Images)
    annotator_id: int
    caption: str
    image_path: Path  # see default_image_name; never opened here
    timed_caption: tuple[TimedUtterance, ...]
    voice_recording: str
    # The mouse traces are checked to be a list but not kept: they are large (hundreds of points per
    # narrative) and no evaluation or training recipe here uses them.

    @property
    def image_key(self) -> str:
        # COCO and Open Images ids could collide as bare strings; the subset name keeps them apart.
        return f"{self.dataset_id}/{self.image_id}"


def default_image_name(dataset_id: str, image_id: str) -> str:
    """COCO subsets use the 2017 file naming (12-digit zero-padded id); the others `{image_id}.jpg`."""
    if dataset_id.startswith("mscoco") and image_id.isdigit():
        return f"{int(image_id):012d}.jpg"
    return f"{image_id}.jpg"


def read_localized_narratives(
    path: str | Path,
    images_dir: str | Path,
    image_name: Callable[[str, str], str] = default_image_name,
) -> list[LocalizedNarrative]:
    """All narratives in file order; `image_name(dataset_id, image_id)` names the file in `images_dir`."""
    path = Path(path)
    return [_narrative(Record(obj, path, f"line {number}"), Path(images_dir), image_name)
            for number, obj in iter_jsonl(path)]


def _narrative(rec: Record, images_dir: Path, image_name: Callable[[str, str], str]) -> LocalizedNarrative:
    image_id = safe_stem(rec, "image_id", rec.text("image_id"))
    rec.name_by("image_id", image_id)
    dataset_id = rec.text("dataset_id")
    timed = []
    for i in range(len(rec.items("timed_caption"))):
        part = rec.entry("timed_caption", i)
        timed.append(TimedUtterance(part.text("utterance", allow_empty=True),
                                    part.number("start_time"), part.number("end_time")))
    rec.items("traces")
    return LocalizedNarrative(
        dataset_id=dataset_id,
        image_id=image_id,
        annotator_id=rec.integer("annotator_id"),
        caption=rec.text("caption"),
        image_path=images_dir / image_name(dataset_id, image_id),
        timed_caption=tuple(timed),
        voice_recording=rec.text("voice_recording"),
    )
