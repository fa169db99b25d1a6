"""MiniGPT-4's stage-2 data, the `cc_sbu_align` folder (paper section 3.2: ~3,500 curated pairs).

    cc_sbu_align/filter_cap.json   {"annotations": [{"image_id": "2", "caption": "..."}, ...]}
    cc_sbu_align/image/2.jpg

The quirk: image_id is a STRING, and it is the image's file stem. A number there means the file was
rewritten by some other tool, so it is an error rather than something to coerce.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tasks.readers._fields import load_json, numbered, safe_stem, top_level

ANNOTATION_FILE = "filter_cap.json"
IMAGE_DIR = "image"


@dataclass(frozen=True)
class CcSbuPair:
    image_id: str
    image_path: Path  # {root}/image/{image_id}.jpg; never opened here
    caption: str

    @property
    def image_key(self) -> str:
        return self.image_id


def read_cc_sbu_align(root: str | Path) -> list[CcSbuPair]:
    """The pairs in file order, from the dataset folder (the one holding filter_cap.json and image/)."""
    root = Path(root)
    path = root / ANNOTATION_FILE
    data = load_json(path)
    top_level(path, data, dict, "annotations")
    pairs, seen = [], set()
    for rec in numbered(path, data["annotations"]):
        image_id = safe_stem(rec, "image_id", rec.text("image_id"))
        rec.name_by("image_id", image_id)
        if image_id in seen:
            raise rec.error("image_id", "duplicate image id")
        seen.add(image_id)
        pairs.append(CcSbuPair(image_id, root / IMAGE_DIR / f"{image_id}.jpg", rec.text("caption")))
    return pairs
