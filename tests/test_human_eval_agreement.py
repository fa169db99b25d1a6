"""Agreement statistics against literal hand-computed and published values.

Hand computations (written out so a reader can redo them):

Four items, three raters each, yes/no counts (3,0), (2,1), (1,2), (0,3):
- Fleiss: P_i = (sum_j n_ij^2 - n) / (n(n-1)) with n=3 -> 1, 1/3, 1/3, 1; mean P = 2/3. p_yes = p_no = 6/12,
  P_e = 1/4 + 1/4 = 1/2. kappa = (2/3 - 1/2) / (1 - 1/2) = 1/3.
- Krippendorff (nominal): coincidences o_yy = 3 + 1 = 4, o_nn = 1 + 3 = 4, o_yn = o_ny = 1 + 1 = 2 (each unit's
  pairs weighted 1/(m_u - 1) = 1/2); n = 12, n_yes = n_no = 6. D_o = 4/12 = 1/3;
  D_e = 2 * 6 * 6 / (12 * 11) = 6/11. alpha = 1 - (1/3)/(6/11) = 7/18.

Published: Fleiss (1971) as tabulated on Wikipedia's "Fleiss' kappa" page (10 subjects, 14 raters, 5 categories)
kappa = 0.210; Krippendorff (2011) "Computing Krippendorff's alpha-reliability", the 4-observer, 12-unit example
with missing values, nominal alpha = 0.743.

Cohen's kappa on the 2x2 table [[20, 5], [10, 15]]: p_o = 35/50 = 0.7, p_e = (25*30 + 25*20)/50^2 = 0.5,
kappa = (0.7 - 0.5)/(1 - 0.5) = 0.4. Wilson 95% for 35/50 from its formula.
"""

from __future__ import annotations

import math

import pytest

from human_eval.agreement import fleiss, judge_vs_people, kripp_alpha, majority

YN = ("yes", "no")
TINY = [["yes"] * 3, ["yes", "yes", "no"], ["yes", "no", "no"], ["no"] * 3]


def test_majority_and_ties() -> None:
    assert majority(["yes", "no", "yes"]) == "yes"
    assert majority(["no"]) == "no"
    assert majority(["yes", "no"]) is None
    assert majority(["a", "a", "b", "b", "c"]) is None
    assert majority([]) is None


def test_fleiss_kappa_hand_computed() -> None:
    result = fleiss(TINY, YN, resamples=200)
    assert result.value == pytest.approx(1 / 3, abs=1e-12)
    assert (result.n_items, result.n_ratings) == (4, 12)
    assert result.ci_low <= result.value <= result.ci_high


def test_krippendorff_alpha_hand_computed() -> None:
    result = kripp_alpha(TINY, YN, resamples=200)
    assert result.value == pytest.approx(7 / 18, abs=1e-12)


def test_fleiss_kappa_published_example() -> None:
    rows = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
            [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    categories = ("1", "2", "3", "4", "5")
    units = [[c for c, count in zip(categories, row, strict=True) for _ in range(count)] for row in rows]
    assert round(fleiss(units, categories, resamples=50).value, 3) == 0.210


def test_krippendorff_alpha_published_example() -> None:
    nan = None
    observers = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
        [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
    ]
    units = [[str(obs[u]) for obs in observers if obs[u] is not None] for u in range(12)]
    result = kripp_alpha(units, ("1", "2", "3", "4", "5"), resamples=50)
    assert round(result.value, 3) == 0.743
    assert result.n_items == 11 and "1 item(s) with fewer than 2 ratings left out" in result.note


def test_fleiss_uses_units_with_the_common_number_of_ratings() -> None:
    result = fleiss([*TINY, ["yes", "no"], ["yes"]], YN, resamples=50)
    assert result.value == pytest.approx(1 / 3, abs=1e-12)
    assert result.n_items == 4 and "2 item(s) with another number of ratings left out" in result.note


def test_undefined_statistics_are_none_not_zero() -> None:
    same = [["yes", "yes"], ["yes", "yes"], ["yes", "yes"]]
    for stat in (fleiss, kripp_alpha):
        result = stat(same, YN, resamples=50)
        assert result.value is None and "undefined" in result.note
    assert fleiss([["yes"]], YN).value is None


def test_bootstrap_interval_is_seeded() -> None:
    units = TINY * 5
    a, b = kripp_alpha(units, YN, resamples=300, seed=1), kripp_alpha(units, YN, resamples=300, seed=1)
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)
    assert a.ci_low < a.value < a.ci_high and "300 resamples, seed 1" in a.interval


def test_judge_vs_people_hand_computed() -> None:
    table = {("yes", "yes"): 20, ("yes", "no"): 5, ("no", "yes"): 10, ("no", "no"): 15}
    pairs = [pair for pair, count in table.items() for _ in range(count)]
    out = judge_vs_people(pairs)
    assert (out["n"], out["agree"]) == (50, 35)
    assert out["agreement"] == pytest.approx(0.7)
    assert out["cohen_kappa"] == pytest.approx(0.4, abs=1e-12)
    assert out["cohen_kappa_ci"][0] < 0.4 < out["cohen_kappa_ci"][1]
    z, p, n = 1.959963984540054, 0.7, 50
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert out["agreement_ci"] == pytest.approx([centre - half, centre + half], abs=1e-12)
    assert out["table"]["counts"] == [[20, 5], [10, 15]]


def test_judge_vs_people_degenerate_cases() -> None:
    assert judge_vs_people([])["n"] == 0
    one_sided = judge_vs_people([("yes", "yes")] * 4)
    assert one_sided["agreement"] == 1.0 and one_sided["cohen_kappa"] is None and "undefined" in one_sided["note"]
