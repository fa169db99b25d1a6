"""The leaderboard report: one self-contained HTML file (inline CSS/JS/images, no CDN; opens from file://) and
`report.json` with every number in it, built from a store alone.

    from reports.leaderboard import build_report
    build_report(store, "report/", roles="roles.yaml", samples_per_task=50, seed=0)

Stages (one module each): gather (read the store) -> outcomes (per-item outcomes through the task classes)
-> stats (ranks with ties, McNemar / paired bootstrap) -> tables and figures -> drill-down -> render. The same
store and settings give byte-identical files: nothing reads the clock, and everything is sorted.
Jinja2 autoescapes everything; model outputs, judge answers and prompts are untrusted text.
"""

from __future__ import annotations

import gc
import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from harness.registry import TASKS
from harness.store import Store
from reports.drilldown import build_drilldown, sample_order
from reports.figures import build_figures
from reports.gather import StoreData, gather
from reports.outcomes import TaskOutcomes, compute_outcomes
from reports.paper import TABLES, table_tasks
from reports.roles import ROLES, resolve_roles
from reports.stats import paired_tests
from reports.tables import build_tables, task_tables

FORMAT_VERSION = 1


def build_report(store: Store, out_dir: str | Path, *, roles: Mapping[str, str | None] | str | Path | None = None,
                 samples_per_task: int = 50, seed: int = 0, costly_items: int = 200, resamples: int = 1000,
                 thumb_px: int = 96) -> Path:
    """Write index.html and report.json under `out_dir`; returns the path of index.html.

    roles: model name -> paper role (or a YAML file of them) over the default name patterns.
    samples_per_task: the drill-down's cap per task (a seeded choice, `seed`). costly_items: how many items of
    a costly-to-rescore task (CHAIR) get per-item outcomes for the paired tests. resamples: paired bootstrap.
    """
    # Hundreds of thousands of small objects and no cycles: the cyclic collector would only rescan them.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _build(store, Path(out_dir), roles, samples_per_task, seed, costly_items, resamples, thumb_px)
    finally:
        if collecting:
            gc.enable()


def _build(store: Store, out: Path, roles: Mapping[str, str | None] | str | Path | None, samples_per_task: int,
           seed: int, costly_items: int, resamples: int, thumb_px: int) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    data = gather(store)
    role_map = resolve_roles(data.models, roles)
    specs = _specs(data.tasks + [t for table in TABLES for t in table_tasks(table)])
    orders = {task: sample_order(data, task, seed) for task in data.tasks}
    outcomes = {task: compute_outcomes(data, task, orders[task], set(orders[task][:samples_per_task]),
                                       max(costly_items, samples_per_task)) for task in data.tasks}
    tests = {task: _tests(o, resamples, seed) for task, o in outcomes.items()}
    report = {
        "format": FORMAT_VERSION,
        "store": data.store_path,
        "settings": {"samples_per_task": samples_per_task, "seed": seed, "costly_items": costly_items,
                     "resamples": resamples},
        "roles": role_map,
        "tables": build_tables(data, role_map, outcomes, tests, {t: s["paper"] for t, s in specs.items()}),
        "tasks": task_tables(data, role_map, outcomes, tests),
        "figures": build_figures(data, role_map, {t: s["paper"] for t, s in specs.items()}),
        "drilldown": build_drilldown(store, data, outcomes, orders, samples_per_task, thumb_px),
        "specs": specs,
        **_metadata(data),
    }
    env = Environment(loader=PackageLoader("reports", "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=_num, ci=_ci, pval=_pval)
    html = env.get_template("leaderboard.html.j2").render(r=report, roles=ROLES)
    _atomic_write(out / "index.html", html)
    _atomic_write(out / "report.json", json.dumps(_clean(_for_json(report)), indent=1, sort_keys=True) + "\n")
    return out / "index.html"


def _specs(tasks: list[str]) -> dict[str, dict[str, Any]]:
    specs: dict[str, dict[str, Any]] = {}
    for name in sorted(set(tasks)):
        try:
            spec = TASKS.load(name)().spec
        except Exception:  # a task this install cannot load: its metrics still show, without its spec
            continue
        specs[name] = {"version": spec.version, "description": spec.description, "prompt": spec.prompt,
                       "mode": spec.mode, "paper": dict(spec.paper)}
    return specs


def _tests(outcome: TaskOutcomes, resamples: int, seed: int) -> dict[str, list[dict[str, Any]]]:
    metrics = sorted({m for per in outcome.per_model.values() for m in per})
    found = {}
    for metric in metrics:
        per_model = {model: per[metric] for model, per in outcome.per_model.items() if metric in per}
        if len(per_model) < 2:
            continue
        first = next(iter(per_model.values()))
        found[metric] = paired_tests({m: p.values for m, p in per_model.items()}, first.kind,
                                     first.higher_is_better, resamples, seed, outcome.task, metric)
    return found


def _metadata(data: StoreData) -> dict[str, Any]:
    labels: dict[str, set[str]] = {}
    for row in data.metrics:
        judge = row["details"].get("judge")
        if judge:
            labels.setdefault(judge, set()).add(row["details"].get("judge_label", ""))
    counts: dict[tuple[str, str], int] = {}
    for j in data.judgments.values():
        counts[(j.judge, j.version)] = counts.get((j.judge, j.version), 0) + 1
    judges = [{"judge": judge, "version": version, "judgments": n,
               "label": ", ".join(sorted(labels.get(judge, set()) - {""})) or judge}
              for (judge, version), n in sorted(counts.items())]
    generations = sum(len(p.gens) for p in data.pairs.values())
    return {"runs": data.runs, "models": data.fingerprints, "judges": judges,
            "counts": {"runs": len(data.runs), "models": len(data.models), "tasks": len(data.tasks),
                       "scored_generations": generations, "judgments": len(data.judgments),
                       "ratings": sum(len(v) for v in data.ratings.values())}}


def _for_json(report: dict[str, Any]) -> dict[str, Any]:
    """The report without what is not a number or a label: images and texts stay in the HTML (and the store)."""
    slim = dict(report)
    slim["tasks"] = {t["task"]: t["metrics"] for t in report["tasks"]}  # task -> metric rows, best first
    slim["paired_tests"] = {t["task"]: t["paired"] for t in report["tasks"]}
    slim["per_item"] = {t["task"]: {"status": t["status"], "subset": t["subset"]} for t in report["tasks"]}
    slim["figures"] = [{k: v for k, v in f.items() if k != "svg"} for f in report["figures"]]
    slim["drilldown"] = [
        {"task": s["task"], "total": s["total"], "shown": s["shown"], "samples": [
            {"sample_id": x["sample_id"], "outputs": [
                {"model": o["model"], "key": o["key"], "per_item": o["per_item"], "chars": o["chars"],
                 "verdict": (o["judgment"] or {}).get("verdict"), "human": o["human"],
                 "ratings": [r["verdict"] for r in o["ratings"]]} for o in x["outputs"]]}
            for x in s["samples"]]}
        for s in report["drilldown"]]
    return slim


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become null; tuples lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _num(value: float | None, percent: bool = True, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value * 100:.{digits}f}%" if percent else f"{value:.{digits}f}"


def _ci(low: float | None, high: float | None, percent: bool = True) -> str:
    if low is None or high is None:
        return ""
    return f"[{_num(low, percent)}, {_num(high, percent)}]"


def _pval(p: float | None) -> str:
    if p is None:
        return "-"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # a report is for reading (mkstemp creates files private to their owner)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
