"""GQA balanced question files: `{split}_balanced_questions.json` (e.g. testdev_balanced_questions.json).

The file is a JSON OBJECT keyed by question id, e.g. {"20968379": {"imageId": "n161313", "question": ...,
"answer": ..., "fullAnswer": ..., "types": {"structural", "semantic", "detailed"}, ...}}. Question ids are
numeric strings and are kept as strings: some start with zeros, which an int would lose. imageId is a
string too ("2354786" or "n161313"); the image is `{images_dir}/{imageId}.jpg`. Fields not used by any
evaluation here (semantic programs, annotations, entailed ...) are not read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tasks.readers._fields import Record, load_json, safe_stem, top_level
from tasks.readers.errors import DataError, record_label


@dataclass(frozen=True)
class GqaTypes:
    structural: str  # verify / query / choose / logical / compare
    semantic: str  # obj / attr / cat / rel / global
    detailed: str  # e.g. "relS", "existAttrC"


@dataclass(frozen=True)
class GqaQuestion:
    question_id: str
    image_id: str
    image_path: Path  # {images_dir}/{imageId}.jpg; never opened here
    question: str
    answer: str | None  # None only when read with require_answers=False and the file has none
    full_answer: str | None
    types: GqaTypes | None

    @property
    def image_key(self) -> str:
        return self.image_id


def read_gqa(path: str | Path, images_dir: str | Path, *, require_answers: bool = True) -> list[GqaQuestion]:
    """All questions in file order. The unlabelled test/challenge files need `require_answers=False`."""
    path = Path(path)
    data = load_json(path)
    top_level(path, data, dict)
    questions = []
    for position, (question_id, value) in enumerate(data.items()):
        if not (question_id.isascii() and question_id.isdigit()):
            label = record_label(position, "question_id", question_id)
            raise DataError(path, label, None, "expected a numeric string as question id")
        rec = Record(value, path, record_label(position, "question_id", question_id))
        questions.append(_question(rec, question_id, images_dir, require_answers))
    return questions


def _question(rec: Record, question_id: str, images_dir: str | Path, require_answers: bool) -> GqaQuestion:
    image_id = safe_stem(rec, "imageId", rec.text("imageId"))
    answer = full_answer = types = None
    if require_answers or rec.has("answer"):
        answer = rec.text("answer")
        full_answer = rec.text("fullAnswer")
    if require_answers or rec.has("types"):
        sub = rec.child("types")
        types = GqaTypes(sub.text("structural"), sub.text("semantic"), sub.text("detailed"))
    return GqaQuestion(
        question_id=question_id,
        image_id=image_id,
        image_path=Path(images_dir) / f"{image_id}.jpg",
        question=rec.text("question"),
        answer=answer,
        full_answer=full_answer,
        types=types,
    )
