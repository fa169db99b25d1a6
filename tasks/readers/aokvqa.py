"""A-OKVQA v1.0 question files: `aokvqa_v1p0_{train,val,test}.json`, a JSON list of questions.

Each question has question_id (str), image_id (int), question, four choices, difficult_direct_answer,
and, except in the test split, correct_choice_idx, ten direct_answers and rationales.

The quirk: image_id is a COCO 2017 id, and the image is `{coco_root}/{split}2017/{image_id:012d}.jpg`
(the 2017 file naming: twelve digits, no "COCO_val2014_" prefix), as in allenai/aokvqa's get_coco_path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tasks.readers._fields import Record, load_json, numbered, top_level
from tasks.readers.errors import DataError

SPLITS = ("train", "val", "test")
NUM_CHOICES = 4
NUM_DIRECT_ANSWERS = 10
# The fields the public test split leaves out (its answers are kept for the leaderboard).
ANSWER_FIELDS = ("correct_choice_idx", "direct_answers", "rationales")


@dataclass(frozen=True)
class AokvqaQuestion:
    question_id: str
    image_id: int  # COCO 2017 id
    image_path: Path  # {coco_root}/{split}2017/{image_id:012d}.jpg; never opened here
    question: str
    choices: tuple[str, ...]  # always four
    difficult_direct_answer: bool
    correct_choice_idx: int | None  # None in the test split
    direct_answers: tuple[str, ...] | None  # ten answers; None in the test split
    rationales: tuple[str, ...] | None  # None in the test split

    @property
    def image_key(self) -> str:
        return str(self.image_id)  # the COCO numbering, so the same image shares a key with the COCO readers

    @property
    def correct_choice(self) -> str | None:
        return None if self.correct_choice_idx is None else self.choices[self.correct_choice_idx]


def aokvqa_image_path(coco_root: str | Path, split: str, image_id: int) -> Path:
    return Path(coco_root) / f"{split}2017" / f"{image_id:012d}.jpg"


def read_aokvqa(path: str | Path, coco_root: str | Path, split: str | None = None) -> list[AokvqaQuestion]:
    """All questions, in file order. `split` defaults to the one in the file name (`aokvqa_v1p0_val.json`)."""
    path = Path(path)
    if split is None:
        match = re.fullmatch(r"aokvqa_v1p0_(\w+)\.json", path.name)
        if match is None:
            raise DataError(path, None, None, "cannot tell the split from the file name; pass split=")
        split = match.group(1)
    if split not in SPLITS:
        raise DataError(path, None, None, f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    data = load_json(path)
    top_level(path, data, list)
    questions, seen = [], set()
    for rec in numbered(path, data):
        question = _question(rec, coco_root, split)
        if question.question_id in seen:
            raise rec.error("question_id", "duplicate question id")
        seen.add(question.question_id)
        questions.append(question)
    return questions


def _question(rec: Record, coco_root: str | Path, split: str) -> AokvqaQuestion:
    question_id = rec.text("question_id")
    rec.name_by("question_id", question_id)
    image_id = rec.integer("image_id")
    choices = rec.texts("choices", length=NUM_CHOICES)
    idx: int | None = None
    direct_answers: tuple[str, ...] | None = None
    rationales: tuple[str, ...] | None = None
    # In train/val the answer fields are required; in test they are absent, but read them if present.
    if split != "test" or any(rec.has(key) for key in ANSWER_FIELDS):
        idx = rec.integer("correct_choice_idx")
        if not 0 <= idx < NUM_CHOICES:
            raise rec.error("correct_choice_idx", f"expected 0 to {NUM_CHOICES - 1}, got {idx}")
        direct_answers = rec.texts("direct_answers", length=NUM_DIRECT_ANSWERS)
        rationales = rec.texts("rationales")
    return AokvqaQuestion(
        question_id=question_id,
        image_id=image_id,
        image_path=aokvqa_image_path(coco_root, split, image_id),
        question=rec.text("question"),
        choices=choices,
        difficult_direct_answer=rec.boolean("difficult_direct_answer"),
        correct_choice_idx=idx,
        direct_answers=direct_answers,
        rationales=rationales,
    )
