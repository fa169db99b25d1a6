"""The report's statistics: intervals, tie-aware ranks, and paired tests between models on the same items.

- Ranks: a model's rank is 1 + the number of models whose 95% interval lies entirely on the better side of
  its own; models sharing a rank are tied (marked "="), and each row lists the models whose interval overlaps
  its own. Two models with overlapping intervals are never told apart by rank alone.
- Binary per-item outcomes: McNemar's test on the discordant pairs (statsmodels; exact binomial when fewer
  than 25 discordant pairs, else chi-square with continuity correction).
- Other per-item outcomes: a paired bootstrap of the difference (items resampled together for both models),
  with a percentile interval and a two-sided bootstrap p-value.
- p-values are Holm-adjusted within each (task, metric) family of pairs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np

EXACT_BELOW = 25  # discordant pairs under which McNemar uses the exact binomial test


def wilson(k: float, n: int, alpha: float = 0.05) -> tuple[float | None, float | None]:
    from statsmodels.stats.proportion import proportion_confint

    if n <= 0:
        return None, None
    low, high = proportion_confint(k, n, alpha=alpha, method="wilson")
    return float(low), float(high)


def mean_interval(values: Sequence[float]) -> tuple[float | None, float | None]:
    """A normal 95% interval on a mean (for per-item means that have no stored interval)."""
    n = len(values)
    if n < 2:
        return None, None
    arr = np.asarray(values, dtype=float)
    half = 1.96 * float(arr.std(ddof=1)) / n ** 0.5
    return float(arr.mean()) - half, float(arr.mean()) + half


def rank_with_ties(entries: Sequence[tuple[str, float | None, float | None, float | None]],
                   higher_is_better: bool) -> dict[str, dict[str, Any]]:
    """{name: {rank, tied, overlaps}} for (name, value, low, high) entries; entries without a value get none."""
    valued = [(n, v, lo if lo is not None else v, hi if hi is not None else v) for n, v, lo, hi in entries
              if v is not None]
    out: dict[str, dict[str, Any]] = {}
    for name, _, low, high in valued:
        better = sum(1 for other, _, olo, ohi in valued if other != name
                     and ((olo > high) if higher_is_better else (ohi < low)))
        overlaps = sorted(other for other, _, olo, ohi in valued if other != name and olo <= high and low <= ohi)
        out[name] = {"rank": better + 1, "overlaps": overlaps}
    for name, info in out.items():
        info["tied"] = any(o != name and out[o]["rank"] == info["rank"] for o in out)
    return out


def mcnemar_test(a: Sequence[int], b: Sequence[int]) -> dict[str, Any]:
    """McNemar's test for two models' 0/1 outcomes on the same items (a[i], b[i] belong to item i)."""
    from statsmodels.stats.contingency_tables import mcnemar

    x, y = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
    both = int(np.sum((x == 1) & (y == 1)))
    only_a = int(np.sum((x == 1) & (y == 0)))
    only_b = int(np.sum((x == 0) & (y == 1)))
    neither = int(np.sum((x == 0) & (y == 0)))
    discordant = only_a + only_b
    if discordant == 0:
        return {"method": "McNemar (no discordant pairs)", "statistic": None, "p": 1.0, "only_a": 0,
                "only_b": 0, "both": both, "neither": neither}
    exact = discordant < EXACT_BELOW
    result = mcnemar([[both, only_a], [only_b, neither]], exact=exact, correction=True)
    return {"method": "McNemar exact" if exact else "McNemar chi2 (corrected)",
            "statistic": float(result.statistic), "p": min(1.0, float(result.pvalue)),
            "only_a": only_a, "only_b": only_b, "both": both, "neither": neither}


def _rng(*parts: object) -> np.random.Generator:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def bootstrap_counts(n: int, resamples: int, *seed: object) -> np.ndarray:
    """A (resamples x n) matrix of how often each item is drawn in each resample (shared by all pairs)."""
    rng = _rng(*seed, n)
    draws = rng.integers(0, n, size=(resamples, n)) + (np.arange(resamples) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=resamples * n).reshape(resamples, n).astype(np.float64)


def paired_bootstrap(num_a: np.ndarray, den_a: np.ndarray, num_b: np.ndarray, den_b: np.ndarray,
                     counts: np.ndarray) -> dict[str, Any]:
    """Bootstrap of (sum num_a / sum den_a) - (sum num_b / sum den_b) over items resampled by `counts`."""
    stacked = np.stack([num_a, den_a, num_b, den_b], axis=1)  # items x 4
    sums = counts @ stacked  # resamples x 4
    with np.errstate(divide="ignore", invalid="ignore"):
        diffs = sums[:, 0] / sums[:, 1] - sums[:, 2] / sums[:, 3]
    diffs = diffs[np.isfinite(diffs)]
    observed = float(num_a.sum() / den_a.sum() - num_b.sum() / den_b.sum())
    if diffs.size == 0:
        return {"method": "paired bootstrap", "p": None, "diff_low": None, "diff_high": None, "observed": observed}
    b = diffs.size
    p = min(1.0, 2 * min((np.sum(diffs <= 0) + 1) / (b + 1), (np.sum(diffs >= 0) + 1) / (b + 1)))
    low, high = np.percentile(diffs, [2.5, 97.5])
    return {"method": f"paired bootstrap ({counts.shape[0]} resamples)", "p": float(p), "diff_low": float(low),
            "diff_high": float(high), "observed": observed}


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment (as statsmodels' multipletests "holm", without its gc.collect per call)."""
    present = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (len(present) - rank) * p))
        adjusted[i] = running
    return adjusted


def paired_tests(per_model: dict[str, dict[str, tuple[float, float]]], kind: str, higher_is_better: bool,
                 resamples: int, *seed: object) -> list[dict[str, Any]]:
    """Every pair of models on the items both have: McNemar (binary) or paired bootstrap (ratio, mean).

    `per_model` maps model -> {sample id: (numerator, denominator)}.
    """
    models = sorted(per_model)
    items = sorted(set().union(*per_model.values()))
    index = {sid: i for i, sid in enumerate(items)}
    num = np.full((len(models), len(items)), np.nan)
    den = np.full((len(models), len(items)), np.nan)
    for row, model in enumerate(models):  # one aligned matrix per metric: pairs are then masks, not lookups
        values = per_model[model]
        cols = np.fromiter((index[sid] for sid in values), dtype=np.int64, count=len(values))
        pairs = np.array(list(values.values()), dtype=float).reshape(-1, 2)
        num[row, cols], den[row, cols] = pairs[:, 0], pairs[:, 1]
    present = ~np.isnan(num)
    tests: list[dict[str, Any]] = []
    counts_cache: dict[bytes, np.ndarray] = {}
    for i, j in combinations(range(len(models)), 2):
        mask = present[i] & present[j]
        n = int(mask.sum())
        if n < 2 or den[i, mask].sum() == 0 or den[j, mask].sum() == 0:
            continue
        na, da, nb, db = num[i, mask], den[i, mask], num[j, mask], den[j, mask]
        value_a, value_b = float(na.sum() / da.sum()), float(nb.sum() / db.sum())
        a, b = models[i], models[j]
        row: dict[str, Any] = {"a": a, "b": b, "n": n, "value_a": value_a, "value_b": value_b,
                               "diff": value_a - value_b}
        if kind == "binary":
            row.update(mcnemar_test(na.astype(int), nb.astype(int)))
        else:
            key = mask.tobytes()
            if key not in counts_cache:
                counts_cache[key] = bootstrap_counts(n, resamples, *seed)
            boot = paired_bootstrap(na, da, nb, db, counts_cache[key])
            boot.pop("observed")
            row.update(boot)
        better = value_a > value_b if higher_is_better else value_a < value_b
        row["better"] = a if better else (b if value_a != value_b else None)
        tests.append(row)
    for row, adjusted in zip(tests, holm([t["p"] for t in tests]), strict=True):
        row["p_holm"] = adjusted
        row["significant"] = adjusted is not None and adjusted < 0.05
    return tests
