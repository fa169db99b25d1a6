"""tasks.metrics.vqa against hand-computed values (the arithmetic is in the comments)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.metrics.vqa import (
    aokvqa_cli,
    aokvqa_scores,
    gqa_accuracy,
    gqa_cli,
    load_aokvqa_predictions,
    load_gqa_predictions,
    map_to_choice,
    process_digit_article,
    process_punctuation,
    vqa_accuracy,
    vqa_normalize,
)
from tasks.readers.aokvqa import AokvqaQuestion
from tasks.readers.errors import DataError
from tasks.readers.gqa import GqaQuestion, GqaTypes

# ------------------------------------------------------------------ A-OKVQA


def _aok(qid: str, choices: list[str], correct: int, answers: list[str], difficult: bool = False) -> dict:
    return {"question_id": qid, "image_id": 1, "question": "?", "choices": choices, "correct_choice_idx": correct,
            "direct_answers": answers, "difficult_direct_answer": difficult, "rationales": ["r"]}


AOK_RECORDS = [
    _aok("q1", ["cat", "dog", "bird", "fish"], 1, ["dog"] * 4 + ["puppy"] * 6),
    _aok("q2", ["red", "blue", "green", "white"], 0, ["red"] * 2 + ["maroon"] * 8),
    _aok("q3", ["cup", "bowl", "sink", "pan"], 2, ["sink"] * 10, difficult=True),
    _aok("q4", ["one", "two", "three", "four"], 3, ["4"] * 10),
]
AOK_PREDICTIONS = {
    "q1": {"multiple_choice": "dog", "direct_answer": "puppy"},  # MC right; DA 6 matches -> min(1, 6/3) = 1
    "q2": {"multiple_choice": "Red", "direct_answer": "red"},  # MC "Red" != "red" (no normalisation), not a
    #                                                           choice; DA 2 matches -> 2/3
    "q3": {"multiple_choice": "sink", "direct_answer": "nonsense"},  # MC right; difficult: left out of DA
    # q4: no prediction at all -> 0 for MC and for DA (the official strict=False path appends 0.0)
    "zzz": {"multiple_choice": "dog"},  # not a question of the file: ignored
}


def _questions(records: list[dict]) -> list[AokvqaQuestion]:
    return [AokvqaQuestion(r["question_id"], r["image_id"], Path("unused"), r["question"], tuple(r["choices"]),
                           r["difficult_direct_answer"], r["correct_choice_idx"], tuple(r["direct_answers"]),
                           tuple(r["rationales"])) for r in records]


def test_aokvqa_mc_and_da_by_hand() -> None:
    out = aokvqa_scores(_questions(AOK_RECORDS), AOK_PREDICTIONS, per_question=True)
    mc, da = out["multiple_choice"], out["direct_answer"]
    # MC over ALL four questions, difficult one included: q1 1 + q2 0 + q3 1 + q4 0 = 2 -> 2/4 = 50%
    assert (mc["k"], mc["n"], mc["missing"], mc["not_a_choice"]) == (2.0, 4, 1, 1)
    assert mc["accuracy"] == pytest.approx(50.0)
    # DA over the three non-difficult: q1 1 + q2 2/3 + q4 0 = 5/3 -> (5/3)/3 = 5/9 = 55.555...%
    assert (da["n"], da["missing"]) == (3, 1)
    assert da["k"] == pytest.approx(5 / 3)
    assert da["accuracy"] == pytest.approx(500 / 9)
    assert da["per_question"] == pytest.approx({"q1": 1.0, "q2": 2 / 3, "q4": 0.0})
    assert "q3" not in da["per_question"] and mc["per_question"]["q3"] == 1.0
    assert out["extra_predictions"] == 1


def test_aokvqa_metric_without_any_prediction_is_skipped_like_the_official_script() -> None:
    out = aokvqa_scores(_questions(AOK_RECORDS), {"q1": {"multiple_choice": "dog"}})
    assert out["direct_answer"]["accuracy"] is None
    assert "official script skips" in out["direct_answer"]["status"]
    assert out["multiple_choice"]["accuracy"] == pytest.approx(25.0)  # 1 right of 4, three missing -> 0


def test_aokvqa_test_split_without_answers_is_refused() -> None:
    q = _questions(AOK_RECORDS[:1])[0]
    unlabelled = AokvqaQuestion(q.question_id, 1, q.image_path, "?", q.choices, False, None, None, None)
    with pytest.raises(ValueError, match="no answers"):
        aokvqa_scores([unlabelled], {})


def test_aokvqa_cli_reads_the_official_files(tmp_path: Path) -> None:
    data = tmp_path / "aokvqa_v1p0_val.json"
    data.write_text(json.dumps(AOK_RECORDS))
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps(AOK_PREDICTIONS))
    out = aokvqa_cli(data, preds)
    json.dumps(out)  # JSON-able
    assert out["metric"] == "aokvqa"
    assert out["multiple_choice"]["accuracy"] == pytest.approx(50.0)
    assert out["direct_answer"]["accuracy"] == pytest.approx(500 / 9)


@pytest.mark.parametrize(
    ("content", "record", "field"),
    [
        ('["q1"]', None, None),  # top level must be an object
        ('{"q1": {"multiple_choice": "dog"}, "q2": "red"}', "record 1 (question_id 'q2')", None),
        ('{"q1": {"multiple_choice": 3}}', "record 0 (question_id 'q1')", "multiple_choice"),
        ('{"q1": {"direct_answer": null}}', "record 0 (question_id 'q1')", "direct_answer"),
        ('{"q1": {"multiple_choice": "dog"', None, None),  # truncated JSON
    ],
)
def test_malformed_aokvqa_predictions(tmp_path: Path, content: str, record: str | None, field: str | None) -> None:
    path = tmp_path / "preds.json"
    path.write_text(content)
    with pytest.raises(DataError) as info:
        load_aokvqa_predictions(path)
    err = info.value
    assert (err.file, err.record, err.field) == (str(path), record, field)
    assert "\n" not in str(err) and str(path) in str(err)


# ------------------------------------------------------------------ map_to_choice

CHOICES = ["red car", "red", "blue", "two dogs"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("blue", (2, "exact")),
        ("The blue.", (2, "normalized")),  # "the blue" -> article out, period out -> "blue"
        ("Two dogs!", (3, "normalized")),  # "two" -> "2" on both sides: "2 dogs" == "2 dogs"
        ("(C)", (2, "letter")),
        ("B. because it is", (1, "letter")),
        ("D", (3, "letter")),
        ("I think it is a red car.", (0, "mention")),  # "red" sits inside the "red car" run: not counted
        ("it is red, not blue", (1, "mention")),  # one run each: the earlier one wins
        ("blue and red and blue", (2, "mention")),  # blue 2 runs, red 1
        ("a car", (0, "overlap")),  # "car": 1 of 2 content words of "red car", 0 for the rest
        ("dogs", (3, "overlap")),  # "2 dogs": 1 of 2
        ("purple", (None, "none")),
        ("E", (None, "none")),  # a letter past the last choice is no letter
    ],
)
def test_map_to_choice_rules(text: str, expected: tuple[int | None, str]) -> None:
    assert map_to_choice(text, CHOICES) == expected


def test_map_to_choice_overlap_tie_goes_to_the_lower_index() -> None:
    # "red" is 1 of 2 content words of both choices -> same share, same count -> index 0
    assert map_to_choice("red", ["big red", "red hat"]) == (0, "overlap")


# ------------------------------------------------------------------ VQA v2 normalisation


def test_vqa_normalize_versions_differ_on_who_gets_normalised() -> None:
    # Prediction when all ten answers agree: LAVIS (pre-2021) always normalises it, vqa2021 only strips space.
    assert vqa_normalize("Two", "lavis", "prediction", references_agree=True) == "2"
    assert vqa_normalize("Two", "vqa2021", "prediction", references_agree=True) == "Two"
    # A human answer when answers disagree: LAVIS only handles punctuation (keeps case and articles).
    assert vqa_normalize("A Dog", "lavis", "reference") == "A Dog"
    assert vqa_normalize("A Dog", "vqa2021", "reference") == "dog"
    # A human answer when all agree: LAVIS leaves it raw, vqa2021 strips whitespace.
    assert vqa_normalize(" Dog\n", "lavis", "reference", references_agree=True) == " Dog\n"
    assert vqa_normalize(" Dog\n", "vqa2021", "reference", references_agree=True) == "Dog"
    # A prediction when answers disagree: the same in both.
    assert vqa_normalize(" The two Dogs!\t", "lavis") == vqa_normalize(" The two Dogs!\t", "vqa2021") == "2 dogs"


def test_vqa_accuracy_where_the_versions_differ() -> None:
    refs = ["A dog"] * 8 + ["dog"] * 2
    # lavis: prediction "a dog" -> "dog"; answers keep "A dog" (punctuation only), so only the 2 "dog" match.
    #   leaving out a "dog": 1 other match -> 1/3 (x2); leaving out an "A dog": 2 matches -> 2/3 (x8)
    #   (2 * 1/3 + 8 * 2/3) / 10 = 6/10
    assert vqa_accuracy("a dog", refs, "lavis") == pytest.approx(0.6)
    # vqa2021: all ten become "dog" -> 9 others match each time -> 1
    assert vqa_accuracy("a dog", refs, "vqa2021") == pytest.approx(1.0)
    # All answers "2": lavis turns "two" into "2" -> 9 matches -> 1; vqa2021 normalises nothing -> 0.
    assert vqa_accuracy("two", ["2"] * 10, "lavis") == pytest.approx(1.0)
    assert vqa_accuracy("two", ["2"] * 10, "vqa2021") == 0.0
    # Where they agree, the textbook case: 3 of 10 say "yes" -> (3 * 2/3 + 7 * 1) / 10 = 0.9
    for version in ("lavis", "vqa2021"):
        assert vqa_accuracy("yes", ["yes"] * 3 + ["no"] * 7, version) == pytest.approx(0.9)


def test_vqa_processing_quirks_kept() -> None:
    assert process_punctuation("a" + "." * 40) == "a" + "." * 8  # at most 32 periods go (re.UNICODE as count)
    assert process_punctuation("3.5 m.") == "3.5 m"  # a period before a digit stays
    assert process_punctuation("1,000 cats, dogs") == "1000 cats dogs"  # digit,digit: every mark just dropped
    assert process_punctuation("red-white") == "red white"  # no space next to "-": replaced by a space
    assert process_punctuation("red - white") == "red  white"  # " -" present: dropped
    # capitalised contraction keys never match (lower-cased first); "somebody'd" -> "somebodyd"
    assert process_digit_article("Im dont none The somebody'd") == "im don't 0 somebodyd"


# ------------------------------------------------------------------ GQA


def _gqa(qid: str, answer: str, structural: str) -> GqaQuestion:
    return GqaQuestion(qid, "img", Path("unused"), "?", answer, answer, GqaTypes(structural, "attr", "x"))


GQA_QUESTIONS = [
    _gqa("1", "yes", "verify"), _gqa("2", "table", "query"), _gqa("3", "no", "logical"),
    _gqa("4", "white", "query"), _gqa("5", "yes", "verify"),
]
GQA_PREDICTIONS = {"1": "Yes.", "2": "the table", "3": "no", "4": "White!", "5": "Yes. "}


@pytest.mark.parametrize(
    ("normalize", "k", "binary_k", "open_k"),
    [
        # none: only "no" == "no"                                     -> 1/5, binary 1/3, open 0/2
        ("none", 1, 1, 0),
        # llava: "Yes." -> "yes" ok; "Yes. " -> "yes. " (rstrip('.') stops at the space); "White!" and
        # "the table" untouched but lower-cased -> q1, q3               -> 2/5, binary 2/3, open 0/2
        ("llava", 2, 2, 0),
        # lavis: "Yes." -> "yes", "the table" -> "table", "White!" -> "white", "Yes. " -> "yes" -> 5/5
        ("lavis", 5, 3, 2),
    ],
)
def test_gqa_accuracy_per_normalisation(normalize: str, k: int, binary_k: int, open_k: int) -> None:
    out = gqa_accuracy(GQA_QUESTIONS, GQA_PREDICTIONS, normalize)  # type: ignore[arg-type]
    assert (out["k"], out["n"]) == (k, 5)
    assert out["accuracy"] == pytest.approx(k / 5 * 100)
    assert (out["binary"]["k"], out["binary"]["n"], out["open"]["k"], out["open"]["n"]) == (binary_k, 3, open_k, 2)
    assert out["normalize"] == normalize and out["normalize_detail"]


def test_gqa_missing_prediction_raises_like_eval_py() -> None:
    partial = {k: v for k, v in GQA_PREDICTIONS.items() if k != "3"}
    with pytest.raises(ValueError, match="no prediction for 1 of 5"):
        gqa_accuracy(GQA_QUESTIONS, partial)
    out = gqa_accuracy(GQA_QUESTIONS, partial, "none", missing="wrong")  # q3 was the only right one
    assert (out["k"], out["n"], out["missing"]) == (0, 5, 1)
    with pytest.raises(ValueError, match="normalize must be"):
        gqa_accuracy(GQA_QUESTIONS, GQA_PREDICTIONS, "lower")  # type: ignore[arg-type]


def _write_gqa(tmp_path: Path, predictions: object) -> tuple[Path, Path]:
    questions = {q.question_id: {"imageId": "n1", "question": "?", "answer": q.answer, "fullAnswer": q.answer,
                                 "types": {"structural": q.types.structural, "semantic": "attr", "detailed": "x"}}
                 for q in GQA_QUESTIONS if q.types is not None}
    qfile, pfile = tmp_path / "testdev_balanced_questions.json", tmp_path / "testdev_balanced_predictions.json"
    qfile.write_text(json.dumps(questions))
    pfile.write_text(json.dumps(predictions))
    return qfile, pfile


def test_gqa_cli(tmp_path: Path) -> None:
    qfile, pfile = _write_gqa(tmp_path, [{"questionId": k, "prediction": v} for k, v in GQA_PREDICTIONS.items()])
    out = gqa_cli(qfile, pfile, "llava")
    json.dumps(out)
    assert (out["metric"], out["k"], out["n"], out["normalize"]) == ("gqa", 2, 5, "llava")
    _, pfile = _write_gqa(tmp_path, [{"questionId": "1", "prediction": "yes"}])
    with pytest.raises(DataError) as info:
        gqa_cli(qfile, pfile)
    assert info.value.file == str(pfile) and "no prediction for 4 of 5" in str(info.value)


@pytest.mark.parametrize(
    ("content", "record", "field", "message"),
    [
        ({"1": "yes"}, None, None, "JSON list"),
        ([{"questionId": "1"}], "record 0 (questionId '1')", "prediction", "missing"),
        ([{"questionId": 1, "prediction": "yes"}], "record 0", "questionId", "expected a string"),
        ([{"questionId": "1", "prediction": "a"}, {"questionId": "1", "prediction": "b"}],
         "record 1 (questionId '1')", "questionId", "duplicate"),
        ([{"questionId": "1", "prediction": None}], "record 0 (questionId '1')", "prediction", "null"),
        (["yes"], "record 0", None, "expected an object"),
    ],
)
def test_malformed_gqa_predictions(tmp_path: Path, content: object, record: str | None, field: str | None,
                                   message: str) -> None:
    path = tmp_path / "preds.json"
    path.write_text(json.dumps(content))
    with pytest.raises(DataError) as info:
        load_gqa_predictions(path)
    err = info.value
    assert (err.file, err.record, err.field) == (str(path), record, field)
    assert message in err.message
