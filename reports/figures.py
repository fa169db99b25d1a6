"""matplotlib figures as deterministic inline SVG (fixed hash salt, no date, text kept as text).

Each figure comes back as {"name", "title", "svg" (a data: URI, or None), "note", "data"}: the numbers it
plots are in "data" (and so in report.json); "note" says why a figure was skipped.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from reports.gather import StoreData
from reports.paper import paper_numbers, paper_value

RC = {"svg.hashsalt": "mgbench-report", "svg.fonttype": "none", "font.size": 9, "axes.titlesize": 9,
      "figure.dpi": 72}
SUCCESS_METRICS = ("accuracy", "mc_accuracy", "da_accuracy", "coverage", "request_met_judge_proxy",
                   "failure_rate_judge_proxy")
PAPER_CHAIR = (("BLIP-2", "chair_short"), ("MiniGPT-4", "chair_short"), ("MiniGPT-4", "chair_long"))


def _svg(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _errors(value: float, low: float | None, high: float | None, scale: float) -> tuple[float, float]:
    if low is None or high is None:
        return 0.0, 0.0
    return max(0.0, (value - low) * scale), max(0.0, (high - value) * scale)


def build_figures(data: StoreData, roles: dict[str, str | None], specs: dict[str, dict[str, Any]]
                  ) -> list[dict[str, Any]]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    with rc_context(RC):
        return [_chair(Figure, data, specs), _success(Figure, data), _failures(Figure, data, roles)]


def _metric(data: StoreData, task: str, model: str, metric: str) -> dict[str, Any] | None:
    pair = data.pairs.get((task, model))
    row = pair.metrics.get(metric) if pair else None
    return row if row is not None and row["value"] is not None else None


def _chair(Figure: Any, data: StoreData, specs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    title = "CHAIRi against mean caption length (Table 5)"
    points = []
    for task in ("chair_short", "chair_long"):
        for model in data.models:
            chair, length = _metric(data, task, model, "CHAIRi"), _metric(data, task, model, "length_words")
            if chair and length:
                points.append({"model": model, "task": task, "length": length["value"], "chair_i": chair["value"],
                               "low": chair["ci_low"], "high": chair["ci_high"]})
    paper = []
    for role, task in PAPER_CHAIR:
        numbers = paper_numbers(task, specs.get(task))
        chair, length = (paper_value(numbers, role, task, m) for m in ("CHAIRi", "length_words"))
        if chair and length:
            paper.append({"role": role, "task": task, "length": length["value"], "chair_i": chair["value"]})
    if not points:
        return {"name": "chair_length", "title": title, "svg": None, "data": {"points": [], "paper": paper},
                "note": "no CHAIR results in this store (run chair_short / chair_long)"}
    fig = Figure(figsize=(6.4, 3.8))
    ax = fig.add_subplot()
    markers = {"chair_short": "o", "chair_long": "s"}
    colours = {m: f"C{i % 10}" for i, m in enumerate(sorted({p["model"] for p in points}))}
    for p in points:
        lo, hi = _errors(p["chair_i"], p["low"], p["high"], 100)
        ax.errorbar([p["length"]], [p["chair_i"] * 100], yerr=[[lo], [hi]], fmt=markers[p["task"]],
                    color=colours[p["model"]], capsize=2, label=f"{p['model']} ({p['task'].split('_')[1]})")
    for p in paper:
        ax.plot([p["length"]], [p["chair_i"] * 100], marker=markers[p["task"]], mfc="none", mec="black",
                linestyle="none", markersize=9)
        ax.annotate(f"paper {p['role']} ({p['task'].split('_')[1]})", (p["length"], p["chair_i"] * 100),
                    textcoords="offset points", xytext=(6, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("mean length (words, log scale)")
    ax.set_ylabel("CHAIRi (%) with 95% interval")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return {"name": "chair_length", "title": title, "svg": _svg(fig), "note": "hollow black markers: the paper",
            "data": {"points": points, "paper": paper}}


def _success(Figure: Any, data: StoreData) -> dict[str, Any]:
    title = "Per-task success with 95% intervals"
    panels = []
    for task in data.tasks:
        metric = next((m for m in SUCCESS_METRICS if any(_metric(data, task, x, m) for x in data.models)), None)
        if metric is None:
            continue
        rows = [{"model": m, "value": r["value"], "low": r["ci_low"], "high": r["ci_high"]}
                for m in data.models if (r := _metric(data, task, m, metric))]
        panels.append({"task": task, "metric": metric, "rows": rows})
    if not panels:
        return {"name": "success", "title": title, "svg": None, "data": [], "note": "no proportion metrics yet"}
    cols = min(3, len(panels))
    nrows = -(-len(panels) // cols)
    models = data.models
    fig = Figure(figsize=(3.3 * cols, (0.22 * len(models) + 0.9) * nrows))
    for i, panel in enumerate(panels):
        ax = fig.add_subplot(nrows, cols, i + 1)
        ys = [models.index(r["model"]) for r in panel["rows"]]
        xs = [r["value"] * 100 for r in panel["rows"]]
        errs = [_errors(r["value"], r["low"], r["high"], 100) for r in panel["rows"]]
        ax.errorbar(xs, ys, xerr=[[e[0] for e in errs], [e[1] for e in errs]], fmt="o", color="C0", capsize=2)
        ax.set_yticks(range(len(models)), models if i % cols == 0 else [""] * len(models), fontsize=7)
        ax.set_ylim(-0.5, len(models) - 0.5)
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        worse = " (lower is better)" if panel["metric"].startswith("failure") else ""
        ax.set_title(f"{panel['task']}: {panel['metric']}{worse}", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    fig.supxlabel("% with 95% interval", fontsize=8)
    fig.tight_layout()
    return {"name": "success", "title": title, "svg": _svg(fig), "note": "", "data": panels}


def _failures(Figure: Any, data: StoreData, roles: dict[str, str | None]) -> dict[str, Any]:
    title = "Failures before and after stage 2 (Table 3)"
    tasks = ("failure_caption", "failure_poem")
    stage1 = [m for m in data.models if roles.get(m) == "stage-1 only"]
    stage2 = [m for m in data.models if roles.get(m) == "MiniGPT-4"]
    bars = [{"model": m, "stage": stage, "task": t, "value": r["value"], "low": r["ci_low"], "high": r["ci_high"]}
            for stage, group in (("stage 1", stage1), ("stage 2", stage2)) for m in group for t in tasks
            if (r := _metric(data, t, m, "failure_rate_judge_proxy"))]
    if not any(b["stage"] == "stage 1" for b in bars) or not any(b["stage"] == "stage 2" for b in bars):
        return {"name": "failures", "title": title, "svg": None, "data": bars,
                "note": "skipped: needs failure_caption / failure_poem results of a stage-1-only model and of a "
                        "MiniGPT-4 (stage 2) model; map a model to a role with a roles file "
                        "(e.g. `my-model: stage-1 only`)"}
    paper = {("stage 1", "failure_caption"): 0.35, ("stage 1", "failure_poem"): 0.32,
             ("stage 2", "failure_caption"): 0.02, ("stage 2", "failure_poem"): 0.01}
    series = sorted({(b["stage"], b["model"]) for b in bars})
    fig = Figure(figsize=(6.4, 3.4))
    ax = fig.add_subplot()
    width = 0.8 / (len(series) + 2)
    for j, (stage, model) in enumerate(series):
        got = {b["task"]: b for b in bars if b["model"] == model and b["stage"] == stage}
        xs = [i + j * width for i, t in enumerate(tasks) if t in got]
        vals = [got[t]["value"] * 100 for t in tasks if t in got]
        errs = [_errors(got[t]["value"], got[t]["low"], got[t]["high"], 100) for t in tasks if t in got]
        ax.bar(xs, vals, width, yerr=[[e[0] for e in errs], [e[1] for e in errs]], capsize=2,
               label=f"{model} ({stage}, judge proxy)")
    for k, stage in enumerate(("stage 1", "stage 2")):
        xs = [i + (len(series) + k) * width for i in range(len(tasks))]
        ax.bar(xs, [paper[(stage, t)] * 100 for t in tasks], width, fill=False, hatch="//",
               label=f"paper, {stage} (human)")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(tasks))], ["detailed caption", "poem"])
    ax.set_ylabel("failure rate (%)")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return {"name": "failures", "title": title, "svg": _svg(fig), "note": "", "data": bars}
