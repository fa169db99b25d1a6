"""Campaign results from a real store: majority verdicts, k/n with Wilson intervals, agreement, judge vs people.

The ratings below are written through the same function the web app uses (record_rating); the expected
numbers are worked out by hand in the comments. Pooled advanced_meme units (three raters; b0 has two):
a0 yyn, a1 nny, a2 yyy, b0 yn, b1 yyy, b2 nnn.
- Fleiss over the five 3-rating units: mean P = (1/3 + 1/3 + 1 + 1 + 1)/5 = 11/15, p_yes = 9/15,
  P_e = 0.36 + 0.16 = 0.52, kappa = (11/15 - 13/25)/(12/25) = 4/9.
- Krippendorff over all six: o_yy = 1 + 3 + 3 = 7, o_nn = 1 + 3 = 4, o_yn = o_ny = 1 + 1 + 1 = 3; n = 17,
  n_yes = 10, n_no = 7; alpha = 1 - (6/17) / (2*10*7/(17*16)) = 11/35.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.judges.base import JudgeRequest, Verdict
from harness.judges.cache import judgment_key, write_verdict
from harness.judges.prompts import coverage_prompt, failure_prompt, request_met_prompt
from harness.metrics import proportion
from harness.store import Store
from human_eval.campaign import CampaignSpec, Gold, create_campaign
from human_eval.ratings import record_rating
from human_eval.results import AWAITING, campaign_results, human_metric
from human_eval.testing import PROMPTS, build_store

VOTES = {  # (model, task, sample) -> answers of r0, r1, r2 (None: not rated)
    ("model-a", "advanced_meme", 0): ["yes", "yes", "no"],
    ("model-a", "advanced_meme", 1): ["no", "no", "yes"],
    ("model-a", "advanced_meme", 2): ["yes", "yes", "yes"],
    ("model-b", "advanced_meme", 0): ["yes", "no", None],
    ("model-b", "advanced_meme", 1): ["yes", "yes", "yes"],
    ("model-b", "advanced_meme", 2): ["no", "no", "no"],
    ("model-a", "failure_caption", 0): ["no:repetition", "no:repetition", "yes"],
    ("model-a", "failure_caption", 1): ["yes", "yes", "yes"],
    ("model-a", "failure_caption", 2): ["no:fragment", "no:other", "no:fragment"],
}


def text(model: str, task: str, i: int) -> str:
    return f"answer {i} of {model} to {task}"


@pytest.fixture
def rated(tmp_path: Path) -> Path:
    path = tmp_path / "store.sqlite"
    keys = build_store(path, tmp_path / "images", samples=3, text=text)
    gold_key = keys[("model-b", "failure_caption", "img002")]
    with Store(path) as store:
        create_campaign(store, CampaignSpec(name="c1", tasks=("advanced_meme", "failure_caption"),
                                            models=("model-a", "model-b"), raters=("r0", "r1", "r2"),
                                            gold=(Gold(gold_key, "yes"),)))
        item_of = dict(store.conn.execute("SELECT generation_key, item_id FROM rating_items"))
        for (model, task, i), answers in VOTES.items():
            for rater, answer in zip(("r0", "r1", "r2"), answers, strict=True):
                if answer is not None:
                    verdict, _, kind = answer.partition(":")
                    record_rating(store.conn, "c1", rater, item_of[keys[(model, task, f"img{i:03d}")]], verdict,
                                  kind or None)
        record_rating(store.conn, "c1", "r0", item_of[gold_key], "no", "other")  # a wrong gold answer: no effect
        judge = [  # (model, task, sample, judge's raw verdict, linked by generation_key?)
            ("model-a", "advanced_meme", 0, "yes", True), ("model-a", "advanced_meme", 1, "yes", True),
            ("model-a", "advanced_meme", 2, "no", True), ("model-a", "failure_caption", 0, "yes", True),
            ("model-a", "failure_caption", 1, "no", True), ("model-a", "failure_caption", 2, "yes", False),
        ]
        for model, task, i, verdict, linked in judge:
            make = failure_prompt if task.startswith("failure") else request_met_prompt
            prompt = make(PROMPTS[task], text(model, task, i))
            key = keys[(model, task, f"img{i:03d}")]
            write_verdict(store, judgment_key("rule", "v1", prompt), "rule", "v1",
                          JudgeRequest(prompt, key if linked else None), Verdict(verdict, raw_text=verdict))
        other = coverage_prompt("a caption", text("model-a", "advanced_meme", 1))  # not a proxy judgment
        write_verdict(store, judgment_key("rule", "v1", other), "rule", "v1",
                      JudgeRequest(other, keys[("model-a", "advanced_meme", "img001")]), Verdict("no", raw_text="no"))
    return path


def test_human_metrics_are_majority_k_over_n_with_wilson(rated: Path) -> None:
    with Store(rated) as store:
        meme_a = human_metric(store, "model-a", "advanced_meme")
        meme_b = human_metric(store, "model-b", "advanced_meme", campaign="c1")
        fail_a = human_metric(store, "model-a", "failure_caption")
        fail_b = human_metric(store, "model-b", "failure_caption")
        nothing = human_metric(store, "model-z", "advanced_meme")
    expected = proportion("request_met_human", 2, 3)
    assert (meme_a.name, meme_a.details["k"], meme_a.n) == ("request_met_human", 2, 3)
    assert (meme_a.ci_low, meme_a.ci_high) == (expected.ci_low, expected.ci_high)
    assert (meme_b.details["k"], meme_b.n, meme_b.details["ties"], meme_b.details["incomplete"]) == (1, 2, 1, 1)
    assert (fail_a.name, fail_a.details["k"], fail_a.n, fail_a.higher_is_better) == ("failure_rate_human", 2, 3, False)
    assert fail_a.details["failure_kinds"] == {"repetition": 1, "fragment": 1}
    assert fail_b.value is None and fail_b.details["status"] == AWAITING and fail_b.details["items"] == 2  # gold apart
    assert nothing.value is None and nothing.details["status"] == AWAITING


def test_campaign_results_agreement_and_judge(rated: Path) -> None:
    with Store(rated) as store:
        res = campaign_results(store, "c1", resamples=200)
    agreement = {(a["task"], a["labels"], a["statistic"]): a for a in res["agreement"]}
    fleiss = agreement[("advanced_meme", "verdict", "fleiss_kappa")]
    alpha = agreement[("advanced_meme", "verdict", "krippendorff_alpha")]
    assert fleiss["value"] == pytest.approx(4 / 9, abs=1e-12) and fleiss["n_items"] == 5
    assert alpha["value"] == pytest.approx(11 / 35, abs=1e-12) and alpha["n_items"] == 6
    assert ("failure_caption", "verdict+kind", "krippendorff_alpha") in agreement
    judges = {j["task"]: j for j in res["judge_vs_people"]}
    # advanced_meme: judge yes/yes/no vs people yes/no/yes -> 1 of 3 agree; the coverage judgment is ignored
    assert (judges["advanced_meme"]["judge"], judges["advanced_meme"]["n"], judges["advanced_meme"]["agree"]) == \
        ("rule@v1", 3, 1)
    # failure_caption: judge "is a failure" yes/no/yes = people no/yes/no -> all agree (one linked by prompt only)
    assert (judges["failure_caption"]["n"], judges["failure_caption"]["agree"]) == (3, 3)
    per_model = {(m["task"], m["model"]): m for m in res["per_model"]}
    assert (per_model[("failure_caption", "model-b")]["n"], per_model[("advanced_meme", "model-a")]["k"]) == (0, 2)
