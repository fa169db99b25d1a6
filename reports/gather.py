"""Everything the report reads from a store, read once: runs, latest metrics, the generations each metric was
computed on, judgments, ratings, model fingerprints.

Which generations a metric was computed on: the metric row's run recorded its selected samples
(`run_samples`; a `rescore` run records none, and then every stored sample of the pair counts), and the
model's generations of the fingerprint it had then (the fingerprint of its newest generation created no
later than the metric; metrics rows do not record the fingerprint themselves).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from harness.store import Store

_CHUNK = 500


class Gen(NamedTuple):
    key: str
    model: str
    fingerprint: str
    task: str
    sample_id: str
    text: str
    error: str | None
    logprobs: str | None  # JSON, parsed only when a scorer needs it
    created_at: str
    run_id: str


class Judgment(NamedTuple):
    key: str
    judge: str
    version: str
    verdict: str
    raw_text: str | None
    generation_key: str | None
    created_at: str


@dataclass
class Pair:
    """One (model, task): its latest metrics (by name) and the generations they were computed on (by sample)."""

    model: str
    task: str
    run_id: str
    metrics: dict[str, dict[str, Any]]
    gens: dict[str, Gen] = field(default_factory=dict)
    human: dict[str, Any] | None = None  # the human-rated figure from rating campaigns, once people have rated


@dataclass
class StoreData:
    store_path: str
    runs: list[dict[str, Any]]
    metrics: list[dict[str, Any]]  # latest per (model, task, metric), details parsed, sorted
    pairs: dict[tuple[str, str], Pair]  # (task, model) -> Pair
    judgments: dict[str, Judgment]
    judge_versions: dict[str, list[str]]  # judge -> versions, most recently used first
    ratings: dict[str, list[dict[str, Any]]]  # generation key -> ratings, sorted
    fingerprints: dict[str, list[dict[str, Any]]]  # model -> [{fingerprint, generations}]

    @property
    def models(self) -> list[str]:
        return sorted({m for _, m in self.pairs})

    @property
    def tasks(self) -> list[str]:
        return sorted({t for t, _ in self.pairs})

    def task_pairs(self, task: str) -> list[Pair]:
        return [p for (t, _), p in sorted(self.pairs.items()) if t == task]


def gather(store: Store) -> StoreData:
    conn = store.conn
    metrics = []
    for row in store.latest_metrics():
        row = dict(row)
        row["details"] = json.loads(row.pop("details_json") or "{}")
        metrics.append(row)
    metrics.sort(key=lambda r: (r["task"], r["model"], r["metric"], r["run_id"]))
    pairs: dict[tuple[str, str], Pair] = {}
    for row in metrics:
        pair = pairs.setdefault((row["task"], row["model"]), Pair(row["model"], row["task"], row["run_id"], {}))
        pair.metrics[row["metric"]] = row
    for pair in pairs.values():  # the run of the newest row (the "errors" row is written with the rest)
        newest = max(pair.metrics.values(), key=lambda r: (r["created_at"], r["run_id"]))
        pair.run_id = newest["run_id"]
    samples: dict[tuple[str, str], set[str]] = defaultdict(set)
    for run_id, task, sample_id in conn.execute("SELECT run_id, task, sample_id FROM run_samples"):
        samples[(run_id, task)].add(sample_id)
    by_pair: dict[tuple[str, str], list[Gen]] = defaultdict(list)
    fingerprints: dict[str, Counter[str]] = defaultdict(Counter)
    sql = ("SELECT key, model, model_fingerprint, task, sample_id, text, error, choice_logprobs, created_at, run_id "
           "FROM generations")
    for row in conn.execute(sql):
        gen = Gen._make(row)
        fingerprints[gen.model][gen.fingerprint] += 1
        if (gen.task, gen.model) in pairs:
            by_pair[(gen.task, gen.model)].append(gen)
    for key, pair in pairs.items():
        pair.gens = _scored_generations(pair, by_pair.get(key, []), samples.get((pair.run_id, pair.task)))
    judgments, versions = _judgments(store)
    data = StoreData(
        store_path=str(store.path), runs=_runs(store), metrics=metrics, pairs=pairs, judgments=judgments,
        judge_versions=versions, ratings=_ratings(store),
        fingerprints={m: [{"fingerprint": fp, "generations": n} for fp, n in sorted(c.items())]
                      for m, c in sorted(fingerprints.items())},
    )
    human_metrics(store, data)
    return data


def _scored_generations(pair: Pair, gens: list[Gen], selected: set[str] | None) -> dict[str, Gen]:
    if not gens:
        return {}
    created = max(r["created_at"] for r in pair.metrics.values())
    before = [g for g in gens if g.created_at <= created] or gens
    fingerprint = max(before, key=lambda g: (g.created_at, g.key)).fingerprint
    chosen: dict[str, Gen] = {}
    for g in gens:  # one generation per sample: the newest of that fingerprint (ties broken by key)
        if g.fingerprint == fingerprint and (selected is None or g.sample_id in selected):
            current = chosen.get(g.sample_id)
            if current is None or (g.created_at, g.key) > (current.created_at, current.key):
                chosen[g.sample_id] = g
    return dict(sorted(chosen.items()))


def _runs(store: Store) -> list[dict[str, Any]]:
    runs = []
    for run in store.runs():
        config = json.loads(run.pop("config_json") or "{}")
        run["argv"] = json.loads(run["argv"] or "[]")
        run["config"] = {k: config[k] for k in sorted(config) if k in (
            "command", "data_root", "judge", "judge_options", "limit", "models", "model_options", "tasks",
            "cache_dir", "judge_max_requests", "judge_max_tokens")}
        runs.append(run)
    return sorted(runs, key=lambda r: (r["started_at"], r["run_id"]))


def _judgments(store: Store) -> tuple[dict[str, Judgment], dict[str, list[str]]]:
    sql = "SELECT key, judge, judge_version, verdict, raw_text, generation_key, created_at FROM judgments"
    judgments = {row[0]: Judgment._make(row) for row in store.conn.execute(sql)}
    last: dict[tuple[str, str], str] = {}
    for j in judgments.values():
        last[(j.judge, j.version)] = max(last.get((j.judge, j.version), ""), j.created_at)
    versions: dict[str, list[str]] = defaultdict(list)
    for (judge, version), _ in sorted(last.items(), key=lambda kv: (kv[0][0], kv[1], kv[0][1]), reverse=True):
        versions[judge].append(version)
    return judgments, dict(sorted(versions.items()))


def _ratings(store: Store) -> dict[str, list[dict[str, Any]]]:
    """Each generation's ratings (hidden gold items, which count only towards rater accuracy, left out)."""
    tables = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    columns = {r[1] for r in store.conn.execute("PRAGMA table_info(ratings)")}
    kind = "r.failure_kind" if "failure_kind" in columns else "NULL"
    sql = f"SELECT r.campaign, r.rater, r.generation_key, r.verdict, {kind} FROM ratings r"
    if "rating_items" in tables:
        sql += (" LEFT JOIN rating_items i ON i.campaign = r.campaign AND i.generation_key = r.generation_key"
                " WHERE i.gold_verdict IS NULL")
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for campaign, rater, key, verdict, failure_kind in store.conn.execute(sql + " ORDER BY 3, 1, 2"):
        out[key].append({"campaign": campaign, "rater": rater, "verdict": verdict, "failure_kind": failure_kind})
    return dict(out)


def human_metrics(store: Store, data: StoreData) -> None:
    """Fill `Pair.human` for the human-rated tasks from the rating campaigns, the way `mgbench rate results`
    counts them (human_eval.results.human_metric: the newest campaign, majority per item, ties left out)."""
    if not data.ratings:
        return
    try:
        from human_eval.results import human_metric
    except ImportError:  # an install without the rating app: the report shows the ratings it can read itself
        return
    for (task, model), pair in sorted(data.pairs.items()):
        if any(name.endswith("_human") for name in pair.metrics):
            value = human_metric(store, model, task)
            pair.human = {"metric": value.name, "value": value.value, "n": value.n, "ci_low": value.ci_low,
                          "ci_high": value.ci_high, "details": dict(value.details)}


def judge_prompts(store: Store, keys: list[str]) -> dict[str, str]:
    """The exact prompt text of these judgments (read only for the samples the drill-down shows)."""
    found: dict[str, str] = {}
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start:start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        found.update(store.conn.execute(f"SELECT key, prompt FROM judgments WHERE key IN ({marks})", chunk))
    return found


def request_json(store: Store, keys: list[str]) -> dict[str, dict[str, Any]]:
    """The stored requests of these generations (read only for the samples the drill-down shows)."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start:start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        for key, text in store.conn.execute(f"SELECT key, request_json FROM generations WHERE key IN ({marks})",
                                            chunk):
            found[key] = json.loads(text)
    return found


def majority(ratings: list[dict[str, Any]]) -> str | None:
    """The majority verdict of a generation's ratings; None on a tie or without ratings."""
    counts = Counter(r["verdict"] for r in ratings).most_common()
    if not counts or (len(counts) > 1 and counts[0][1] == counts[1][1]):
        return None
    return counts[0][0]
