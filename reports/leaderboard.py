"""A minimal static leaderboard: one self-contained HTML file (no CDN) built from a store alone.

The full paper-table report (issue 8) grows out of this; today it lists each task's latest metrics per
model with their intervals, and the runs that produced them. Jinja2 autoescapes everything.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from harness.store import Store


def build_report(store: Store, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tasks: dict[str, list[dict]] = {}
    for m in store.latest_metrics():
        tasks.setdefault(m["task"], []).append(m)
    for rows in tasks.values():  # best first for higher-is-better metrics, by metric name then value
        rows.sort(key=lambda r: (r["metric"], -(r["value"] or 0) if r["higher_is_better"] else (r["value"] or 0)))
    runs = store.runs()
    env = Environment(loader=PackageLoader("reports", "templates"), autoescape=select_autoescape(default=True))
    html = env.get_template("leaderboard.html.j2").render(tasks=tasks, runs=runs, store=str(store.path))
    _atomic_write(out / "index.html", html)
    data = {"store": str(store.path), "tasks": tasks, "runs": runs}
    _atomic_write(out / "report.json", json.dumps(data, indent=1, sort_keys=True))
    return out / "index.html"


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
