"""The advanced-task manifest (paper Table 1: 25 images for each of meme, recipe, ad and poem).

Either JSONL, one {"image": "memes/01.jpg", "task": "meme"} per line, or CSV with a header row holding
(at least) the columns `image` and `task`. The format is chosen by the suffix (.jsonl / .csv). Relative
image paths resolve against the manifest's folder, so a manifest and its images move together.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tasks.readers._fields import Record, iter_jsonl, read_text
from tasks.readers.errors import DataError

TASKS = ("meme", "recipe", "ad", "poem")
COLUMNS = ("image", "task")


@dataclass(frozen=True)
class AdvancedItem:
    image: str  # the path as written in the manifest: the stable image id
    image_path: Path  # resolved against the manifest's folder; never opened here
    task: str  # one of TASKS

    @property
    def image_key(self) -> str:
        return self.image


def read_advanced_manifest(path: str | Path) -> list[AdvancedItem]:
    """All (image, task) items in file order. The same image may serve two tasks, but not one task twice."""
    path = Path(path)
    rows = {".jsonl": _jsonl_rows, ".csv": _csv_rows}.get(path.suffix.lower())
    if rows is None:
        raise DataError(path, None, None, f"unknown manifest format {path.suffix!r}; expected .jsonl or .csv")
    items, seen = [], set()
    for rec in rows(path):
        image = rec.text("image")
        rec.name_by("image", image)
        task = rec.text("task")
        if task not in TASKS:
            raise rec.error("task", f"expected one of {', '.join(TASKS)}, got {task!r}")
        if (image, task) in seen:
            raise rec.error("task", f"image {image!r} already has task {task!r}")
        seen.add((image, task))
        items.append(AdvancedItem(image, path.parent / image, task))
    return items


def _jsonl_rows(path: Path) -> Iterator[Record]:
    for number, obj in iter_jsonl(path):
        yield Record(obj, path, f"line {number}")


def _csv_rows(path: Path) -> Iterator[Record]:
    # read_text decodes strictly as UTF-8; a byte-order mark (spreadsheet exports) is dropped first.
    lines = read_text(path).removeprefix("\ufeff").splitlines(keepends=True)
    reader = csv.DictReader(lines, strict=True)
    try:
        header = reader.fieldnames or []
        for column in COLUMNS:
            if column not in header:
                raise DataError(path, None, column, f"missing column in header {header}")
        for row in reader:  # DictReader itself skips blank lines
            # A short row gets None for its absent cells: drop them so they are reported as missing.
            # Cells beyond the header land under the key None and are ignored like unknown columns.
            cells = {k: v for k, v in row.items() if k is not None and v is not None}
            yield Record(cells, path, f"line {reader.line_num}")
    except csv.Error as exc:
        raise DataError(path, f"line {reader.line_num}", None, f"invalid CSV: {exc}") from exc
