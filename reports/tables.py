"""The paper tables and the per-task metric tables as plain data (the template renders them; report.json holds
them as they are, so every number on the page is in the JSON)."""

from __future__ import annotations

import shlex
from typing import Any

from reports.gather import StoreData
from reports.outcomes import TaskOutcomes
from reports.paper import TABLES, Column, PaperTable, paper_numbers, paper_value, table_tasks
from reports.stats import rank_with_ties, wilson

AGREE_TOLERANCE = 1e-9
DETAIL_KEYS = ("judge_label", "is_proxy", "status", "mode", "normalize", "mapping", "interval", "unparseable",
               "errors", "not_judged", "verbose", "scored_on", "reference_seed", "samples", "scored")


def build_tables(data: StoreData, roles: dict[str, str | None], outcomes: dict[str, TaskOutcomes],
                 tests: dict[str, dict[str, list[dict[str, Any]]]], specs: dict[str, dict[str, Any]]
                 ) -> list[dict[str, Any]]:
    return [_table(t, data, roles, outcomes, tests, specs) for t in TABLES]


def _table(table: PaperTable, data: StoreData, roles: dict[str, str | None], outcomes: dict[str, TaskOutcomes],
           tests: dict[str, dict[str, list[dict[str, Any]]]], specs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    tasks = table_tasks(table)
    present = [t for t in tasks if any(p.task == t for p in data.pairs.values())]
    models = sorted({m for (t, m) in data.pairs if t in tasks and (roles.get(m) is None or roles[m] in table.roles)},
                    key=lambda m: (_role_order(table, roles.get(m)), m))
    columns = list(table.columns)
    if table.total:
        proxy, human = table.columns[0].metric, table.columns[1].metric
        columns += [Column("total", proxy, "total: judge proxy", paper=False),
                    Column("total", human, "total: human", human=True)]
    numbers = {t: paper_numbers(t, specs.get(t)) for t in tasks}
    rows: list[dict[str, Any]] = []
    for model in models:
        role = roles.get(model)
        cells = [_cell(col, model, role, table, data, outcomes, numbers) for col in columns]
        rows.append({"model": model, "role": role, "paper_row": role in table.roles, "cells": cells})
    for role in table.roles:  # the paper's rows that no model in this store plays: paper numbers only
        if not any(r["role"] == role for r in rows):
            cells = [{"value": None, "status": "not run", "paper": _paper(col, role, table, numbers)}
                     for col in columns]
            rows.append({"model": None, "role": role, "paper_row": True, "cells": cells})
    for i, col in enumerate(columns):
        if not col.rank:
            continue
        entries = [(r["model"], r["cells"][i]["value"], r["cells"][i].get("low"), r["cells"][i].get("high"))
                   for r in rows if r["model"] is not None]
        ranks = rank_with_ties(entries, _higher_is_better(col, data))
        for r in rows:
            if r["model"] in ranks:
                r["cells"][i].update(ranks[r["model"]])
    in_table = set(models)
    paired = []
    for col in table.columns:
        found = [t for t in tests.get(col.task, {}).get(col.metric, []) if t["a"] in in_table and t["b"] in in_table]
        if found:
            paired.append({"task": col.task, "metric": col.metric, "label": col.label, "tests": found})
    labels = sorted({r["details"].get("judge_label", "") for r in data.metrics if r["task"] in tasks
                     and r["details"].get("is_proxy")} - {""})
    return {
        "number": table.number, "title": table.title, "caption": table.caption, "human": table.human,
        "columns": [{"task": c.task, "metric": c.metric, "label": c.label, "percent": c.percent, "paper": c.paper,
                     "human": c.human, "rank": c.rank, "higher_is_better": _higher_is_better(c, data)}
                    for c in columns],
        "rows": rows, "missing_tasks": [t for t in tasks if t not in present], "paired": paired,
        "judge_labels": labels, "roles": list(table.roles),
        "rate_commands": _rate_commands(data.store_path, tasks, models) if table.human else [],
        "awaiting": any(c.get("status") == "awaiting ratings" for r in rows if r["model"] for c in r["cells"]),
    }


def _rate_commands(store: str, tasks: list[str], models: list[str]) -> list[str]:
    """The `mgbench rate` commands that open rating forms for this table's outputs (human_eval)."""
    where = shlex.quote(store)
    return [f"mgbench rate create --store {where} --tasks {','.join(tasks)} --models {','.join(models) or 'MODEL'} "
            "--raters 3", f"mgbench rate serve --store {where}"]


def _role_order(table: PaperTable, role: str | None) -> int:
    return table.roles.index(role) if role in table.roles else len(table.roles)


def _higher_is_better(col: Column, data: StoreData) -> bool:
    for row in data.metrics:
        if row["metric"] == col.metric and (row["task"] == col.task or col.task == "total"):
            return bool(row["higher_is_better"])
    return not col.metric.startswith(("failure", "CHAIR", "length"))


def _paper(col: Column, role: str | None, table: PaperTable, numbers: dict[str, dict[str, Any]]
           ) -> dict[str, Any] | None:
    if not col.paper:
        return None
    if col.task != "total":
        return paper_value(numbers[col.task], role, col.task, col.metric)
    parts = [paper_value(numbers[t], role, t, col.metric) for t in table_tasks(table)]
    if not parts or any(p is None or p["k"] is None for p in parts):
        return None
    k, n = sum(p["k"] for p in parts), sum(p["n"] for p in parts)  # type: ignore[index]
    return {"value": k / n, "k": k, "n": n}


def _cell(col: Column, model: str, role: str | None, table: PaperTable, data: StoreData,
          outcomes: dict[str, TaskOutcomes], numbers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    paper = _paper(col, role, table, numbers)
    if col.task == "total":
        parts = [_cell(Column(t, col.metric, "", human=col.human), model, role, table, data, outcomes, numbers)
                 for t in table_tasks(table)]
        counted = [p for p in parts if p["value"] is not None and p.get("k") is not None]
        if not counted:
            status = "awaiting ratings" if col.human else "no results"
            return {"value": None, "status": status, "paper": paper}
        k, n = sum(p["k"] for p in counted), sum(p["n"] for p in counted)
        low, high = wilson(k, n)
        return {"value": k / n if n else None, "k": k, "n": n, "low": low, "high": high, "paper": paper,
                "source": f"pooled over {len(counted)} of {len(parts)} tasks"}
    pair = data.pairs.get((col.task, model))
    row = pair.metrics.get(col.metric) if pair else None
    if pair is None or (row is None and not col.human):
        return {"value": None, "status": "not run", "paper": paper}
    rated = outcomes.get(col.task, TaskOutcomes(col.task)).per_model.get(model, {}).get(col.metric)
    if col.human and (row is None or row["value"] is None):
        human = pair.human
        if human is not None and human["value"] is not None:  # as `mgbench rate results` counts them
            return {"value": human["value"], "k": human["details"].get("k"), "n": human["n"], "low": human["ci_low"],
                    "high": human["ci_high"], "paper": paper,
                    "source": f"ratings, campaign {human['details'].get('campaign')} (majority per output)"}
        if rated is None or not rated.values:
            return {"value": None, "status": "awaiting ratings", "paper": paper}
        k = int(sum(v for v, _ in rated.values.values()))
        n = len(rated.values)
        low, high = wilson(k, n)
        return {"value": k / n, "k": k, "n": n, "low": low, "high": high, "paper": paper,
                "source": "ratings, all campaigns (majority per output)"}
    assert row is not None
    cell = {"value": row["value"], "k": row["details"].get("k"), "n": row["n"], "low": row["ci_low"],
            "high": row["ci_high"], "paper": paper, "source": f"run {row['run_id']}"}
    if row["value"] is None:
        cell["status"] = row["details"].get("status") or "no value"
    outcome = outcomes.get(col.task)
    if rated is not None and outcome is not None and outcome.subset is None and row["value"] is not None:
        recomputed = rated.aggregate()
        if recomputed is None or abs(recomputed - row["value"]) > AGREE_TOLERANCE:
            cell["check"] = {"recomputed": recomputed, "stored": row["value"]}
    return cell


def task_tables(data: StoreData, roles: dict[str, str | None], outcomes: dict[str, TaskOutcomes],
                tests: dict[str, dict[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """Every task's latest metrics per model (what the paper tables leave out included), with ranks."""
    out = []
    for task in data.tasks:
        rows = [r for r in data.metrics if r["task"] == task]
        by_metric: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            by_metric.setdefault(r["metric"], []).append(r)
        metric_rows = []
        for metric, group in sorted(by_metric.items()):
            ranks = rank_with_ties([(r["model"], r["value"], r["ci_low"], r["ci_high"]) for r in group],
                                   bool(group[0]["higher_is_better"]))
            hib = bool(group[0]["higher_is_better"])
            group = sorted(group, key=lambda r: (r["value"] is None, -(r["value"] or 0) if hib else (r["value"] or 0),
                                                 r["model"]))  # best first
            for r in group:
                metric_rows.append({
                    "model": r["model"], "role": roles.get(r["model"]), "metric": metric, "value": r["value"],
                    "k": r["details"].get("k"), "n": r["n"], "low": r["ci_low"], "high": r["ci_high"],
                    "higher_is_better": bool(r["higher_is_better"]), "run_id": r["run_id"],
                    "details": {k: r["details"][k] for k in DETAIL_KEYS if k in r["details"]},
                    **ranks.get(r["model"], {}),
                })
        o = outcomes.get(task, TaskOutcomes(task))
        out.append({"task": task, "metrics": metric_rows, "status": o.status, "subset": o.subset,
                    "paired": [{"metric": m, "tests": t} for m, t in sorted(tests.get(task, {}).items()) if t]})
    return out
