"""Benchmark: building the default synthetic world must take under a minute (the issue's budget: 2 CPU cores)."""

from __future__ import annotations

import json
import time

import pytest

from tasks.world import build_world

BUDGET_S = 60.0


@pytest.mark.benchmark
def test_default_world_builds_within_budget(tmp_path, capsys):
    start = time.perf_counter()
    out = build_world(tmp_path / "world", seed=0, size="default", progress=False)
    seconds = time.perf_counter() - start
    manifest = json.loads((out / "world.json").read_text(encoding="utf-8"))
    files = sum(1 for p in out.rglob("*") if p.is_file())
    with capsys.disabled():
        print()
        print(f"default world: {seconds:.1f} s, {files} files, splits {manifest['splits']}")
        for rel, count in manifest["counts"].items():
            print(f"  {rel}: {count}")
    assert manifest["splits"] == {"train": 2200, "val": 400, "test": 400}
    assert manifest["counts"]["stage1/pairs.jsonl"] >= 4000
    assert seconds < BUDGET_S
