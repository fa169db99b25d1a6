"""VQA-style accuracies: A-OKVQA (multiple choice and direct answer), GQA exact match, VQA v2 normalisation.

Reference behaviour matched (read from the scripts themselves):

- A-OKVQA, allenai/aokvqa `evaluation/eval_predictions.py` at 42e8c44 (2022-08-11, "Correction"). The file
  maps question_id -> {"multiple_choice": str, "direct_answer": str}; each metric is computed only when at
  least one entry has its key, and with strict=False: a question without a prediction scores 0 (it is NOT
  dropped), an MC prediction that is not one of the choices is simply wrong, predictions for unknown ids
  are ignored. MC = mean over ALL questions of (prediction == choices[correct_choice_idx]); DA = mean over
  questions with difficult_direct_answer false of min(1, #exact matches among the 10 answers / 3); no
  normalisation anywhere. Result x100. (Before 42e8c44 the difficult filter was applied to MC instead.)
- GQA, official `eval.py` (v1.2): predictions [{"questionId", "prediction"}], a missing prediction for a
  balanced question raises, accuracy = mean of (prediction == answer) with no normalisation; binary/open
  accuracies split on types.structural == "query". Not reproduced: validity, plausibility, consistency,
  distribution and grounding (they need the choices/scene-graph files), and the `isBalanced` filter (the
  reader does not keep it: score the *_balanced_questions.json files, where every question is balanced).
  LLaVA (scripts/convert_gqa_for_eval.py) rewrites each prediction as `text.rstrip('.').lower()` - every
  trailing period, no whitespace strip - then runs eval.py. LAVIS (lavis/tasks/vqa.py GQATask, since
  71a2da9, 2023-12) applies processPunctuation + processDigitArticle to prediction AND answer.
- VQA v2 normalisation: processPunctuation / processDigitArticle are the same functions in LAVIS's copy
  (lavis/common/vqa_tools/vqa_eval.py) and in GT-Vision-Lab/VQA vqaEval.py; what differs is WHO gets them:
    lavis    (= GT-Vision-Lab before a013f00): the prediction always gets whitespace cleanup + punctuation +
             digit/article; the 10 answers get punctuation ONLY (no lower-casing, no articles, no number
             words), and only when they are not all identical.
    vqa2021  (a013f00, 2021-03-11 "Fixed processing answers bug"): answers and prediction all get the
             whitespace cleanup; when the answers are not all identical, both sides get punctuation +
             digit/article; when they are all identical, NEITHER side is normalised further.
  So with answers 8x"A dog" 2x"dog" and prediction "a dog": lavis 0.6, vqa2021 1.0; with answers 10x"2"
  and prediction "two": lavis 1.0, vqa2021 0.0. Quirks kept from both: the period regex's intended
  look-behind is written `(?!<=\\d)` (a look-ahead that never fires), and `re.UNICODE` is passed as the
  `count` argument, so at most 32 periods are removed; contraction keys with capitals ("Im", "Ive", ...)
  never match because words are lower-cased first; "somebody'd" maps to "somebodyd".
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from tasks.readers._fields import Record, load_json, numbered, top_level
from tasks.readers.aokvqa import AokvqaQuestion, read_aokvqa
from tasks.readers.errors import DataError, describe, record_label
from tasks.readers.gqa import GqaQuestion, read_gqa

Version = Literal["lavis", "vqa2021"]
GqaNormalize = Literal["none", "llava", "lavis"]
GQA_NORMALIZATIONS: dict[str, str] = {
    "none": "exact string match, as the official GQA eval.py v1.2",
    "llava": "prediction.rstrip('.').lower() == answer, as LLaVA's convert_gqa_for_eval.py + eval.py",
    "lavis": "VQA processPunctuation + processDigitArticle on both sides, as LAVIS GQATask",
}
DA_FULL_CREDIT = 3  # matching direct answers needed for full credit (A-OKVQA DA and VQA v2)

# ---------------------------------------------------------------- VQA v2 normalisation (shared helpers)
_CONTRACTIONS = dict(pair.split(":", 1) for pair in (
    "aint:ain't arent:aren't cant:can't couldve:could've couldnt:couldn't couldn'tve:couldn't've "
    "couldnt've:couldn't've didnt:didn't doesnt:doesn't dont:don't hadnt:hadn't hadnt've:hadn't've "
    "hadn'tve:hadn't've hasnt:hasn't havent:haven't hed:he'd hed've:he'd've he'dve:he'd've hes:he's howd:how'd "
    "howll:how'll hows:how's Id've:I'd've I'dve:I'd've Im:I'm Ive:I've isnt:isn't itd:it'd itd've:it'd've "
    "it'dve:it'd've itll:it'll let's:let's maam:ma'am mightnt:mightn't mightnt've:mightn't've "
    "mightn'tve:mightn't've mightve:might've mustnt:mustn't mustve:must've neednt:needn't notve:not've "
    "oclock:o'clock oughtnt:oughtn't ow's'at:'ow's'at 'ows'at:'ow's'at 'ow'sat:'ow's'at shant:shan't "
    "shed've:she'd've she'dve:she'd've she's:she's shouldve:should've shouldnt:shouldn't shouldnt've:shouldn't've "
    "shouldn'tve:shouldn't've somebody'd:somebodyd somebodyd've:somebody'd've somebody'dve:somebody'd've "
    "somebodyll:somebody'll somebodys:somebody's someoned:someone'd someoned've:someone'd've "
    "someone'dve:someone'd've someonell:someone'll someones:someone's somethingd:something'd "
    "somethingd've:something'd've something'dve:something'd've somethingll:something'll thats:that's "
    "thered:there'd thered've:there'd've there'dve:there'd've therere:there're theres:there's theyd:they'd "
    "theyd've:they'd've they'dve:they'd've theyll:they'll theyre:they're theyve:they've twas:'twas "
    "wasnt:wasn't wed've:we'd've we'dve:we'd've weve:we've werent:weren't whatll:what'll whatre:what're "
    "whats:what's whatve:what've whens:when's whered:where'd wheres:where's whereve:where've whod:who'd "
    "whod've:who'd've who'dve:who'd've wholl:who'll whos:who's whove:who've whyll:why'll whyre:why're "
    "whys:why's wont:won't wouldve:would've wouldnt:wouldn't wouldnt've:wouldn't've wouldn'tve:wouldn't've "
    "yall:y'all yall'll:y'all'll y'allll:y'all'll yall'd've:y'all'd've y'alld've:y'all'd've "
    "y'all'dve:y'all'd've youd:you'd youd've:you'd've you'dve:you'd've youll:you'll youre:you're youve:you've"
).split())
_NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
            "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = frozenset({"a", "an", "the"})
_PUNCT = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
_DIGIT_COMMA_DIGIT = re.compile(r"\d,\d")
_PERIOD = re.compile(r"\.(?!\d)")  # the reference's "(?!<=\d)" prefix is a no-op look-ahead
_PERIOD_COUNT = int(re.UNICODE)  # the reference passes re.UNICODE (32) where `count` goes


def process_punctuation(text: str) -> str:
    """VQA processPunctuation: drop (or space out) the punctuation marks, then strip periods."""
    drop_all = _DIGIT_COMMA_DIGIT.search(text) is not None
    out = text
    for p in _PUNCT:  # the test looks at the ORIGINAL text, the replacement works on the running one
        out = out.replace(p, "" if drop_all or p + " " in text or " " + p in text else " ")
    return _PERIOD.sub("", out, count=_PERIOD_COUNT)


def process_digit_article(text: str) -> str:
    """VQA processDigitArticle: lower-case, number words to digits, drop articles, add apostrophes."""
    words = [_NUMBERS.get(w, w) for w in text.lower().split()]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES)


def _clean_space(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def vqa_normalize(answer: str, version: Version, role: Literal["prediction", "reference"] = "prediction",
                  references_agree: bool = False) -> str:
    """What the named VQA evaluator does to `answer` before comparing (see the module docstring).

    `role` says whether `answer` is the model's prediction or one of the ten human answers, and
    `references_agree` whether all ten human answers of the question are the same string (both evaluators
    switch on that). The per-string functions are identical in both versions; only their use differs.
    """
    if version == "vqa2021":
        answer = _clean_space(answer)
        return answer if references_agree else process_digit_article(process_punctuation(answer))
    if version != "lavis":
        raise ValueError(f"version must be 'lavis' or 'vqa2021', got {version!r}")
    if role == "prediction":
        return process_digit_article(process_punctuation(_clean_space(answer)))
    return answer if references_agree else process_punctuation(answer)


def vqa_accuracy(prediction: str, references: list[str], version: Version) -> float:
    """VQA v2 accuracy of one answer: mean over the references of min(1, matches among the others / 3)."""
    if not references:
        raise ValueError("no reference answers")
    agree = len({_clean_space(r) if version == "vqa2021" else r for r in references}) == 1
    pred = vqa_normalize(prediction, version, "prediction", agree)
    refs = [vqa_normalize(r, version, "reference", agree) for r in references]
    credits = [min(1.0, sum(pred == o for j, o in enumerate(refs) if j != i) / DA_FULL_CREDIT)
               for i in range(len(refs))]
    return sum(credits) / len(credits)


# ---------------------------------------------------------------- A-OKVQA
def aokvqa_scores(questions: list[AokvqaQuestion], predictions: dict[str, dict[str, str]],
                  *, per_question: bool = False) -> dict[str, Any]:
    """MC and DA accuracy (percent, as the official script prints) with k/n counts for intervals.

    DA's k is the sum of per-question credits (multiples of 1/3), not a count of right answers.
    """
    unanswered = [q.question_id for q in questions if q.correct_choice_idx is None or q.direct_answers is None]
    if unanswered:
        raise ValueError(f"{len(unanswered)} questions have no answers (test split?), e.g. {unanswered[0]!r}")
    known = {q.question_id for q in questions}
    mc: list[tuple[str, float]] = []
    da: list[tuple[str, float]] = []
    missing = {"multiple_choice": 0, "direct_answer": 0}
    not_a_choice = 0
    for q in questions:
        entry = predictions.get(q.question_id, {})
        pred = entry.get("multiple_choice")
        missing["multiple_choice"] += pred is None
        not_a_choice += pred is not None and pred not in q.choices
        mc.append((q.question_id, float(pred == q.correct_choice) if pred is not None else 0.0))
        if q.difficult_direct_answer:
            continue
        pred = entry.get("direct_answer")
        missing["direct_answer"] += pred is None
        matches = sum(pred == a for a in q.direct_answers or ()) if pred is not None else 0
        da.append((q.question_id, min(1.0, matches / DA_FULL_CREDIT)))
    result: dict[str, Any] = {"extra_predictions": sum(qid not in known for qid in predictions)}
    for key, scores in (("multiple_choice", mc), ("direct_answer", da)):
        part: dict[str, Any] = {"accuracy": None, "k": sum(s for _, s in scores), "n": len(scores),
                                "missing": missing[key]}
        if not any(key in entry for entry in predictions.values()):
            part["status"] = f"no {key} predictions: the official script skips this metric"
        elif not scores:
            part["status"] = "no questions to score"
        else:
            part["accuracy"] = part["k"] / part["n"] * 100
        if key == "multiple_choice":
            part["not_a_choice"] = not_a_choice
        if per_question:
            part["per_question"] = dict(scores)
        result[key] = part
    return result


# ---------------------------------------------------------------- generate-then-map for multiple choice
_LETTER = re.compile(r"\s*(?:\(([A-Z])\)|([A-Z])(?:[.:)]|(?=\s*$)))(?:\s|$)")
_STOPWORDS = frozenset("is are was were be it its this that of in on at to for with and or by as from there answer"
                       .split())


def map_to_choice(text: str, choices: list[str] | tuple[str, ...]) -> tuple[int | None, str]:
    """The index of the choice a free-text answer names, and the rule that decided it.

    Rules, first that applies wins (every comparison after "exact" is on VQA-normalised text: lower case,
    punctuation out, articles out, number words as digits):
      "exact"      text == a choice (first such choice);
      "normalized" normalised text == a normalised choice;
      "letter"     the text is an option letter, alone or leading: "B", "(B)", "B.", "B) ...", "(B) ...";
      "mention"    choices found as whole-word runs in the text; a run inside a longer choice's run does not
                   count for the shorter one ("red" in "red car"); most runs wins, then the earliest run,
                   then the longer choice, then the lower index;
      "overlap"    the highest share of the choice's content words (stop words out) found in the text, then
                   more shared words, then the lower index; a share of 0 is no overlap;
      "none"       nothing matched: index None (score it as wrong; never a guessed choice).
    """
    for i, choice in enumerate(choices):
        if text == choice:
            return i, "exact"
    norm = process_digit_article(process_punctuation(_clean_space(text)))
    norm_choices = [process_digit_article(process_punctuation(_clean_space(c))).split() for c in choices]
    for i, words in enumerate(norm_choices):
        if words and norm == " ".join(words):
            return i, "normalized"
    letter = _LETTER.match(text)
    if letter:
        index = ord(letter.group(1) or letter.group(2)) - ord("A")
        if index < len(choices):
            return index, "letter"
    tokens = norm.split()
    claimed: set[int] = set()
    hits: dict[int, list[int]] = {}
    for i in sorted(range(len(choices)), key=lambda i: (-len(norm_choices[i]), i)):
        words = norm_choices[i]
        for start in range(len(tokens) - len(words) + 1 if words else 0):
            span = set(range(start, start + len(words)))
            if tokens[start:start + len(words)] == words and not span & claimed:
                claimed |= span
                hits.setdefault(i, []).append(start)
    if hits:
        best = min(hits, key=lambda i: (-len(hits[i]), min(hits[i]), -len(norm_choices[i]), i))
        return best, "mention"
    present = set(tokens) - _STOPWORDS
    ranked = []
    for i, words in enumerate(norm_choices):
        content = set(words) - _STOPWORDS or set(words)
        shared = len(content & present)
        if shared:
            ranked.append((-shared / len(content), -shared, i))
    if ranked:
        return min(ranked)[2], "overlap"
    return None, "none"


# ---------------------------------------------------------------- GQA
def gqa_normalize(text: str, normalize: GqaNormalize, role: Literal["prediction", "answer"]) -> str:
    if normalize == "none" or (normalize == "llava" and role == "answer"):
        return text
    if normalize == "llava":
        return text.rstrip(".").lower()
    if normalize == "lavis":
        return process_digit_article(process_punctuation(text))
    raise ValueError(f"normalize must be one of {', '.join(GQA_NORMALIZATIONS)}, got {normalize!r}")


def gqa_accuracy(questions: list[GqaQuestion], predictions: dict[str, str], normalize: GqaNormalize = "none",
                 *, missing: Literal["error", "wrong"] = "error") -> dict[str, Any]:
    """Exact-match accuracy (percent) after the named normalisation, overall and binary/open.

    A question without a prediction raises ValueError, as eval.py does; `missing="wrong"` scores it 0.
    """
    if normalize not in GQA_NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {', '.join(GQA_NORMALIZATIONS)}, got {normalize!r}")
    absent = [q.question_id for q in questions if q.question_id not in predictions]
    if absent and missing == "error":
        raise ValueError(f"no prediction for {len(absent)} of {len(questions)} questions, e.g. {absent[0]!r}; "
                         "the official eval.py refuses to score (pass missing='wrong' to count them as wrong)")
    groups: dict[str, list[float]] = {"all": [], "binary": [], "open": []}
    for q in questions:
        if q.answer is None:
            raise ValueError(f"question {q.question_id!r} has no answer (an unlabelled split?)")
        pred = predictions.get(q.question_id)
        score = float(pred is not None and gqa_normalize(pred, normalize, "prediction")
                      == gqa_normalize(q.answer, normalize, "answer"))
        groups["all"].append(score)
        if q.types is not None:
            groups["open" if q.types.structural == "query" else "binary"].append(score)

    def part(scores: list[float]) -> dict[str, Any]:
        k = int(sum(scores))
        return {"accuracy": k / len(scores) * 100 if scores else None, "k": k, "n": len(scores)}

    return {**part(groups["all"]), "binary": part(groups["binary"]), "open": part(groups["open"]),
            "missing": len(absent), "extra_predictions": len(set(predictions) - {q.question_id for q in questions}),
            "normalize": normalize, "normalize_detail": GQA_NORMALIZATIONS[normalize]}


# ---------------------------------------------------------------- prediction files and CLI helpers
def load_aokvqa_predictions(path: str | Path) -> dict[str, dict[str, str]]:
    """{question_id: {"multiple_choice": str, "direct_answer": str}}; either key may be absent."""
    path = Path(path)
    data = load_json(path)
    top_level(path, data, dict)
    out: dict[str, dict[str, str]] = {}
    for position, (qid, value) in enumerate(data.items()):
        rec = Record(value, path, record_label(position, "question_id", qid))
        out[qid] = {key: rec.text(key, allow_empty=True) for key in ("multiple_choice", "direct_answer")
                    if rec.has(key)}
    return out


def load_gqa_predictions(path: str | Path) -> dict[str, str]:
    """[{"questionId": str, "prediction": str}] as {questionId: prediction}; a repeated id is an error."""
    path = Path(path)
    data = load_json(path)
    top_level(path, data, list)
    out: dict[str, str] = {}
    for rec in numbered(path, data):
        value = rec.get("questionId")
        if not isinstance(value, str):  # question files key by strings: an int id would never match
            raise rec.error("questionId", f"expected a string, got {describe(value)}")
        rec.name_by("questionId", value)
        if value in out:
            raise rec.error("questionId", "duplicate question id")
        out[value] = rec.text("prediction", allow_empty=True)
    return out


def aokvqa_cli(data_file: str | Path, predictions_file: str | Path, split: str | None = None) -> dict[str, Any]:
    """`mgbench metric aokvqa --data aokvqa_v1p0_val.json --predictions FILE` as one JSON-able dict."""
    questions = read_aokvqa(data_file, coco_root="unused-for-scoring", split=split)
    predictions = load_aokvqa_predictions(predictions_file)
    if any(q.correct_choice_idx is None for q in questions):
        raise DataError(data_file, None, None, "questions without answers (the test split) cannot be scored here")
    return {"metric": "aokvqa", "data": str(data_file), "predictions": str(predictions_file),
            **aokvqa_scores(questions, predictions)}


def gqa_cli(questions_file: str | Path, predictions_file: str | Path,
            normalize: GqaNormalize = "none") -> dict[str, Any]:
    """`mgbench metric gqa --questions FILE --predictions FILE [--normalize none|llava|lavis]`."""
    questions = read_gqa(questions_file, images_dir="unused-for-scoring")
    predictions = load_gqa_predictions(predictions_file)
    absent = [q.question_id for q in questions if q.question_id not in predictions]
    if absent:
        raise DataError(predictions_file, None, None, f"no prediction for {len(absent)} of {len(questions)} "
                        f"questions in {questions_file}, e.g. {absent[0]!r} (eval.py needs every one)")
    return {"metric": "gqa", "questions": str(questions_file), "predictions": str(predictions_file),
            **gqa_accuracy(questions, predictions, normalize)}
