"""CHAIR object hallucination (Rohrbach et al. 2018), reproducing the reference implementation exactly.

Reference: LisaAnne/Hallucination `utils/chair.py` at 6e4d33c (2019-03-29), with its requirements.txt
(nltk==3.2.5, pattern==3.6) and `data/synonyms.txt` (shipped here as `chair_synonyms.txt`, unchanged).

How a caption becomes object mentions (`Chair.caption_objects`, the reference's `caption_to_words`):

1. lower-case; `nltk.word_tokenize` (offline equivalent: `chair_tokenize`); every token singularised with
   `pattern.en.singularize` (re-implemented: `chair_singular`);
2. left to right, a PAIR of tokens found in the phrase table is replaced by one token: the 29 "double
   words" (each maps to itself, e.g. "hot dog", "teddy bear", "stop sign"; "home plate" and "train track"
   are no objects, so they just hide "plate"/"train"), "baby"/"adult" + bird/cat/dog/horse/sheep/cow/
   elephant/bear/zebra/giraffe/animal/cub -> the animal (so no "person" for "baby"), "passenger jet/train"
   -> jet/train, "bow tie" -> "tie", "toilet seat" -> "toilet", "wine glas" -> "wine glass";
3. if "toilet" and "seat" are both among the tokens, every "seat" is dropped (the seat is the toilet's);
4. each remaining token that is a synonym entry is a mention of its line's first word (the category);
   every occurrence counts.

Ground truth of an image = its COCO instance categories UNION the categories its reference captions
mention (same pipeline, quirks included). CHAIRi = hallucinated mentions / all mentions, pooled over the
file; CHAIRs = captions with >= 1 hallucinated mention / captions. Not in the reference, defined here:
recall = sum over captions of |mentioned categories & ground truth| / sum of |ground truth| (pooled, as
OPERA computes it); mean length = mean number of whitespace-separated words per caption.

Quirks of the reference, reproduced by mode="reference" and fixed by mode="fixed":

- " motor bike" and " cheesecake" start with a space (the file has ",  " twice) and never match. Worse,
  "motor bike" IS merged into one token in step 2, so "a motor bike" mentions nothing at all - not even
  "bike" (bicycle). "iPhone" has a capital letter and never matches lower-cased text.
- pattern's singulariser: "bus" -> "bu", "minibus" -> "minibu", "airbus" -> "airbu", so the singular
  never matches while "buses" -> "bus" does; plurals that never match: "ties" -> "ty" ("bow ties" is found
  as "bow" -> tie), "canoes" -> "cano", "magpies" -> "magpy", "thieves" -> "thieve", "doggies"/"collies"
  unchanged. ("tennis" -> "tenni" and "sports" -> "sport" break the phrases "tennis racket" and "sports
  ball", but "racket" and "ball" are synonyms of the same categories, so the counts do not change.)
- "stove top oven" is a three-word entry, but only pairs are merged: it counts as two oven mentions
  ("stove", "oven"). "dining table" is not in the phrase table (found through "table": same count).

Also: an image with no annotations has an empty ground truth (all its mentions are hallucinations), and
CHAIRi of a file without any mention is 0/0, which crashes the reference and is reported as 0.0 here.

mode="fixed" strips and lower-cases every synonym entry, merges every multi-word entry (three-word ones
included; phrases are matched on singularised tokens, longest first) plus the reference's other phrase
rules, and singularises with `singularize_fixed`. Its metrics carry a "_fixed" suffix (CHAIRi_fixed, ...)
so they can never be confused with the reference's numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from tasks.metrics.chair_singular import singularize, singularize_fixed
from tasks.metrics.chair_tokenize import word_tokenize

MODES = ("reference", "fixed")
SYNONYMS_FILE = Path(__file__).with_name("chair_synonyms.txt")

# The reference's hard-coded phrase rules (step 2), in its order: later entries overwrite earlier ones.
DOUBLE_WORDS = (
    "motor bike", "motor cycle", "air plane", "traffic light", "street light", "traffic signal", "stop light",
    "fire hydrant", "stop sign", "parking meter", "suit case", "sports ball", "baseball bat", "baseball glove",
    "tennis racket", "wine glass", "hot dog", "cell phone", "mobile phone", "teddy bear", "hair drier",
    "potted plant", "bow tie", "laptop computer", "stove top oven", "hot dog", "teddy bear", "home plate",
    "train track",
)
ANIMAL_WORDS = ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "animal", "cub")
VEHICLE_WORDS = ("jet", "train")
EXTRA_PHRASES = (("bow tie", "tie"), ("toilet seat", "toilet"), ("wine glas", "wine glass"))


def parse_synonyms(text: str) -> list[list[str]]:
    """The synonym lines as the reference reads them: `line.strip().split(", ")`, nothing else."""
    return [line.strip().split(", ") for line in text.splitlines()]


def _phrase_rules() -> dict[str, str]:
    rules = {phrase: phrase for phrase in DOUBLE_WORDS}
    for animal in ANIMAL_WORDS:
        rules[f"baby {animal}"] = animal
        rules[f"adult {animal}"] = animal
    for vehicle in VEHICLE_WORDS:
        rules[f"passenger {vehicle}"] = vehicle
    rules.update(EXTRA_PHRASES)
    return rules


@dataclass(frozen=True)
class _Rules:
    """Everything `caption_objects` needs for one mode."""

    category_of: dict[str, str]  # synonym entry -> category
    phrases: dict[tuple[str, ...], str]  # singularised tokens -> the token that replaces them
    lengths: tuple[int, ...]  # phrase lengths, longest first
    singularize: Callable[[str], str]


def build_rules(mode: str, synonyms_text: str | None = None) -> _Rules:
    if mode not in MODES:
        raise ValueError(f"unknown CHAIR mode {mode!r}; choose one of {MODES}")
    text = SYNONYMS_FILE.read_text(encoding="utf-8") if synonyms_text is None else synonyms_text
    lines = parse_synonyms(text)
    if mode == "reference":
        category_of = {entry: line[0] for line in lines for entry in line}
        phrases = {tuple(key.split(" ")): value for key, value in _phrase_rules().items()}
        return _Rules(category_of, phrases, (2,), singularize)
    clean = [[entry.strip().lower() for entry in line] for line in lines]
    category_of = {entry: line[0] for line in clean for entry in line if entry}
    targets = {entry: entry for entry in category_of if " " in entry}
    targets.update((key, value) for key, value in _phrase_rules().items() if key != "wine glas")
    phrases = {tuple(singularize_fixed(w) for w in key.split()): value for key, value in targets.items()}
    return _Rules(category_of, phrases, tuple(sorted({len(k) for k in phrases}, reverse=True)), singularize_fixed)


class CaptionObjects(NamedTuple):
    """What the reference's `caption_to_words` returns: the mentioned synonym words, their categories (same
    length and order, duplicates kept), and all tokens after phrase merging (before the toilet/seat rule,
    as the reference's fourth output)."""

    words: list[str]
    categories: list[str]
    tokens: list[str]


@dataclass(frozen=True)
class CaptionDetail:
    index: int  # position in the captions given to `compute`
    image_id: Any
    words: tuple[str, ...]  # mentioned synonym words, in caption order
    mentioned: tuple[str, ...]  # their categories
    hallucinated: tuple[tuple[str, str], ...]  # (word, category) of each mention not in the ground truth
    ground_truth: tuple[str, ...]  # sorted
    length: int  # whitespace-separated words

    @property
    def chair_s(self) -> int:
        return int(bool(self.hallucinated))

    @property
    def chair_i(self) -> float:
        return len(self.hallucinated) / len(self.words) if self.words else 0.0

    @property
    def recalled(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.mentioned) & set(self.ground_truth)))

    def to_dict(self, suffix: str = "") -> dict[str, Any]:
        return {
            "index": self.index, "image_id": self.image_id, "words": list(self.words),
            "mentioned": list(self.mentioned), "hallucinated": [list(pair) for pair in self.hallucinated],
            "ground_truth": list(self.ground_truth), f"CHAIRs{suffix}": self.chair_s,
            f"CHAIRi{suffix}": self.chair_i, "length": self.length,
        }


@dataclass(frozen=True)
class ChairResult:
    mode: str
    chair_i: float
    chair_s: float
    recall: float
    mean_length: float
    n_captions: int
    n_mentions: int
    n_hallucinated_mentions: int
    n_hallucinated_captions: int
    n_ground_truth: int
    n_recalled: int
    details: tuple[CaptionDetail, ...]

    @property
    def suffix(self) -> str:
        return "" if self.mode == "reference" else f"_{self.mode}"

    def metrics(self) -> dict[str, float | int]:
        """Named numbers; the mode-dependent ones carry "_fixed" in fixed mode."""
        sfx = self.suffix
        return {
            f"CHAIRi{sfx}": self.chair_i, f"CHAIRs{sfx}": self.chair_s, f"recall{sfx}": self.recall,
            "mean_length_words": self.mean_length, "n_captions": self.n_captions,
            f"n_mentions{sfx}": self.n_mentions, f"n_hallucinated_mentions{sfx}": self.n_hallucinated_mentions,
            f"n_hallucinated_captions{sfx}": self.n_hallucinated_captions,
            f"n_ground_truth{sfx}": self.n_ground_truth, f"n_recalled{sfx}": self.n_recalled,
        }

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "metrics": self.metrics(),
                "captions": [d.to_dict(self.suffix) for d in self.details]}


class Chair:
    """CHAIR over fixed ground truth: `Chair(ground_truth, mode)`, or `from_annotations` / `from_coco`."""

    def __init__(self, ground_truth: Mapping[Any, Iterable[str]], mode: str = "reference") -> None:
        self.mode = mode
        self.rules = build_rules(mode)
        self.ground_truth: dict[Any, frozenset[str]] = {k: frozenset(v) for k, v in ground_truth.items()}
        self.cache_path: Path | None = None  # set by from_coco
        self.from_cache = False

    def caption_objects(self, caption: str) -> CaptionObjects:
        rules = self.rules
        tokens = [rules.singularize(word) for word in word_tokenize(caption.lower())]
        merged: list[str] = []
        i = 0
        while i < len(tokens):
            for n in rules.lengths:
                replacement = rules.phrases.get(tuple(tokens[i:i + n])) if i + n <= len(tokens) else None
                if replacement is not None:
                    merged.append(replacement)
                    i += n
                    break
            else:
                merged.append(tokens[i])
                i += 1
        kept = merged
        if "toilet" in merged and "seat" in merged:
            kept = [token for token in merged if token != "seat"]
        words = [token for token in kept if token in rules.category_of]
        return CaptionObjects(words, [rules.category_of[w] for w in words], merged)

    def compute(self, captions: Iterable[Mapping[str, Any]]) -> ChairResult:
        """CHAIR over `captions`, each {"image_id", "caption"}; every image_id must have ground truth."""
        details = []
        for index, record in enumerate(captions):
            for key in ("image_id", "caption"):
                if key not in record:
                    raise ValueError(f"captions[{index}]: missing field {key!r}")
            image_id, caption = record["image_id"], record["caption"]
            if not isinstance(caption, str):
                raise ValueError(f"captions[{index}]: field 'caption' must be a string, got {type(caption).__name__}")
            if image_id not in self.ground_truth:
                raise ValueError(f"captions[{index}]: image_id {image_id!r} has no ground truth "
                                 "(it is in none of the annotation files)")
            gt = self.ground_truth[image_id]
            words, categories, _ = self.caption_objects(caption)
            hallucinated = tuple((w, c) for w, c in zip(words, categories, strict=True) if c not in gt)
            details.append(CaptionDetail(index, image_id, tuple(words), tuple(categories), hallucinated,
                                         tuple(sorted(gt)), len(caption.split())))
        if not details:
            raise ValueError("CHAIR needs at least one caption")
        return summarize(self.mode, details)

    @classmethod
    def from_annotations(cls, instances: Iterable[Mapping[str, Any]], captions: Iterable[Mapping[str, Any]],
                         mode: str = "reference") -> Chair:
        """From COCO-format dicts (the parsed instances_*.json and captions_*.json contents)."""
        from tasks.metrics.chair_coco import build_ground_truth

        chair = cls({}, mode)
        chair.ground_truth = build_ground_truth(chair, instances, captions)
        return chair

    @classmethod
    def from_coco(cls, annotation_files: Iterable[str | Path], mode: str = "reference",
                  cache_dir: str | Path | None = None, use_cache: bool = True) -> Chair:
        """From COCO annotation files (instances_*.json and captions_*.json, any number of each), with the
        ground truth cached under `cache_dir` (default: the mgbench cache folder, `chair/`)."""
        from tasks.metrics.chair_coco import load_ground_truth

        chair = cls({}, mode)
        chair.ground_truth, chair.cache_path, chair.from_cache = load_ground_truth(
            chair, [Path(f) for f in annotation_files], cache_dir, use_cache)
        return chair


def summarize(mode: str, details: list[CaptionDetail]) -> ChairResult:
    n_mentions = sum(len(d.words) for d in details)
    n_hallucinated = sum(len(d.hallucinated) for d in details)
    n_gt = sum(len(d.ground_truth) for d in details)
    n_recalled = sum(len(d.recalled) for d in details)
    return ChairResult(
        mode=mode,
        chair_i=n_hallucinated / n_mentions if n_mentions else 0.0,
        chair_s=sum(d.chair_s for d in details) / len(details),
        recall=n_recalled / n_gt if n_gt else 0.0,
        mean_length=sum(d.length for d in details) / len(details),
        n_captions=len(details), n_mentions=n_mentions, n_hallucinated_mentions=n_hallucinated,
        n_hallucinated_captions=sum(d.chair_s for d in details), n_ground_truth=n_gt, n_recalled=n_recalled,
        details=tuple(details),
    )


def chair_cli(captions_file: str | Path, coco_dir: str | Path, mode: str = "reference",
              cache_dir: str | Path | None = None) -> dict[str, Any]:
    """`mgbench metric chair --captions FILE --coco DIR`: metrics and per-caption objects as one JSON-able dict.

    FILE is a JSON list or JSONL of {"image_id", "caption"}; DIR holds instances_*.json and captions_*.json
    (a COCO root whose annotations/ folder holds them works too)."""
    from tasks.metrics.chair_coco import run_cli

    return run_cli(Path(captions_file), Path(coco_dir), mode, cache_dir)
