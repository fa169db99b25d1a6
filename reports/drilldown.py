"""The per-sample drill-down: for each task, a seeded choice of samples (at most `cap`), each with its image
thumbnail, prompt, every model's output (rendered as escaped text), its per-item outcome, the judge's verdict
with its raw text, and the human ratings.

The sample order of a task is a seeded shuffle of its sample ids; the drill-down shows its first `cap`
samples, and costly per-item rescoring (CHAIR) uses a longer prefix of the same order, so every sample shown
has its outcome.
"""

from __future__ import annotations

import base64
import io
import random
import re
from pathlib import Path
from typing import Any

from harness.store import Store
from reports.gather import StoreData, judge_prompts, majority, request_json
from reports.outcomes import TaskOutcomes

MAX_OUTPUT_CHARS = 4000
MAX_JUDGE_PROMPT_CHARS = 6000


def sample_order(data: StoreData, task: str, seed: int) -> list[str]:
    ids = sorted({sid for pair in data.task_pairs(task) for sid in pair.gens})
    random.Random(f"mgbench-report:{seed}:{task}").shuffle(ids)
    return ids


def natural_key(sample_id: str) -> list[tuple[int, int | str]]:
    """Sort "9" before "10": digit runs compare as numbers."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", sample_id) if part]


def thumbnail(path: str | None, px: int, cache: dict[str, str | None]) -> str | None:
    """A small JPEG of the image as a data: URI (None when the file is not there or not an image)."""
    if not path:
        return None
    if path not in cache:
        from PIL import Image

        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                img.thumbnail((px, px))
                buf = io.BytesIO()
                img.save(buf, format="JPEG", quality=70)
            cache[path] = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
        except (OSError, ValueError):
            cache[path] = None
    return cache[path]


def build_drilldown(store: Store, data: StoreData, outcomes: dict[str, TaskOutcomes], orders: dict[str, list[str]],
                    cap: int, thumb_px: int = 96) -> list[dict[str, Any]]:
    shown = {task: sorted(order[:cap], key=natural_key) for task, order in orders.items()}
    keys = [p.gens[sid].key for task, sids in shown.items() for p in data.task_pairs(task)
            for sid in sids if sid in p.gens]
    requests = request_json(store, keys)
    shown_sets = {task: set(sids) for task, sids in shown.items()}
    judged = [k for o in outcomes.values() for per in o.judged.values() for sid, k in per.items()
              if sid in shown_sets.get(o.task, ())]
    prompts = judge_prompts(store, sorted(set(judged)))
    thumbs: dict[str, str | None] = {}
    sections = []
    for task in sorted(shown):
        outcome = outcomes.get(task, TaskOutcomes(task))
        samples = [_sample(task, sid, data, outcome, requests, prompts, thumbs, thumb_px) for sid in shown[task]]
        sections.append({"task": task, "total": len(orders[task]), "shown": len(samples), "samples": samples})
    return sections


def _sample(task: str, sid: str, data: StoreData, outcome: TaskOutcomes, requests: dict[str, dict[str, Any]],
            prompts: dict[str, str], thumbs: dict[str, str | None], px: int) -> dict[str, Any]:
    outputs = []
    asked: dict[str, list[str]] = {}
    image_path = None
    choices: list[str] = []
    for pair in data.task_pairs(task):
        gen = pair.gens.get(sid)
        if gen is None:
            continue
        req = requests.get(gen.key, {})
        asked.setdefault(req.get("prompt", ""), []).append(pair.model)
        image_path = image_path or (req.get("image") or {}).get("path")
        choices = choices or list(req.get("choices") or [])
        text = gen.text or ""
        per_item = {metric: list(item.values[sid]) for metric, item
                    in sorted(outcome.per_model.get(pair.model, {}).items()) if sid in item.values}
        judgment = None
        jkey = outcome.judged.get(pair.model, {}).get(sid)
        if jkey is not None and jkey in data.judgments:
            j = data.judgments[jkey]
            prompt = prompts.get(jkey, "")
            judgment = {"judge": j.judge, "version": j.version, "verdict": j.verdict, "raw_text": j.raw_text,
                        "prompt": prompt[:MAX_JUDGE_PROMPT_CHARS],
                        "prompt_truncated": len(prompt) > MAX_JUDGE_PROMPT_CHARS}
        ratings = data.ratings.get(gen.key, [])
        outputs.append({
            "model": pair.model, "key": gen.key, "text": text[:MAX_OUTPUT_CHARS],
            "truncated": len(text) > MAX_OUTPUT_CHARS, "chars": len(text), "error": gen.error,
            "per_item": per_item, "notes": outcome.notes.get(pair.model, {}).get(sid, []), "judgment": judgment,
            "ratings": ratings, "human": majority(ratings) if ratings else None,
        })
    image = thumbnail(image_path, px, thumbs)
    return {
        "sample_id": sid, "prompts": [{"prompt": p, "models": m} for p, m in sorted(asked.items())],
        "choices": choices, "image": image,
        "image_note": "" if image else (f"image not found: {Path(image_path).name}" if image_path else "no image"),
        "reference": outcome.references.get(sid), "outputs": outputs,
    }
