"""Agreement statistics: majority verdicts, Fleiss' kappa, Krippendorff's alpha, and judge-vs-people kappa.

Pure functions over labels; nothing here reads the store.

- A unit is one item's list of labels (one per rater). Fleiss' kappa (statsmodels) needs the same number
  of ratings per unit: it uses the units with the most common count (at least 2) and says how many it left
  out. Krippendorff's alpha (the `krippendorff` package, nominal) uses every unit with 2 or more ratings.
- Both intervals are percentile bootstraps over units (seeded; resamples where the statistic is undefined,
  e.g. every label the same, are dropped and counted).
- A statistic that is undefined on the data (every rating the same category) is None with a note, never 0.
- Judge vs people: Cohen's kappa on the 2x2 table of (people's majority, judge verdict) with statsmodels'
  asymptotic interval, and the raw agreement rate with a Wilson interval.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import krippendorff
import numpy as np
from statsmodels.stats.inter_rater import cohens_kappa, fleiss_kappa

from harness.metrics import proportion

BOOTSTRAP = 2000


@dataclass(frozen=True)
class Agreement:
    statistic: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n_items: int
    n_ratings: int
    interval: str
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def majority(labels: Sequence[str]) -> str | None:
    """The most frequent label, or None on a tie for the top (or no labels)."""
    ranked = Counter(labels).most_common()
    if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]


def count_table(units: Sequence[Sequence[str]], categories: Sequence[str]) -> np.ndarray:
    """units x categories matrix of how many raters gave each label."""
    index = {c: i for i, c in enumerate(categories)}
    table = np.zeros((len(units), len(categories)), dtype=float)
    for row, labels in enumerate(units):
        for label in labels:
            table[row, index[label]] += 1
    return table


def _fleiss(table: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(fleiss_kappa(table, method="fleiss"))


def _alpha(table: np.ndarray) -> float:
    if np.count_nonzero(table.sum(axis=0)) < 2:
        return float("nan")  # one category only: expected disagreement is 0, alpha undefined
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(krippendorff.alpha(value_counts=table, level_of_measurement="nominal"))


def _bootstrap(stat: Callable[[np.ndarray], float], table: np.ndarray, *, resamples: int, seed: int,
               alpha: float) -> tuple[float | None, float | None, int]:
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        value = stat(table[rng.integers(0, len(table), len(table))])
        if np.isfinite(value):
            values.append(value)
    if not values:
        return None, None, resamples
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high), resamples - len(values)


def _agreement(name: str, stat: Callable[[np.ndarray], float], table: np.ndarray, note: str, *,
               resamples: int, seed: int, alpha: float) -> Agreement:
    n_ratings = int(table.sum())
    if len(table) < 2:
        return Agreement(name, None, None, None, len(table), n_ratings, "-", (note + " fewer than 2 items").strip())
    value = stat(table)
    if not np.isfinite(value):
        return Agreement(name, None, None, None, len(table), n_ratings, "-",
                         (note + " undefined: every rating is the same category").strip())
    low, high, dropped = _bootstrap(stat, table, resamples=resamples, seed=seed, alpha=alpha)
    if dropped:
        note = f"{note} {dropped} of {resamples} resamples undefined and dropped".strip()
    interval = f"percentile bootstrap over items, {resamples} resamples, seed {seed}, {1 - alpha:.0%}"
    return Agreement(name, value, low, high, len(table), n_ratings, interval, note)


def fleiss(units: Sequence[Sequence[str]], categories: Sequence[str], *, resamples: int = BOOTSTRAP, seed: int = 0,
           alpha: float = 0.05) -> Agreement:
    """Fleiss' kappa over the units rated by the most common number (>= 2) of raters."""
    counts = Counter(len(u) for u in units if len(u) >= 2)
    if not counts:
        return Agreement("fleiss_kappa", None, None, None, 0, 0, "-", "no item has 2 or more ratings")
    size = max(counts.items(), key=lambda kv: (kv[1], kv[0]))[0]
    kept = [u for u in units if len(u) == size]
    left = len(units) - len(kept)
    note = f"{left} item(s) with another number of ratings left out" if left else ""
    return _agreement("fleiss_kappa", _fleiss, count_table(kept, categories), note, resamples=resamples,
                      seed=seed, alpha=alpha)


def kripp_alpha(units: Sequence[Sequence[str]], categories: Sequence[str], *, resamples: int = BOOTSTRAP,
                seed: int = 0, alpha: float = 0.05) -> Agreement:
    """Krippendorff's alpha (nominal) over every unit with 2 or more ratings."""
    kept = [u for u in units if len(u) >= 2]
    left = len(units) - len(kept)
    note = f"{left} item(s) with fewer than 2 ratings left out" if left else ""
    return _agreement("krippendorff_alpha", _alpha, count_table(kept, categories), note, resamples=resamples,
                      seed=seed, alpha=alpha)


def judge_vs_people(pairs: Sequence[tuple[str, str]], categories: Sequence[str] = ("yes", "no"),
                    alpha: float = 0.05) -> dict[str, Any]:
    """Agreement between people's majority verdict and the judge's, over items where both exist."""
    n = len(pairs)
    agree = sum(h == j for h, j in pairs)
    rate = proportion("agreement", agree, n, alpha=alpha)
    out: dict[str, Any] = {"n": n, "agree": agree, "agreement": rate.value, "agreement_ci": [rate.ci_low, rate.ci_high],
                           "cohen_kappa": None, "cohen_kappa_ci": [None, None], "note": ""}
    if n == 0:
        out["note"] = "no item has both a people's majority and a judge verdict"
        return out
    index = {c: i for i, c in enumerate(categories)}
    table = np.zeros((len(categories), len(categories)))
    for human, judge in pairs:
        table[index[human], index[judge]] += 1
    out["table"] = {"rows_people_cols_judge": list(categories), "counts": table.astype(int).tolist()}
    expected = float((table.sum(axis=1) * table.sum(axis=0)).sum()) / n**2
    if expected >= 1.0:
        out["note"] = "kappa undefined: people and judge each used a single category"
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = cohens_kappa(table, return_results=True)
    out["cohen_kappa"] = float(result.kappa)
    out["cohen_kappa_ci"] = [float(result.kappa_low), float(result.kappa_upp)]
    out["cohen_kappa_interval"] = "asymptotic (statsmodels cohens_kappa), 95%"
    return out
