"""The smoke tasks: what colour is the shape? Data written on first use into the cache folder.

The dataset is a folder with `questions.json` and `images/*.png`; `--data-root` may point at any folder
in that layout. The generated copy is fixed (seed 0): a run's --seed draws subsets, it never changes data.
"""

from __future__ import annotations

import json
import os
import random
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from harness.metrics import MetricValue, proportion
from harness.task import ScoreContext, Task, TaskContext
from harness.types import ImageRef, Request, Response

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "yellow": (235, 220, 40),
    "purple": (140, 40, 170),
    "orange": (245, 140, 20),
}
QUESTIONS = (
    "What colour is the shape?",
    "What colour is the shape in this image?",
    "Look at the picture. Which colour does the shape in the middle of it have?",
    "Please tell me the colour of the object you can see in the centre of this small image.",
)
SHAPES = ("square", "circle")
DATA_VERSION = "1"


def build_smoke_dataset(root: Path, size: int) -> Path:
    """Write the dataset under `root` (atomically per file, so concurrent ranks cannot tear it)."""
    questions_path = root / "questions.json"
    if questions_path.exists():
        return root
    rng = random.Random(0)
    (root / "images").mkdir(parents=True, exist_ok=True)
    records = []
    names = sorted(PALETTE)
    for i in range(size):
        colour = rng.choice(names)
        others = rng.sample([n for n in names if n != colour], 3)
        choices = others + [colour]
        rng.shuffle(choices)
        image_name = f"images/{i:05d}.png"
        img = Image.new("RGB", (32, 32), (128, 128, 128))
        draw = ImageDraw.Draw(img)
        box = (8 + rng.randint(-2, 2), 8 + rng.randint(-2, 2), 24, 24)
        if rng.choice(SHAPES) == "square":
            draw.rectangle(box, fill=PALETTE[colour])
        else:
            draw.ellipse(box, fill=PALETTE[colour])
        _atomic_write(root / image_name, lambda fh, img=img: img.save(fh, format="PNG"))
        records.append({
            "sample_id": f"{i:05d}",
            "image": image_name,
            "question": rng.choice(QUESTIONS),
            "answer": colour,
            "choices": choices,
        })
    _atomic_write(questions_path, lambda fh: fh.write(json.dumps(records, indent=1).encode()))
    return root


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def first_colour(text: str) -> str | None:
    for word in re.findall(r"[a-z]+", text.lower()):
        if word in PALETTE:
            return word
    return None


class SmokeColours(Task):
    spec_name = "smoke_colours"

    def _root(self, ctx: TaskContext) -> Path:
        if ctx.data_root is not None:
            return Path(ctx.data_root)
        size = int(self.spec.dataset.get("size", 120))
        return build_smoke_dataset(ctx.cache_dir / "smoke_colours" / f"v{DATA_VERSION}-n{size}", size)

    def _records(self, ctx: TaskContext) -> tuple[Path, list[dict]]:
        root = self._root(ctx)
        path = root / "questions.json"
        try:
            records = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: cannot read smoke questions: {exc}") from exc
        for i, rec in enumerate(records):
            for key in ("sample_id", "image", "question", "answer", "choices"):
                if key not in rec:
                    raise ValueError(f"{path}: record {i}: missing field {key!r}")
        return root, records

    def requests(self, ctx: TaskContext) -> list[Request]:
        root, records = self._records(ctx)
        self._answers = {rec["sample_id"]: rec["answer"] for rec in records}
        choice_mode = self.mode == "score_choices"
        return [
            Request(
                task=self.name,
                sample_id=rec["sample_id"],
                prompt=self.spec.prompt.format(question=rec["question"]),
                image=ImageRef(source="smoke_colours", id=rec["image"], path=str(root / rec["image"])),
                settings=self.spec.generation,
                choices=tuple(rec["choices"]) if choice_mode else (),
            )
            for rec in records
        ]

    def prediction(self, request: Request, response: Response) -> str | None:
        return first_colour(response.text)

    def score(self, pairs: Sequence[tuple[Request, Response]],
              context: ScoreContext | None = None) -> list[MetricValue]:
        answers = getattr(self, "_answers", None)
        if answers is None:
            raise RuntimeError("score() called before requests(): the answers are not loaded")
        correct = sum(self.prediction(req, resp) == answers[req.sample_id] for req, resp in pairs)
        return [proportion("accuracy", correct, len(pairs))]


class SmokeColoursMC(SmokeColours):
    spec_name = "smoke_colours_mc"

    def prediction(self, request: Request, response: Response) -> str | None:
        scores = response.choice_logprobs
        if not scores:
            return None
        return request.choices[max(range(len(scores)), key=scores.__getitem__)]
