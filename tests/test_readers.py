"""The dataset readers (tasks/readers): small hand-written files in the official formats, quirks included,
and one exact error line per kind of malformed input."""

from __future__ import annotations

import io
import json
import pickle
import tarfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tasks.readers.advanced import read_advanced_manifest
from tasks.readers.aokvqa import read_aokvqa
from tasks.readers.ccsbu import read_cc_sbu_align
from tasks.readers.coco import karpathy_test_images, load_coco, read_coco, read_karpathy
from tasks.readers.errors import DataError
from tasks.readers.gqa import read_gqa
from tasks.readers.locna import read_localized_narratives
from tasks.readers.pairs import expand_shards, iter_shard_samples, read_jsonl_pairs, write_shard


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def error_line(call, *args, **kwargs) -> str:
    """Run a reader that must fail; return its message after checking it is a single line."""
    with pytest.raises(DataError) as info:
        result = call(*args, **kwargs)
        list(result)  # drain generators, so a lazy reader fails here too
    line = str(info.value)
    assert "\n" not in line
    return line


def jpeg_bytes(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), colour).save(buf, format="JPEG")
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------- errors


def test_data_error_is_one_line_with_every_part_and_survives_pickling():
    err = DataError("a/b.json", "record 3 (question_id 'abc')", "choices", "expected a list\nof 4 strings, got str")
    assert (
        str(err) == "a/b.json: record 3 (question_id 'abc'): field 'choices': expected a list\\nof 4 strings, got str"
    )
    assert isinstance(err, ValueError)
    assert str(DataError("f.json", None, None, "invalid JSON")) == "f.json: invalid JSON"
    assert str(DataError("f.json", 7, None, "bad")) == "f.json: record 7: bad"
    copy = pickle.loads(pickle.dumps(err))
    assert (str(copy), copy.field, copy.record) == (str(err), "choices", "record 3 (question_id 'abc')")


# ------------------------------------------------------------------------------------------------- COCO

CAPTIONS_2014 = {
    "info": {"year": 2014},
    "licenses": [],
    "images": [
        {"id": 391895, "file_name": "COCO_val2014_000000391895.jpg", "width": 640, "height": 360},
        {"id": 522418, "file_name": "COCO_val2014_000000522418.jpg", "width": 640, "height": 480},
    ],
    "annotations": [
        {"id": 770337, "image_id": 391895, "caption": "A man riding a bike down a dirt road."},
        {"id": 1, "image_id": 522418, "caption": "A woman cutting a cake."},
        {"id": 771687, "image_id": 391895, "caption": "A person on a motorcycle in the hills."},
    ],
}
INSTANCES_2014 = {
    "images": CAPTIONS_2014["images"],
    "categories": [
        {"id": 1, "name": "person", "supercategory": "person"},
        {"id": 2, "name": "bicycle", "supercategory": "vehicle"},
        {"id": 61, "name": "cake", "supercategory": "food"},
    ],
    "annotations": [
        {"id": 10, "image_id": 391895, "category_id": 1, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0},
        {"id": 11, "image_id": 391895, "category_id": 2, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0},
        {"id": 12, "image_id": 391895, "category_id": 1, "bbox": [5, 6, 7, 8], "area": 56, "iscrowd": 0},
        {"id": 13, "image_id": 522418, "category_id": 61, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0},
    ],
}


def test_coco_captions_and_instances_merge_per_image(tmp_path):
    captions = write_json(tmp_path / "captions_val2014.json", CAPTIONS_2014)
    instances = write_json(tmp_path / "instances_val2014.json", INSTANCES_2014)
    first, second = read_coco(tmp_path / "val2014", captions=captions, instances=instances)
    assert first.image_id == 391895 and first.image_key == "391895"
    assert first.path == tmp_path / "val2014" / "COCO_val2014_000000391895.jpg"
    assert first.captions == ("A man riding a bike down a dirt road.", "A person on a motorcycle in the hills.")
    assert first.categories == frozenset({"person", "bicycle"})
    assert (second.captions, second.categories) == (("A woman cutting a cake.",), frozenset({"cake"}))


def test_coco_single_files_and_2017_names(tmp_path):
    data = json.loads(json.dumps(CAPTIONS_2014))
    data["images"][0]["file_name"] = "000000391895.jpg"  # the 2017 naming: 12 digits, no prefix
    captions = write_json(tmp_path / "captions_val2017.json", data)
    only_captions = read_coco(tmp_path / "val2017", captions=captions)
    assert only_captions[0].path == tmp_path / "val2017" / "000000391895.jpg"
    assert only_captions[0].categories == frozenset()
    only_instances = read_coco("imgs", instances=write_json(tmp_path / "instances_val2014.json", INSTANCES_2014))
    assert [(r.captions, sorted(r.categories)) for r in only_instances] == [((), ["bicycle", "person"]), ((), ["cake"])]


def test_load_coco_gives_a_working_pycocotools_index(tmp_path, capsys):
    coco = load_coco(write_json(tmp_path / "instances_val2014.json", INSTANCES_2014), "instances")
    assert sorted(coco.getAnnIds(imgIds=[391895])) == [10, 11, 12]
    assert coco.getCatIds(catNms=["cake"]) == [61]
    assert capsys.readouterr().out == ""  # pycocotools' progress prints are kept off stdout


def test_coco_caption_image_missing_from_instances_is_an_error(tmp_path):
    captions = write_json(tmp_path / "captions_val2014.json", CAPTIONS_2014)
    instances = dict(INSTANCES_2014, images=INSTANCES_2014["images"][:1], annotations=INSTANCES_2014["annotations"][:3])
    instances_path = write_json(tmp_path / "instances_val2014.json", instances)
    line = error_line(read_coco, tmp_path, captions=captions, instances=instances_path)
    assert line == f"{instances_path}: image id 522418 from {captions} is not in 'images'"


def test_coco_files_of_different_years_do_not_mix(tmp_path):
    captions = write_json(tmp_path / "captions_val2014.json", CAPTIONS_2014)
    renamed = [dict(img, file_name=f"{img['id']:012d}.jpg") for img in INSTANCES_2014["images"]]
    instances = write_json(tmp_path / "instances_val2017.json", dict(INSTANCES_2014, images=renamed))
    line = error_line(read_coco, tmp_path, captions=captions, instances=instances)
    assert line == (
        f"{instances}: image id 391895: field 'file_name': "
        f"'000000391895.jpg' differs from 'COCO_val2014_000000391895.jpg' in {captions}"
    )


def _broken(data: dict, section: str, index: int, **changes: Any) -> dict:
    data = json.loads(json.dumps(data))
    data[section][index].update(changes)
    for key, value in changes.items():
        if value is ...:
            del data[section][index][key]
    return data


@pytest.mark.parametrize(
    ("kind", "data", "expected"),
    [
        ("captions", {"images": []}, "field 'annotations': missing top-level key"),
        ("captions", {"images": {}, "annotations": []}, "field 'images': expected a list, got object"),
        (
            "captions",
            _broken(CAPTIONS_2014, "annotations", 1, caption="  "),
            "annotation 1 (id 1): field 'caption': expected a non-empty string, got '  '",
        ),
        (
            "captions",
            _broken(CAPTIONS_2014, "annotations", 2, caption=...),
            "annotation 2 (id 771687): field 'caption': missing",
        ),
        (
            "captions",
            _broken(CAPTIONS_2014, "annotations", 0, image_id="391895"),
            "annotation 0 (id 770337): field 'image_id': expected an integer, got str '391895'",
        ),
        (
            "captions",
            _broken(CAPTIONS_2014, "annotations", 0, image_id=5),
            "annotation 0 (id 770337): field 'image_id': no image with id 5 in 'images'",
        ),
        (
            "captions",
            _broken(CAPTIONS_2014, "images", 1, id=391895),
            "image 1 (id 391895): field 'id': duplicate image id",
        ),
        (
            "captions",
            _broken(CAPTIONS_2014, "images", 0, file_name=...),
            "image 0 (id 391895): field 'file_name': missing",
        ),
        ("instances", CAPTIONS_2014, "field 'categories': missing top-level key"),
        (
            "instances",
            _broken(INSTANCES_2014, "annotations", 3, category_id=90),
            "annotation 3 (id 13): field 'category_id': no category with id 90 in 'categories'",
        ),
        (
            "instances",
            _broken(INSTANCES_2014, "categories", 2, name=None),
            "category 2 (id 61): field 'name': expected a string, got null",
        ),
    ],
)
def test_coco_malformed_files(tmp_path, kind, data, expected):
    path = write_json(tmp_path / f"{kind}_val2014.json", data)
    assert error_line(load_coco, path, kind) == f"{path}: {expected}"


def test_coco_truncated_json(tmp_path):
    path = tmp_path / "captions_val2014.json"
    path.write_text(json.dumps(CAPTIONS_2014)[:150], encoding="utf-8")
    assert error_line(read_coco, tmp_path, captions=path).startswith(f"{path}: invalid JSON at line 1 column ")


def karpathy_image(cocoid: int, split: str, folder: str = "val2014") -> dict:
    return {
        "filepath": folder,
        "filename": f"COCO_{folder}_{cocoid:012d}.jpg",
        "cocoid": cocoid,
        "imgid": cocoid % 97,
        "split": split,
        "sentids": [1, 2],
        "sentences": [
            {"tokens": ["a", "dog", "runs"], "raw": "A dog runs.", "imgid": 0, "sentid": 1},
            {"tokens": ["the", "dog", "is", "running"], "raw": "The dog is running", "imgid": 0, "sentid": 2},
        ],
    }


def test_karpathy_split_reads_images_and_chooses_test(tmp_path):
    images = [karpathy_image(i, s) for i, s in [(9, "test"), (3, "train"), (7, "test"), (5, "restval"), (1, "test")]]
    path = write_json(tmp_path / "dataset_coco.json", {"images": images, "dataset": "coco"})
    records = read_karpathy(path, tmp_path / "coco")
    assert [r.split for r in records] == ["test", "train", "test", "restval", "test"]
    assert records[0].path == tmp_path / "coco" / "val2014" / "COCO_val2014_000000000009.jpg"
    assert records[0].captions == ("A dog runs.", "The dog is running")
    assert records[0].tokens[1] == ("the", "dog", "is", "running")
    assert [r.cocoid for r in karpathy_test_images(records)] == [1, 7, 9]
    drawn = karpathy_test_images(records, n=2, seed=3)
    assert len(drawn) == 2 and {r.split for r in drawn} == {"test"}
    # The draw depends on the seed only, not on the order of the file.
    assert karpathy_test_images(list(reversed(records)), n=2, seed=3) == drawn
    with pytest.raises(ValueError, match="cannot draw 4 images from the 3"):
        karpathy_test_images(records, n=4)


def test_karpathy_split_images_reads_one_split(tmp_path):
    from tasks.readers.coco import karpathy_split_images

    images = [karpathy_image(i, s) for i, s in [(9, "val"), (3, "test"), (7, "val"), (5, "restval")]]
    records = read_karpathy(write_json(tmp_path / "dataset_coco.json", {"images": images}), tmp_path / "coco")
    assert [r.cocoid for r in karpathy_split_images(records, "val")] == [7, 9]
    assert [r.cocoid for r in karpathy_split_images(records, "test")] == [3]
    with pytest.raises(ValueError, match="unknown Karpathy split 'dev'"):
        karpathy_split_images(records, "dev")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"split": "testing"}, "field 'split': expected one of train, val, test, restval, got 'testing'"),
        ({"sentences": []}, "field 'sentences': expected at least one sentence, got an empty list"),
        ({"sentences": [{"tokens": ["a"]}]}, "field 'sentences[0].raw': missing"),
        (
            {"sentences": [{"raw": "A cat.", "tokens": "a cat"}]},
            "field 'sentences[0].tokens': expected a list of strings, got str 'a cat'",
        ),
        ({"filename": "../../etc/passwd"}, "field 'filename': expected a plain file name part, got '../../etc/passwd'"),
    ],
)
def test_karpathy_malformed(tmp_path, change, expected):
    images = [karpathy_image(1, "test"), {**karpathy_image(42, "val"), **change}]
    path = write_json(tmp_path / "dataset_coco.json", {"images": images})
    assert error_line(read_karpathy, path, tmp_path) == f"{path}: image 1 (cocoid 42): {expected}"


# ---------------------------------------------------------------------------------------------- A-OKVQA


def aokvqa_question(question_id: str = "22MexNkBPpdZGX6sxbxVBH", **changes: Any) -> dict:
    record = {
        "split": "val",
        "image_id": 299207,
        "question_id": question_id,
        "question": "What is the man by the bags awaiting?",
        "choices": ["skateboarder", "train", "delivery", "cab"],
        "correct_choice_idx": 3,
        "direct_answers": ["ride", "ride", "bus", "taxi", "travelling", "traffic", "taxi", "cab", "cab", "his ride"],
        "difficult_direct_answer": False,
        "rationales": ["A train would not be on the street.", "He is waiting for a taxi.", "He has bags."],
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v is not ...}


def test_aokvqa_val_uses_coco_2017_twelve_digit_file_names(tmp_path):
    path = write_json(tmp_path / "aokvqa_v1p0_val.json", [aokvqa_question(), aokvqa_question("abc", image_id=7)])
    first, second = read_aokvqa(path, tmp_path / "coco")
    assert first.image_path == tmp_path / "coco" / "val2017" / "000000299207.jpg"
    assert second.image_path.name == "000000000007.jpg" and second.image_key == "7"
    assert first.choices == ("skateboarder", "train", "delivery", "cab") and first.correct_choice == "cab"
    assert len(first.direct_answers) == 10 and first.rationales[1] == "He is waiting for a taxi."
    assert first.difficult_direct_answer is False


def test_aokvqa_test_split_has_no_answers(tmp_path):
    record = aokvqa_question(correct_choice_idx=..., direct_answers=..., rationales=..., split="test")
    (question,) = read_aokvqa(write_json(tmp_path / "aokvqa_v1p0_test.json", [record]), "/coco")
    assert (question.correct_choice_idx, question.direct_answers, question.rationales) == (None, None, None)
    assert question.correct_choice is None
    assert question.image_path == Path("/coco/test2017/000000299207.jpg")


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (aokvqa_question("abc", choices="cab"), "field 'choices': expected a list of 4 strings, got str 'cab'"),
        (
            aokvqa_question("abc", choices=["a", "b", "c"]),
            "field 'choices': expected a list of 4 strings, got a list of 3",
        ),
        (
            aokvqa_question("abc", choices=["a", "b", 3, "d"]),
            "field 'choices': expected a list of 4 strings, got int 3 at index 2",
        ),
        (aokvqa_question("abc", correct_choice_idx=4), "field 'correct_choice_idx': expected 0 to 3, got 4"),
        (aokvqa_question("abc", direct_answers=...), "field 'direct_answers': missing"),
        (
            aokvqa_question("abc", direct_answers=["cab"] * 9),
            "field 'direct_answers': expected a list of 10 strings, got a list of 9",
        ),
        (
            aokvqa_question("abc", correct_choice_idx=..., direct_answers=..., rationales=...),
            "field 'correct_choice_idx': missing",
        ),
        (aokvqa_question("abc", image_id=True), "field 'image_id': expected an integer, got bool True"),
        (aokvqa_question("abc", image_id="299207"), "field 'image_id': expected an integer, got str '299207'"),
        (
            aokvqa_question("abc", difficult_direct_answer=0),
            "field 'difficult_direct_answer': expected true or false, got int 0",
        ),
        (aokvqa_question("abc", question=""), "field 'question': expected a non-empty string, got ''"),
        (aokvqa_question("22MexNkBPpdZGX6sxbxVBH"), "field 'question_id': duplicate question id"),
    ],
)
def test_aokvqa_malformed_records(tmp_path, record, expected):
    path = write_json(tmp_path / "aokvqa_v1p0_val.json", [aokvqa_question(), record])
    assert (
        error_line(read_aokvqa, path, tmp_path)
        == f"{path}: record 1 (question_id {record['question_id']!r}): {expected}"
    )


def test_aokvqa_file_level_errors(tmp_path):
    as_object = write_json(tmp_path / "aokvqa_v1p0_val.json", {"questions": []})
    assert (
        error_line(read_aokvqa, as_object, tmp_path)
        == f"{as_object}: expected a JSON list at the top level, got object"
    )
    int_id = write_json(tmp_path / "aokvqa_v1p0_train.json", [aokvqa_question(question_id=12)])
    assert (
        error_line(read_aokvqa, int_id, tmp_path)
        == f"{int_id}: record 0: field 'question_id': expected a string, got int 12"
    )
    renamed = write_json(tmp_path / "questions.json", [])
    assert "cannot tell the split from the file name" in error_line(read_aokvqa, renamed, tmp_path)


# -------------------------------------------------------------------------------------------------- GQA


def gqa_question(image_id: str = "n161313", **changes: Any) -> dict:
    record = {
        "semantic": [{"operation": "select", "dependencies": [], "argument": "ball (2)"}],
        "entailed": [],
        "equivalent": ["20968379"],
        "question": "Is the ball on the left?",
        "imageId": image_id,
        "isBalanced": True,
        "groups": {"global": None, "local": "10c-ball_hposition"},
        "answer": "yes",
        "semanticStr": "select: ball (2)->verify hposition: left [0]",
        "annotations": {"answer": {}, "question": {"2": "2"}, "fullAnswer": {"2": "2"}},
        "types": {"detailed": "positionVerify", "semantic": "attr", "structural": "verify"},
        "fullAnswer": "Yes, the ball is on the left of the image.",
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v is not ...}


def test_gqa_keeps_question_ids_as_numeric_strings(tmp_path):
    data = {"20968379": gqa_question(), "00602813": gqa_question("2354786", answer="no", fullAnswer="No.")}
    path = write_json(tmp_path / "testdev_balanced_questions.json", data)
    first, second = read_gqa(path, tmp_path / "images")
    assert (first.question_id, second.question_id) == ("20968379", "00602813")  # leading zero kept
    assert first.image_path == tmp_path / "images" / "n161313.jpg" and second.image_key == "2354786"
    assert (first.answer, first.full_answer) == ("yes", "Yes, the ball is on the left of the image.")
    assert (first.types.structural, first.types.semantic, first.types.detailed) == ("verify", "attr", "positionVerify")


def test_gqa_without_answers_needs_the_flag(tmp_path):
    path = write_json(
        tmp_path / "test_balanced_questions.json", {"1": gqa_question(answer=..., fullAnswer=..., types=...)}
    )
    (question,) = read_gqa(path, "imgs", require_answers=False)
    assert (question.answer, question.full_answer, question.types) == (None, None, None)
    assert error_line(read_gqa, path, "imgs") == f"{path}: record 0 (question_id '1'): field 'answer': missing"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([gqa_question()], "expected a JSON object at the top level, got a list of 1"),
        ({"q17": gqa_question()}, "record 0 (question_id 'q17'): expected a numeric string as question id"),
        (
            {"5": gqa_question(types={"structural": "verify", "detailed": "x"})},
            "record 0 (question_id '5'): field 'types.semantic': missing",
        ),
        (
            {"5": gqa_question(imageId=2354786)},
            "record 0 (question_id '5'): field 'imageId': expected a string, got int 2354786",
        ),
        (
            {"5": "Is the ball on the left?"},
            "record 0 (question_id '5'): expected an object, got str 'Is the ball on the left?'",
        ),
    ],
)
def test_gqa_malformed(tmp_path, data, expected):
    path = write_json(tmp_path / "val_balanced_questions.json", data)
    assert error_line(read_gqa, path, tmp_path) == f"{path}: {expected}"


# ---------------------------------------------------------------------------------------- cc_sbu_align


def test_cc_sbu_align_string_image_ids(tmp_path):
    annotations = [
        {"image_id": "2", "caption": "The image shows a man fishing."},
        {"image_id": "10", "caption": "A cat."},
    ]
    write_json(tmp_path / "cc_sbu_align" / "filter_cap.json", {"annotations": annotations})
    pairs = read_cc_sbu_align(tmp_path / "cc_sbu_align")
    assert [(p.image_id, p.caption) for p in pairs] == [("2", "The image shows a man fishing."), ("10", "A cat.")]
    assert pairs[0].image_path == tmp_path / "cc_sbu_align" / "image" / "2.jpg" and pairs[1].image_key == "10"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"annotations": [{"image_id": "2", "caption": "ok"}, {"image_id": "3", "caption": ""}]},
            "record 1 (image_id '3'): field 'caption': expected a non-empty string, got ''",
        ),
        (
            {"annotations": [{"image_id": 2, "caption": "ok"}]},
            "record 0: field 'image_id': expected a string, got int 2",
        ),
        ({"annotations": [{"image_id": "2"}]}, "record 0 (image_id '2'): field 'caption': missing"),
        (
            {"annotations": [{"image_id": "2", "caption": "a"}, {"image_id": "2", "caption": "b"}]},
            "record 1 (image_id '2'): field 'image_id': duplicate image id",
        ),
        ([{"image_id": "2", "caption": "a"}], "expected a JSON object at the top level, got a list of 1"),
        ({"annotation": []}, "field 'annotations': missing top-level key"),
    ],
)
def test_cc_sbu_align_malformed(tmp_path, data, expected):
    path = write_json(tmp_path / "filter_cap.json", data)
    assert error_line(read_cc_sbu_align, tmp_path) == f"{path}: {expected}"


def test_cc_sbu_align_truncated_and_missing_file(tmp_path):
    path = tmp_path / "filter_cap.json"
    path.write_text('{"annotations": [{"image_id": "2", "caption": "A man', encoding="utf-8")
    assert error_line(read_cc_sbu_align, tmp_path) == (
        f"{path}: invalid JSON at line 1 column 47: Unterminated string starting at"
    )
    missing = tmp_path / "elsewhere"
    assert (
        error_line(read_cc_sbu_align, missing)
        == f"{missing / 'filter_cap.json'}: cannot read file: No such file or directory"
    )


# ---------------------------------------------------------------------------------- Localized Narratives


def narrative(dataset_id: str = "mscoco_val2017", image_id: str = "137576", **changes: Any) -> str:
    record = {
        "dataset_id": dataset_id,
        "image_id": image_id,
        "annotator_id": 93,
        "caption": "In this image there are group of cows standing and eating grass.",
        "timed_caption": [
            {"utterance": "In this", "start_time": 0.0, "end_time": 0.4},
            {"utterance": "image", "start_time": 0.4, "end_time": 1},
        ],
        "traces": [[{"x": 0.2086, "y": -0.0533, "t": 0.022}]],
        "voice_recording": "coco_val/coco_val_137576_93.ogg",
    }
    record.update(changes)
    return json.dumps({k: v for k, v in record.items() if v is not ...})


def test_localized_narratives_jsonl(tmp_path):
    path = write_lines(
        tmp_path / "coco_val_localized_narratives.jsonl",
        [narrative(), narrative("open_images_validation", "0001eeaf4aed83f9", annotator_id=7), ""],
    )
    coco, oi = read_localized_narratives(path, tmp_path / "imgs")
    assert coco.image_path == tmp_path / "imgs" / "000000137576.jpg"
    assert oi.image_path == tmp_path / "imgs" / "0001eeaf4aed83f9.jpg" and oi.annotator_id == 7
    assert coco.image_key == "mscoco_val2017/137576"
    assert coco.timed_caption[1].utterance == "image" and coco.timed_caption[1].end_time == 1.0
    assert coco.caption.startswith("In this image") and coco.voice_recording.endswith("_93.ogg")


@pytest.mark.parametrize(
    ("bad_line", "expected"),
    [
        ('{"dataset_id": "mscoco_val2017", "image_id": ', "line 2: invalid JSON at column 46: Expecting value"),
        (
            narrative(annotator_id="93"),
            "line 2 (image_id '137576'): field 'annotator_id': expected an integer, got str '93'",
        ),
        (narrative(caption=" "), "line 2 (image_id '137576'): field 'caption': expected a non-empty string, got ' '"),
        (
            narrative(timed_caption=[{"utterance": "a", "start_time": 0, "end_time": "1"}]),
            "line 2 (image_id '137576'): field 'timed_caption[0].end_time': expected a number, got str '1'",
        ),
        (narrative(traces=...), "line 2 (image_id '137576'): field 'traces': missing"),
        ("[1, 2]", "line 2: expected an object, got a list of 2"),
    ],
)
def test_localized_narratives_bad_line(tmp_path, bad_line, expected):
    path = write_lines(tmp_path / "ln.jsonl", [narrative(), bad_line, narrative()])
    assert error_line(read_localized_narratives, path, tmp_path) == f"{path}: {expected}"


# ------------------------------------------------------------------------------------- stage-1 pairs


def test_shards_round_trip_through_brace_pattern(tmp_path):
    red, blue, green = jpeg_bytes((255, 0, 0)), jpeg_bytes((0, 0, 255)), jpeg_bytes((0, 255, 0))
    assert (
        write_shard(tmp_path / "shard-000.tar", [("000000000", red, "a red square"), ("000000001", blue, "blue")]) == 2
    )
    write_shard(tmp_path / "shard-001.tar", [("000010000", green, "green, très vert")])
    samples = list(iter_shard_samples(str(tmp_path / "shard-{000..001}.tar")))
    assert [(s.key, s.caption) for s in samples] == [
        ("000000000", "a red square"),
        ("000000001", "blue"),
        ("000010000", "green, très vert"),
    ]
    assert samples[0].image == red and samples[2].image == green
    assert samples[2].shard == tmp_path / "shard-001.tar" and samples[2].image_key == "000010000"
    # Each sample is exactly two members, KEY.jpg then KEY.json, as webdataset expects.
    with tarfile.open(tmp_path / "shard-000.tar") as tar:
        assert tar.getnames() == ["000000000.jpg", "000000000.json", "000000001.jpg", "000000001.json"]
        assert {(m.mtime, m.mode, m.uname) for m in tar.getmembers()} == {(0, 0o644, "")}
    # Reproducible: writing the same samples again gives the same bytes.
    write_shard(tmp_path / "again.tar", [("000010000", green, "green, très vert")])
    assert (tmp_path / "again.tar").read_bytes() == (tmp_path / "shard-001.tar").read_bytes()


def test_shards_interoperate_with_the_webdataset_library(tmp_path):
    wds = pytest.importorskip("webdataset")
    ours = tmp_path / "ours.tar"
    write_shard(ours, [("a/000001", jpeg_bytes((1, 2, 3)), "one"), ("a/000002", jpeg_bytes((4, 5, 6)), "two")])
    read_by_wds = list(wds.WebDataset(str(ours), shardshuffle=False))
    assert [(s["__key__"], json.loads(s["json"])["caption"]) for s in read_by_wds] == [
        ("a/000001", "one"),
        ("a/000002", "two"),
    ]
    # A shard as img2dataset writes it (an extra KEY.txt, metadata beyond "caption") reads too.
    theirs = tmp_path / "theirs.tar"
    with wds.TarWriter(str(theirs)) as sink:
        sink.write(
            {"__key__": "000000007", "jpg": b"\xff\xd8jpeg", "txt": "seven", "json": {"caption": "seven", "url": "u"}}
        )
    (sample,) = iter_shard_samples([theirs])
    assert (sample.key, sample.image, sample.caption) == ("000000007", b"\xff\xd8jpeg", "seven")


def raw_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        (
            [("1.jpg", b"x"), ("1.json", b'{"caption": "a"}'), ("2.jpg", b"y")],
            "sample 1 (key '2'): field 'json': missing member 2.json",
        ),
        ([("1.json", b'{"caption": "a"}'), ("1.txt", b"a")], "sample 0 (key '1'): field 'jpg': missing member 1.jpg"),
        (
            [("1.jpg", b"x"), ("1.json", b'{"caption": ""}')],
            "sample 0 (key '1'): field 'json.caption': expected a non-empty string, got ''",
        ),
        ([("1.jpg", b"x"), ("1.json", b'{"url": "u"}')], "sample 0 (key '1'): field 'json.caption': missing"),
        (
            [("1.jpg", b"x"), ("1.JPG", b"y"), ("1.json", b'{"caption": "a"}')],
            "sample 0 (key '1'): field 'jpg': duplicate member 1.JPG",
        ),
        (
            [("1.jpg", b"x"), ("1.json", b'{"caption": "a"')],
            "sample 0 (key '1'): field 'json': invalid JSON in 1.json at line 1 column 16: Expecting ',' delimiter",
        ),
        (
            [
                ("1.jpg", b"x"),
                ("1.json", b'{"caption": "a"}'),
                ("2.jpg", b"y"),
                ("2.json", b'{"caption": "b"}'),
                ("1.txt", b"a"),
            ],
            "sample 2 (key '1'): key appears again after other samples (members of a sample must be consecutive)",
        ),
    ],
)
def test_shard_malformed_samples(tmp_path, members, expected):
    path = raw_tar(tmp_path / "bad.tar", members)
    assert error_line(iter_shard_samples, [path]) == f"{path}: {expected}"


def test_truncated_and_missing_shards(tmp_path):
    whole = tmp_path / "whole.tar"
    write_shard(whole, [("000000001", b"\xff" * 3000, "a long image"), ("000000002", b"\xff" * 3000, "b")])
    cut = tmp_path / "cut.tar"
    cut.write_bytes(whole.read_bytes()[:2000])  # ends in the middle of the first image
    assert (
        error_line(iter_shard_samples, [cut])
        == f"{cut}: cannot read tar after member 000000001.jpg: unexpected end of data"
    )
    missing = tmp_path / "none-{0..1}.tar"
    assert error_line(iter_shard_samples, str(missing)) == (
        f"{tmp_path / 'none-0.tar'}: cannot read tar at the start: No such file or directory"
    )
    assert expand_shards([tmp_path / "x.tar", "y-{1..2}.tar"]) == [tmp_path / "x.tar", Path("y-1.tar"), Path("y-2.tar")]


def test_write_shard_rejects_bad_samples_and_leaves_no_file(tmp_path):
    with pytest.raises(ValueError, match="sample key '1.5' is empty, has a dot"):
        write_shard(tmp_path / "s.tar", [("1", b"x", "fine"), ("1.5", b"y", "dotted key")])
    with pytest.raises(ValueError, match="sample '2': caption must be a non-empty string"):
        write_shard(tmp_path / "s.tar", [("2", b"y", "")])
    assert list(tmp_path.iterdir()) == []


def test_jsonl_pairs_resolve_relative_images(tmp_path):
    path = write_lines(
        tmp_path / "pairs.jsonl",
        [
            json.dumps({"image": "cc/0001.jpg", "caption": "a dog on a beach"}),
            json.dumps({"image": "sbu/7.jpg", "caption": "sunset", "extra": 1}),
        ],
    )
    first, second = read_jsonl_pairs(path)
    assert (first.image_path, first.caption, first.image_key) == (
        tmp_path / "cc" / "0001.jpg",
        "a dog on a beach",
        "cc/0001.jpg",
    )
    assert read_jsonl_pairs(path, image_root="/data")[1].image_path == Path("/data/sbu/7.jpg")


@pytest.mark.parametrize(
    ("bad_line", "expected"),
    [
        ('{"image": "b.jpg", "caption": "x"', "line 2: invalid JSON at column 34: Expecting ',' delimiter"),
        (
            '{"image": "b.jpg", "caption": ""}',
            "line 2 (image 'b.jpg'): field 'caption': expected a non-empty string, got ''",
        ),
        ('{"caption": "x"}', "line 2: field 'image': missing"),
        (
            '{"image": "/abs/b.jpg", "caption": "x"}',
            "line 2 (image '/abs/b.jpg'): field 'image': expected a relative path, got an absolute one",
        ),
    ],
)
def test_jsonl_pairs_bad_line(tmp_path, bad_line, expected):
    path = write_lines(tmp_path / "pairs.jsonl", ['{"image": "a.jpg", "caption": "fine"}', bad_line])
    assert error_line(read_jsonl_pairs, path) == f"{path}: {expected}"


# ------------------------------------------------------------------------------------ advanced tasks


def test_advanced_manifest_jsonl_and_csv(tmp_path):
    jsonl = write_lines(
        tmp_path / "manifest.jsonl",
        [
            json.dumps({"image": "memes/01.jpg", "task": "meme"}),
            json.dumps({"image": "/abs/food.png", "task": "recipe"}),
        ],
    )
    items = read_advanced_manifest(jsonl)
    assert [(i.image_path, i.task) for i in items] == [
        (tmp_path / "memes" / "01.jpg", "meme"),
        (Path("/abs/food.png"), "recipe"),
    ]
    assert items[0].image_key == "memes/01.jpg"
    # A spreadsheet export: byte-order mark, extra column, CRLF line ends; one image used for two tasks.
    csv_path = tmp_path / "sub" / "manifest.csv"
    csv_path.parent.mkdir()
    csv_path.write_bytes('\ufeffimage,task,note\r\nshoe.jpg,ad,\r\nshoe.jpg,poem,"a, b"\r\n'.encode())
    assert [(i.image_path, i.task) for i in read_advanced_manifest(csv_path)] == [
        (tmp_path / "sub" / "shoe.jpg", "ad"),
        (tmp_path / "sub" / "shoe.jpg", "poem"),
    ]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "m.csv",
            "image,task\na.jpg,meme\nb.jpg,advertisement\n",
            "line 3 (image 'b.jpg'): field 'task': expected one of meme, recipe, ad, poem, got 'advertisement'",
        ),
        ("m.csv", "image,kind\na.jpg,meme\n", "field 'task': missing column in header ['image', 'kind']"),
        ("m.csv", "image,task\na.jpg\n", "line 2 (image 'a.jpg'): field 'task': missing"),
        (
            "m.csv",
            "image,task\na.jpg,meme\na.jpg,meme\n",
            "line 3 (image 'a.jpg'): field 'task': image 'a.jpg' already has task 'meme'",
        ),
        (
            "m.jsonl",
            '{"image": "a.jpg", "task": "Meme"}\n',
            "line 1 (image 'a.jpg'): field 'task': expected one of meme, recipe, ad, poem, got 'Meme'",
        ),
        (
            "m.jsonl",
            '{"image": "a.jpg", "task": "meme"}\n{"image": 3, "task": "poem"}\n',
            "line 2: field 'image': expected a string, got int 3",
        ),
        ("m.txt", "a.jpg meme\n", "unknown manifest format '.txt'; expected .jsonl or .csv"),
    ],
)
def test_advanced_manifest_malformed(tmp_path, name, text, expected):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    assert error_line(read_advanced_manifest, path) == f"{path}: {expected}"
