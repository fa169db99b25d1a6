"""tasks.metrics.caption: pycocoevalcap scorers one by one, checked on cases small enough to work by hand.

Java is needed for the PTB tokenizer and METEOR; those tests skip without it. The Java-less and broken-Java
paths run in a subprocess with a PATH that has no (or a failing) `java`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.metrics.caption import (
    SPICE_STATUS,
    caption_cli,
    caption_metrics,
    load_caption_references,
    load_caption_results,
    ptb_tokenize,
    simple_tokenize,
)
from tasks.readers.errors import DataError

REPO = Path(__file__).resolve().parents[1]
needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="java not on PATH")

# One image: candidate and reference share 5 of 6 words, in order.
PARTIAL_REFS = {1: ["a cat is on the mat"]}
PARTIAL_CANDS = {1: "a cat sits on the mat"}


@pytest.fixture(scope="module")
def partial() -> dict:
    return caption_metrics(PARTIAL_REFS, PARTIAL_CANDS)


@needs_java
def test_bleu_rouge_cider_by_hand(partial: dict) -> None:
    # candidate "a cat sits on the mat", reference "a cat is on the mat", both 6 words -> brevity penalty 1
    # 1-grams: a cat on the mat match, sits does not              -> p1 = 5/6
    # 2-grams: "a cat", "on the", "the mat" of 5                   -> p2 = 3/5
    # 3-grams: "on the mat" of 4                                   -> p3 = 1/4
    # 4-grams: none of 3; pycocoevalcap adds tiny = 1e-15 on top   -> p4 = 1e-15 / 3
    assert partial["Bleu_1"] == pytest.approx(5 / 6)
    assert partial["Bleu_2"] == pytest.approx((5 / 6 * 3 / 5) ** 0.5)  # sqrt(0.5) = 0.7071
    assert partial["Bleu_3"] == pytest.approx((5 / 6 * 3 / 5 * 1 / 4) ** (1 / 3))  # 0.125^(1/3) = 0.5
    assert partial["Bleu_4"] == pytest.approx((0.125 * 1e-15 / 3) ** 0.25, rel=1e-6)  # 8.03e-5: "about 0"
    # ROUGE-L: LCS "a cat on the mat" = 5 -> P = R = 5/6; F_beta with P = R is P
    assert partial["ROUGE_L"] == pytest.approx(5 / 6)
    # CIDEr-D on ONE image: idf = log(#images) - log(max(1, df)) = log 1 - log 1 = 0 for every n-gram -> 0
    assert partial["CIDEr"] == 0.0
    assert partial["SPICE"] is None and partial["SPICE_status"] == SPICE_STATUS
    assert all(partial[f"{m}_status"] == "ok" for m in ("Bleu_4", "METEOR", "ROUGE_L", "CIDEr"))


@needs_java
def test_meteor_by_hand(partial: dict) -> None:
    # METEOR 1.5 "-l en -norm": alpha .85, beta .2, gamma .6, delta .75 (content vs function words), match
    # weights exact 1, paraphrase .6. All six words align ("sits"~"is" is a paraphrase match) in one chunk,
    # which Meteor scores with no fragmentation penalty. Content words: cat sits mat / cat mat.
    #   P = (.75 * (1 + .6 + 1) + .25 * 3) / (.75 * 3 + .25 * 3) = 2.7 / 3 = 0.9
    #   R = (.75 * 2 + .25 * (1 + .6 + 1 + 1)) / (.75 * 2 + .25 * 4) = 2.4 / 2.5 = 0.96
    #   Fmean = P R / (.85 P + .15 R) = .864 / .909 = 96/101 = 0.950495...
    # (The value pycocoevalcap printed first, 0.9504950495049506, is what led to this derivation.)
    assert partial["METEOR"] == pytest.approx(96 / 101)


@needs_java
def test_meteor_penalty_and_corpus_pooling_by_hand() -> None:
    out = caption_metrics({1: ["a cat sits on the mat"], 2: ["a dog runs"]}, {1: "a cat", 2: "zebra"})
    # Corpus METEOR pools the statistics of both images (it is not the mean of the two sentence scores).
    # hyp words: a(f) cat(c) | zebra(c); matched a, cat.  ref words: a cat sits on the mat | a dog runs,
    # content cat sits mat dog runs (5), function a on the a (4); matched a, cat.
    #   P = (.75 * 1 + .25 * 1) / (.75 * 2 + .25 * 1) = 1 / 1.75;  R = 1 / (.75 * 5 + .25 * 4) = 1 / 4.75
    #   Fmean = P R / (.85 P + .15 R);  1 chunk over 2 matches -> penalty = .6 * (1/2)^.2
    p, r = 1 / 1.75, 1 / 4.75
    assert out["METEOR"] == pytest.approx(p * r / (0.85 * p + 0.15 * r) * (1 - 0.6 * 0.5**0.2))  # 0.11109
    # A candidate sharing no word with its references: image 2's BLEU is ~0, and it drags the corpus down:
    # 1-grams matched 2 ("a", "cat") of 3 guessed, with brevity penalty exp(1 - 9/3) for 3 words vs 9.
    assert out["Bleu_1"] == pytest.approx(2 / 3 * 2.718281828459045 ** (1 - 9 / 3))
    zero = caption_metrics({1: ["a cat sits on the mat"]}, {1: "zebra"}, scorers=("Bleu", "ROUGE_L"))
    # (0 + 1e-15) / (1 + 1e-9) * exp(1 - 6/1) ~ 7e-18
    assert zero["ROUGE_L"] == 0.0 and zero["Bleu_1"] < 1e-9 and zero["Bleu_4"] < 1e-9
    assert zero["METEOR"] is None and zero["METEOR_status"] == "not requested"


@needs_java
def test_identical_captions_and_cli(tmp_path: Path) -> None:
    annotations = {"images": [{"id": 1}, {"id": 2}, {"id": 3}], "annotations": [
        {"id": 10, "image_id": 1, "caption": "A cat sits on the mat."},
        {"id": 11, "image_id": 2, "caption": "a dog runs"},
        {"id": 12, "image_id": 3, "caption": "a bird"},
    ]}
    ann, res = tmp_path / "captions.json", tmp_path / "results.json"
    ann.write_text(json.dumps(annotations))
    res.write_text(json.dumps([{"image_id": 1, "caption": "a cat sits on the mat"},
                               {"image_id": 2, "caption": "A dog runs!"}]))
    out = caption_cli(ann, res)
    json.dumps(out)
    assert (out["n_images"], out["annotation_images_without_result"]) == (2, 1)
    assert out["tokenizer"].startswith("PTBTokenizer")  # lower-cases and drops "." and "!": now identical
    for m in ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"):
        assert out[m] == pytest.approx(1.0, abs=1e-8)  # (correct + 1e-15) / (guessed + 1e-9) ~ 1
    assert out["METEOR"] == 1.0 and out["ROUGE_L"] == 1.0
    # CIDEr-D, 2 images so idf = log 2 - log df: "a" is in both references (idf 0), every other n-gram in one.
    # Image 1 (6 words): cosine 1 for each n = 1..4 -> mean 1 -> x10 = 10.
    # Image 2 (3 words): cosine 1 for n = 1..3, no 4-grams -> 0 -> mean 3/4 -> 7.5.   (10 + 7.5) / 2 = 8.75
    assert out["CIDEr"] == pytest.approx(8.75)


@needs_java
def test_cider_partial_match_by_hand() -> None:
    out = caption_metrics({1: ["a cat sits"], 2: ["a dog runs"]}, {1: "a cat runs", 2: "a dog runs"},
                          scorers=("CIDEr",))
    # L = log 2 is the idf of every n-gram but "a" (in both references: idf 0). Image 1, candidate vs reference:
    #   1-grams {a:0, cat:L, runs:L} . {a:0, cat:L, sits:L} = L^2 over |.|^2 = 2 L^2 -> 1/2
    #   2-grams {a cat, cat runs} . {a cat, cat sits} -> 1/2;  3-grams differ -> 0;  no 4-grams -> 0
    #   mean (1/2 + 1/2 + 0 + 0) / 4 = 1/4 -> x10 = 2.5.  Image 2 identical, 3 words -> 7.5.  (2.5 + 7.5) / 2 = 5
    assert out["CIDEr"] == pytest.approx(5.0)


@needs_java
def test_ptb_tokenize_keeps_lines_aligned() -> None:
    # The stock wrapper only replaces "\n": a "\r" or U+2028 would split a caption and shift the rest.
    texts = ["A cat\ron the mat.", "x\u2028y", "Isn't it?", ""]
    assert ptb_tokenize(texts) == ["a cat on the mat", "x y", "is n't it", ""]


def test_simple_fallback_tokenizer() -> None:
    assert simple_tokenize("A dog's ball, isn't it?!") == "a dog s ball isn t it"


def _run_without_java(path_dir: Path) -> dict:
    code = ("import json; from tasks.metrics.caption import caption_metrics; "
            f"print(json.dumps(caption_metrics({PARTIAL_REFS!r}, {PARTIAL_CANDS!r})))")
    env = {**os.environ, "PATH": str(path_dir), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_no_java_reports_meteor_and_tokenizer_unavailable(tmp_path: Path) -> None:
    out = _run_without_java(tmp_path)  # an empty folder as the whole PATH: no java
    assert out["tokenizer"] == "simple fallback: PTBTokenizer unavailable: java not found on PATH"
    assert out["METEOR"] is None and out["METEOR_status"] == "unavailable: RuntimeError: java not found on PATH"
    assert out["SPICE"] is None and out["SPICE_status"] == SPICE_STATUS
    # The text is already lower-case without punctuation, so the fallback gives the hand values above.
    assert out["Bleu_1"] == pytest.approx(5 / 6) and out["ROUGE_L"] == pytest.approx(5 / 6)
    assert "not comparable to published COCO numbers" in out["Bleu_4_status"]


def test_broken_java_reports_unavailable_without_hanging(tmp_path: Path) -> None:
    java = tmp_path / "java"
    java.write_text("#!/bin/sh\necho 'Error: simulated broken JVM' >&2\nexit 1\n")
    java.chmod(0o755)
    out = _run_without_java(tmp_path)
    assert out["tokenizer"] == ("simple fallback: PTBTokenizer unavailable: java exited with status 1: "
                                "Error: simulated broken JVM")
    assert out["METEOR"] is None
    assert out["METEOR_status"] == ("unavailable: RuntimeError: the METEOR JVM exited with status 1: "
                                    "Error: simulated broken JVM")
    assert out["CIDEr"] == 0.0 and out["Bleu_1"] == pytest.approx(5 / 6)


def test_caption_metrics_input_checks() -> None:
    with pytest.raises(ValueError, match="no reference captions"):
        caption_metrics({1: ["a"]}, {2: "b"})
    with pytest.raises(ValueError, match="no candidate"):
        caption_metrics({1: ["a"]}, {})
    with pytest.raises(ValueError, match="unknown scorers"):
        caption_metrics({1: ["a"]}, {1: "a"}, scorers=("SPICE",))


@pytest.mark.parametrize(
    ("content", "record", "field", "message"),
    [
        ({"image_id": 1, "caption": "x"}, None, None, "JSON list"),
        ([{"image_id": "1", "caption": "x"}], "record 0", "image_id", "expected an integer"),
        ([{"image_id": 1, "caption": "x"}, {"image_id": 1, "caption": "y"}], "record 1 (image_id 1)", "image_id",
         "a second caption"),
        ([{"image_id": 7, "caption": "x"}], "record 0 (image_id 7)", "image_id", "no reference captions"),
        ([{"image_id": 1, "caption": ["x"]}], "record 0 (image_id 1)", "caption", "expected a string"),
        ([{"image_id": 1}], "record 0 (image_id 1)", "caption", "missing"),
    ],
)
def test_malformed_results_file(tmp_path: Path, content: object, record: str | None, field: str | None,
                                message: str) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(content))
    with pytest.raises(DataError) as info:
        load_caption_results(path, {1: ["a cat"]})
    err = info.value
    assert (err.file, err.record, err.field) == (str(path), record, field)
    assert message in err.message


@pytest.mark.parametrize(
    ("content", "record", "field"),
    [
        ({"images": []}, None, "annotations"),
        ({"annotations": [{"image_id": 1, "caption": ""}]}, "annotation 0", "caption"),
        ({"annotations": [{"caption": "a"}]}, "annotation 0", "image_id"),
        ({"annotations": []}, None, "annotations"),
    ],
)
def test_malformed_annotations_file(tmp_path: Path, content: object, record: str | None, field: str | None) -> None:
    path = tmp_path / "captions.json"
    path.write_text(json.dumps(content))
    with pytest.raises(DataError) as info:
        load_caption_references(path)
    assert (info.value.file, info.value.record, info.value.field) == (str(path), record, field)
