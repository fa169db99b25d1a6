"""CHAIR (tasks.metrics.chair): every expectation here was worked out by hand from the reference
(LisaAnne/Hallucination utils/chair.py, nltk 3.2.5 word_tokenize, pattern 3.6 singularize, data/synonyms.txt),
never computed by the code under test."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tasks.metrics import chair_coco
from tasks.metrics.chair import SYNONYMS_FILE, Chair, chair_cli, parse_synonyms
from tasks.metrics.chair_singular import singularize, singularize_fixed
from tasks.metrics.chair_tokenize import split_sentences, word_tokenize
from tasks.readers.errors import DataError

SHARED_SYNONYMS = Path("/work/shared/refs/chair_synonyms.txt")


def objects(caption: str, mode: str = "reference") -> tuple[list[str], list[str]]:
    words, categories, _ = Chair({}, mode).caption_objects(caption)
    return words, categories


# --- tokenisation (nltk 3.2.5 word_tokenize: Punkt sentences, then Treebank words) -------------------------

@pytest.mark.parametrize(("text", "tokens"), [
    # Every sentence's final period is split off (Treebank alone would leave "dog." glued).
    ("a dog. a cat.", ["a", "dog", ".", "a", "cat", "."]),
    ("there's a man's hat, isn't it?", ["there", "'s", "a", "man", "'s", "hat", ",", "is", "n't", "it", "?"]),
    # Abbreviations, and numbers/initials before a lower-case word, end no sentence: their period stays.
    ("mr. smith has 2. dogs", ["mr.", "smith", "has", "2.", "dogs"]),
    ("a dog.a cat", ["a", "dog.a", "cat"]),  # no space after the period: no sentence break
    # A closing bracket/quote after the period belongs to the sentence before.
    ("a dog (on a bench.) the cat", ["a", "dog", "(", "on", "a", "bench", ".", ")", "the", "cat"]),
    ('he said "a dog." then', ["he", "said", "``", "a", "dog", ".", "''", "then"]),
    ("a dog...a cat; cannot", ["a", "dog", "...", "a", "cat", ";", "can", "not"]),
    ("a “dog” -- ok", ["a", "“", "dog", "”", "--", "ok"]),
    ("", []),
])
def test_word_tokenize(text, tokens):
    assert word_tokenize(text) == tokens


def test_sentence_split():
    assert split_sentences("a dog. a cat! the end") == ["a dog.", "a cat!", "the end"]
    assert split_sentences("see mr. x at 5 p.m. today.") == ["see mr. x at 5 p.m. today."]


# --- singularisation (pattern 3.6) ------------------------------------------------------------------------

@pytest.mark.parametrize(("word", "reference", "fixed"), [
    ("bus", "bu", "bus"),  # the last rule drops the final s
    ("buses", "bus", "bus"),  # "(bus)es$" -> "bus"
    ("minibus", "minibu", "minibus"),
    ("glass", "glas", "glass"),
    ("glasses", "glass", "glass"),
    ("tennis", "tenni", "tennis"),
    ("people", "person", "person"),  # irregular table
    ("children", "child", "child"),
    ("grandchildren", "grandchild", "grandchild"),  # irregulars match as suffixes
    ("women", "woman", "woman"),
    ("mice", "mouse", "mouse"),  # "([m|l])ice$"
    ("geese", "goose", "goose"),
    ("oxen", "ox", "ox"),
    ("knives", "knife", "knife"),
    ("calves", "calf", "calf"),
    ("puppies", "puppy", "puppy"),
    ("ties", "ty", "tie"),  # "([^aeiouy]|qu)ies$" -> y
    ("magpies", "magpy", "magpie"),
    ("canoes", "cano", "canoe"),  # "(o)es$" -> o
    ("thieves", "thieve", "thief"),
    ("doggies", "doggies", "doggie"),  # -ie nouns: pattern returns the plural unchanged
    ("collies", "collies", "collie"),
    ("sheep", "sheep", "sheep"),
    ("scissors", "scissors", "scissors"),  # uninflected
    ("skis", "ski", "ski"),
    ("ice", "ice", "ice"),  # a suffix of the uncountable "advice"
    ("ears", "ears", "ears"),  # a suffix of the uninflected "shears"
    ("your", "ymy", "ymy"),  # irregular "our" -> "my", matched as a suffix
    ("dogs'", "dog's", "dog's"),
    ("mothers-in-law", "mother-in-law", "mother-in-law"),
    ("zombies", "zombies", "zombie"),
    ("corgis", "corgi", "corgi"),
    ("taxis", "taxi", "taxi"),
    ("broccoli", "broccoli", "broccoli"),
])
def test_singularize(word, reference, fixed):
    assert singularize(word) == reference
    assert singularize_fixed(word) == fixed


def test_bus_behaves_as_in_the_reference():
    # "bus" -> "bu" is no synonym, so the singular is never a mention; "buses" -> "bus" is.
    assert objects("a bus") == ([], [])
    assert objects("two buses") == (["bus"], ["bus"])
    assert objects("a minibus and an airbus") == ([], [])
    assert objects("a bus", "fixed") == (["bus"], ["bus"])
    assert objects("a minibus and an airbus", "fixed") == (["minibus", "airbus"], ["bus", "airplane"])


# --- phrases and special rules ----------------------------------------------------------------------------

@pytest.mark.parametrize(("caption", "reference", "fixed"), [
    ("two hot dogs", (["hot dog"], ["hot dog"]), (["hot dog"], ["hot dog"])),
    ("a teddy bear", (["teddy bear"], ["teddy bear"]), (["teddy bear"], ["teddy bear"])),
    ("traffic lights by a stop sign", (["traffic light", "stop sign"], ["traffic light", "stop sign"]),
     (["traffic light", "stop sign"], ["traffic light", "stop sign"])),
    ("a fire hydrant and a parking meter", (["fire hydrant", "parking meter"], ["fire hydrant", "parking meter"]),
     (["fire hydrant", "parking meter"], ["fire hydrant", "parking meter"])),
    # " motor bike" starts with a space: merged into one token that matches nothing (not even "bike").
    ("a motor bike", ([], []), (["motor bike"], ["motorcycle"])),
    ("a motor cycle and a motorbike", (["motor cycle", "motorbike"], ["motorcycle", "motorcycle"]),
     (["motor cycle", "motorbike"], ["motorcycle", "motorcycle"])),
    ("a cheesecake", ([], []), (["cheesecake"], ["cake"])),
    ("an iPhone", ([], []), (["iphone"], ["cell phone"])),
    ("a bow tie", (["tie"], ["tie"]), (["tie"], ["tie"])),
    ("bow ties", (["bow"], ["tie"]), (["tie"], ["tie"])),  # reference: "bow ty" is no phrase, "bow" is a tie
    # Only pairs are merged in the reference: "stove" and "oven" are two oven mentions.
    ("a stove top oven", (["stove", "oven"], ["oven", "oven"]), (["stove top oven"], ["oven"])),
    ("a tennis racket", (["racket"], ["tennis racket"]), (["tennis racket"], ["tennis racket"])),
    ("a sports ball", (["ball"], ["sports ball"]), (["sports ball"], ["sports ball"])),
    ("a wine glass", (["wine glass"], ["wine glass"]), (["wine glass"], ["wine glass"])),  # via "wine glas"
    ("a dining table", (["table"], ["dining table"]), (["dining table"], ["dining table"])),
    ("a laptop computer", (["laptop computer"], ["laptop"]), (["laptop computer"], ["laptop"])),
    ("train tracks", ([], []), ([], [])),  # "train track" is a phrase that is no object
    ("a passenger train", (["train"], ["train"]), (["train"], ["train"])),  # not "passenger" -> person
    ("home plate", ([], []), ([], [])),
])
def test_phrases(caption, reference, fixed):
    assert objects(caption) == reference
    assert objects(caption, "fixed") == fixed


@pytest.mark.parametrize(("caption", "expected"), [
    ("a baby elephant", (["elephant"], ["elephant"])),
    ("an adult giraffe and a baby bear", (["giraffe", "bear"], ["giraffe", "bear"])),
    ("a baby cub", ([], [])),  # "cub" is no object
    ("a baby and a dog", (["baby", "dog"], ["person", "dog"])),
])
def test_baby_animal_rule(caption, expected):
    assert objects(caption) == expected
    assert objects(caption, "fixed") == expected


def test_toilet_seat_rule():
    assert objects("a toilet seat") == (["toilet"], ["toilet"])
    # Any "seat" goes once "toilet" is in the caption, wherever it is.
    assert objects("a seat next to a toilet") == (["toilet"], ["toilet"])
    assert objects("a seat") == (["seat"], ["chair"])
    # The third output keeps "seat", as the reference's raw word list does.
    assert Chair({}).caption_objects("a seat next to a toilet").tokens == ["a", "seat", "next", "to", "a", "toilet"]


def test_synonyms_map_to_categories():
    assert objects("Two puppies, a kitten and PEOPLE on a sofa.") == (
        ["puppy", "kitten", "person", "sofa"], ["dog", "cat", "person", "couch"])
    assert objects("children with mice and geese") == (["child", "mouse", "goose"], ["person", "mouse", "bird"])
    # Every occurrence counts.
    assert objects("a dog, a dog and a dog") == (["dog", "dog", "dog"], ["dog", "dog", "dog"])
    # A period glued to a word at a sentence end is split off, so the word still counts.
    assert objects("a dog. a cat") == (["dog", "cat"], ["dog", "cat"])


# --- metrics on a hand-made set ---------------------------------------------------------------------------

GROUND_TRUTH = {1: {"dog", "person", "frisbee"}, 2: {"cat", "couch"}, 3: {"bus", "car"}}
CAPTIONS = [
    {"image_id": 1, "caption": "A man throws a frisbee to his dog."},  # man, frisbee, dog: 3 mentions, 0 bad
    {"image_id": 1, "caption": "Two dogs and a cat play on a bench."},  # dog, cat, bench: 3, bad: cat, bench
    {"image_id": 2, "caption": "A kitten sleeps on a sofa next to a remote."},  # cat, couch, remote: 3, bad: remote
    # reference: "bus" -> "bu" (nothing), car, stop sign: 2, bad: stop sign; fixed: bus, car, stop sign: 3, bad: 1
    {"image_id": 3, "caption": "A bus and two cars stop at a stop sign."},
    {"image_id": 3, "caption": "An empty street."},  # no mention
]


def test_metrics_reference():
    result = Chair(GROUND_TRUTH).compute(CAPTIONS)
    metrics = result.metrics()
    # CHAIRi: hallucinated 0+2+1+1+0 = 4 of 3+3+3+2+0 = 11 mentions.
    assert metrics["CHAIRi"] == pytest.approx(4 / 11)
    # CHAIRs: captions 2, 3 and 4 of 5 have a hallucination.
    assert metrics["CHAIRs"] == pytest.approx(3 / 5)
    # recall: ground-truth objects mentioned 3 + 1 (dog) + 2 + 1 (car) + 0 = 7 of 3 + 3 + 2 + 2 + 2 = 12.
    assert metrics["recall"] == pytest.approx(7 / 12)
    # length: 8 + 9 + 10 + 10 + 3 words = 40 over 5 captions.
    assert metrics["mean_length_words"] == pytest.approx(8.0)
    assert (metrics["n_mentions"], metrics["n_hallucinated_mentions"], metrics["n_captions"]) == (11, 4, 5)
    second = result.details[1]
    assert second.words == ("dog", "cat", "bench")
    assert second.hallucinated == (("cat", "cat"), ("bench", "bench"))
    assert second.ground_truth == ("dog", "frisbee", "person")
    assert (second.chair_s, second.chair_i) == (1, pytest.approx(2 / 3))
    assert result.details[3].mentioned == ("car", "stop sign")


def test_metrics_fixed_have_other_names():
    metrics = Chair(GROUND_TRUTH, "fixed").compute(CAPTIONS).metrics()
    assert "CHAIRi" not in metrics and "CHAIRs" not in metrics
    assert metrics["CHAIRi_fixed"] == pytest.approx(4 / 12)  # the bus is a (correct) mention now
    assert metrics["CHAIRs_fixed"] == pytest.approx(3 / 5)
    assert metrics["recall_fixed"] == pytest.approx(8 / 12)  # caption 4 recalls bus and car
    assert metrics["mean_length_words"] == pytest.approx(8.0)


def test_no_mentions_and_bad_input():
    assert Chair({1: set()}).compute([{"image_id": 1, "caption": "nothing here"}]).chair_i == 0.0
    with pytest.raises(ValueError, match="image_id 9 has no ground truth"):
        Chair(GROUND_TRUTH).compute([{"image_id": 9, "caption": "a dog"}])
    with pytest.raises(ValueError, match=r"captions\[0\]: missing field 'caption'"):
        Chair(GROUND_TRUTH).compute([{"image_id": 1}])
    with pytest.raises(ValueError, match="unknown CHAIR mode"):
        Chair({}, "opera")


# --- ground truth from COCO annotations -------------------------------------------------------------------

INSTANCES = {
    "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}, {"id": 3, "file_name": "c.jpg"}],
    "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}, {"id": 6, "name": "bus"}],
    "annotations": [{"id": 10, "image_id": 1, "category_id": 1}, {"id": 11, "image_id": 1, "category_id": 18},
                    {"id": 12, "image_id": 1, "category_id": 18}],
}
CAPTION_ANNS = {
    "images": INSTANCES["images"],
    "annotations": [{"id": 20, "image_id": 1, "caption": "A man throws a frisbee."},
                    {"id": 21, "image_id": 2, "caption": "A red bus parked by the road."}],
}


def test_ground_truth_from_annotations():
    # Image 1: instances person, dog + caption man -> person, frisbee. Image 2: only the caption, where the
    # reference reads "bu". Image 3: listed but unannotated -> empty ground truth.
    assert Chair.from_annotations([INSTANCES], [CAPTION_ANNS]).ground_truth == {
        1: {"person", "dog", "frisbee"}, 2: set(), 3: set()}
    assert Chair.from_annotations([INSTANCES], [CAPTION_ANNS], "fixed").ground_truth[2] == {"bus"}


def write_coco(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    instances, captions = folder / "instances_val2014.json", folder / "captions_val2014.json"
    instances.write_text(json.dumps(INSTANCES), encoding="utf-8")
    captions.write_text(json.dumps(CAPTION_ANNS), encoding="utf-8")
    return [instances, captions]


def test_ground_truth_cache_is_hit_on_second_call(tmp_path, monkeypatch):
    files = write_coco(tmp_path / "annotations")
    first = Chair.from_coco(files, cache_dir=tmp_path / "cache")
    assert not first.from_cache and first.cache_path is not None and first.cache_path.is_file()

    def no_rebuild(*args, **kwargs):
        raise AssertionError("ground truth rebuilt although it is cached")

    monkeypatch.setattr(chair_coco, "build_ground_truth", no_rebuild)
    second = Chair.from_coco(files, cache_dir=tmp_path / "cache")
    assert second.from_cache and second.cache_path == first.cache_path
    assert second.ground_truth == first.ground_truth == {1: {"person", "dog", "frisbee"}, 2: set(), 3: set()}
    monkeypatch.undo()
    # Another mode, or a changed file, is another cache entry.
    assert not Chair.from_coco(files, "fixed", cache_dir=tmp_path / "cache").from_cache
    files[1].write_text(json.dumps(CAPTION_ANNS) + "\n", encoding="utf-8")
    assert not Chair.from_coco(files, cache_dir=tmp_path / "cache").from_cache


# --- the CLI function and its errors ----------------------------------------------------------------------

def test_chair_cli_json_and_jsonl(tmp_path):
    write_coco(tmp_path / "coco" / "annotations")
    records = [{"image_id": 1, "caption": "A man and a cat."}, {"image_id": "2", "caption": "Two buses."}]
    as_list = tmp_path / "caps.json"
    as_list.write_text(json.dumps(records), encoding="utf-8")
    as_lines = tmp_path / "caps.jsonl"
    as_lines.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    out = chair_cli(as_list, tmp_path / "coco", cache_dir=tmp_path / "cache")
    assert out == json.loads(json.dumps(out))  # JSON-able as it is
    # Mentions: person (ok), cat (hallucinated); bus on image 2 whose ground truth is empty (hallucinated).
    assert out["metrics"]["CHAIRi"] == pytest.approx(2 / 3)
    assert out["metrics"]["CHAIRs"] == pytest.approx(1.0)
    assert out["captions"][0]["mentioned"] == ["person", "cat"]
    assert out["captions"][0]["hallucinated"] == [["cat", "cat"]]
    assert out["captions"][1]["image_id"] == 2 and out["captions"][1]["hallucinated"] == [["bus", "bus"]]
    again = chair_cli(as_lines, tmp_path / "coco" / "annotations", cache_dir=tmp_path / "cache")
    assert again["metrics"] == out["metrics"]
    fixed = chair_cli(as_list, tmp_path / "coco", mode="fixed", cache_dir=tmp_path / "cache")
    # Fixed mode: image 2's caption "A red bus parked ..." now puts bus in its ground truth: 1 of 3 bad.
    assert fixed["metrics"]["CHAIRi_fixed"] == pytest.approx(1 / 3) and "CHAIRi" not in fixed["metrics"]
    assert fixed["captions"][1]["CHAIRi_fixed"] == 0.0 and "CHAIRi" not in fixed["captions"][1]


def test_default_cache_folder_is_the_mgbench_cache(tmp_path):
    # conftest points MGBENCH_CACHE at a session temp folder.
    chair = Chair.from_coco(write_coco(tmp_path / "annotations"))
    assert chair.cache_path is not None
    assert chair.cache_path.parent == Path(os.environ["MGBENCH_CACHE"]) / "chair"
    assert not Chair.from_coco(write_coco(tmp_path / "annotations"), use_cache=False).from_cache


@pytest.mark.parametrize(("content", "message"), [
    ("[{\"image_id\": 1, \"caption\": \"a dog\"},", "caps.json: invalid JSON at line 1"),
    ("{\"image_id\": 1}", "caps.json: line 1 (image_id 1): field 'caption': missing"),
    ("{\"image_id\": 1, \"caption\": \"a\"}\n{\"caption\": \"b\"}", "caps.json: line 2: field 'image_id': missing"),
    ("[{\"image_id\": \"abc\", \"caption\": \"a\"}]", "record 0: field 'image_id': expected a COCO image id"),
    ("[{\"image_id\": 1, \"caption\": 5}]", "record 0 (image_id 1): field 'caption': expected a string"),
    ("[{\"image_id\": 77, \"caption\": \"a\"}]", "record 0 (image_id 77): field 'image_id': image 77 is in none"),
    ("{\"a\": 1} x", "caps.json: line 1: invalid JSON"),
    ("[]", "caps.json: no captions in the file"),
    ("[3]", "caps.json: record 0: expected an object, got"),
])
def test_chair_cli_malformed_captions(tmp_path, content, message):
    write_coco(tmp_path / "annotations")
    path = tmp_path / "caps.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as info:
        chair_cli(path, tmp_path / "annotations", cache_dir=tmp_path / "cache")
    assert message in str(info.value)


def test_chair_cli_needs_both_annotation_kinds(tmp_path):
    files = write_coco(tmp_path / "annotations")
    files[1].unlink()
    path = tmp_path / "caps.json"
    path.write_text("[{\"image_id\": 1, \"caption\": \"a\"}]", encoding="utf-8")
    with pytest.raises(DataError, match="found no captions_"):
        chair_cli(path, tmp_path / "annotations", cache_dir=tmp_path / "cache")


# --- the synonym list -------------------------------------------------------------------------------------

def test_shipped_synonyms_keep_the_reference_quirks():
    lines = parse_synonyms(SYNONYMS_FILE.read_text(encoding="utf-8"))
    assert len(lines) == 80 and len({line[0] for line in lines}) == 80
    entries = {entry for line in lines for entry in line}
    assert {" motor bike", " cheesecake", "iPhone"} <= entries


@pytest.mark.skipif(not SHARED_SYNONYMS.is_file(), reason="shared reference synonym file not present")
def test_shipped_synonyms_equal_the_reference_file():
    ours = parse_synonyms(SYNONYMS_FILE.read_text(encoding="utf-8"))
    theirs = [line.strip().split(", ") for line in SHARED_SYNONYMS.read_text(encoding="utf-8").splitlines()]
    assert ours == theirs
