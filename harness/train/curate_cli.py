"""`mgbench curate`: the stage-2 data curation of paper Sec. 3.2 (see harness.train.curate), resumable.

    mgbench curate --model runs/stage1/final --images world/stage1/pairs.jsonl --out data/cc_sbu_align --auto-accept
    mgbench curate --model runs/stage1/final --images photos/ --out curated/   # writes the queue; people fill in
    mgbench curate --model runs/stage1/final --images photos/ --out curated/   # "decision"; rerun: nothing re-asked
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "curate", help="stage-2 data curation (paper Sec. 3.2): describe, continue, fix up, filter, verify, export",
        description="The stage-1 model describes each image (and continues answers under --min-tokens tokens), the "
        "judge post-edits each description with the paper's fix-up prompt, rule filters reject failure texts, "
        "everything goes to OUT/verification_queue.jsonl for people (decision: accept / reject / edit + caption), "
        "and accepted pairs are written as cc_sbu_align (OUT/filter_cap.json, OUT/image/<image_id>.jpg) with "
        "OUT/curation_report.json. Model and judge answers are kept in the store: a rerun resumes and asks nothing "
        "twice. Decisions already in OUT/verification_queue.jsonl are kept.",
    )
    p.add_argument("--model", required=True, help="the stage-1 model: a checkpoint folder or tiny:VARIANT "
                   "(tiny:minigpt4, tiny:no-qformer, tiny:3-layers, tiny:lora: random tiny weights)")
    p.add_argument("--images", required=True, help="a folder of images (image_id = file stem) or a JSONL manifest "
                   "of {\"image\": PATH[, \"image_id\": ID]} (e.g. stage1/pairs.jsonl; repeated images count once)")
    p.add_argument("--image-root", help="where relative manifest paths resolve (default: the manifest's folder)")
    p.add_argument("--out", required=True, help="the cc_sbu_align folder to write")
    p.add_argument("--store", help="results store (default: OUT/curation.sqlite)")
    p.add_argument("--judge", default="rule", help="rule (offline, default), openai, or replay")
    p.add_argument("--judge-option", action="append", default=[], metavar="KEY=VALUE",
                   help="judge option, e.g. model=gpt-3.5-turbo, base_url=URL, path=verdicts.jsonl")
    p.add_argument("--max-requests", type=int, help="judge budget: at most this many requests this run")
    p.add_argument("--max-tokens", type=int, help="judge budget: at most this many tokens this run")
    p.add_argument("--limit", type=int, help="a seeded random subset of N images (paper: 5,000)")
    p.add_argument("--seed", type=int, default=0, help="for --limit (and the tiny model's weights)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=300)
    p.add_argument("--min-tokens", type=int, default=80, help="continue answers shorter than this (paper: 80)")
    p.add_argument("--min-words", type=int, default=10, help="rule filter: reject fixed texts shorter than this")
    p.add_argument("--auto-accept", action="store_true", help="accept every undecided item that passed the rules")
    p.add_argument("--queue-in", help="a filled-in verification queue to take decisions from")
    p.add_argument("--retry-errors", action="store_true", help="ask the model again where it failed before")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=True)


def list_images(source: str | Path, image_root: str | Path | None = None) -> list[tuple[str, Path]]:
    """(image_id, path) pairs from a folder of images (sorted by name) or a JSONL manifest (file order)."""
    from tasks.readers._fields import Record, iter_jsonl

    source = Path(source)
    if source.is_dir():
        return [(p.stem, p) for p in sorted(source.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not source.is_file():
        raise ValueError(f"--images {source}: no such folder or file")
    root = Path(image_root) if image_root is not None else source.parent
    found: dict[str, tuple[str, Path]] = {}
    for number, obj in iter_jsonl(source):
        rec = Record(obj, source, f"line {number}")
        image = rec.text("image")
        image_id = str(obj["image_id"]) if isinstance(obj, dict) and "image_id" in obj else Path(image).stem
        found.setdefault(image, (image_id, root / image))
    return list(found.values())


def select_images(images: list[tuple[str, Path]], limit: int | None, seed: int) -> list[tuple[str, Path]]:
    """A seeded random subset of `limit` images (not the first N), kept in input order."""
    if limit is None or limit >= len(images):
        return images
    chosen = set(random.Random(f"{seed}:curate").sample(range(len(images)), limit))
    return [im for i, im in enumerate(images) if i in chosen]


def cmd_curate(args: argparse.Namespace, argv: list[str]) -> int:
    import yaml

    from harness.judges import Budget, make_judge
    from harness.train.curate import QUEUE_FILE, curate  # torch: only when curating
    from model_zoo.minigpt4 import MiniGPT4Adapter

    options: dict[str, Any] = {}
    for item in args.judge_option:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"--judge-option: expected KEY=VALUE, got {item!r}")
        options[key] = yaml.safe_load(value)
    images = select_images(list_images(args.images, args.image_root), args.limit, args.seed)
    if args.model.startswith("tiny:"):
        adapter = MiniGPT4Adapter(tiny=True, seed=args.seed, variant=args.model.split(":", 1)[1], dtype=args.dtype,
                                  device=args.device)
    else:
        adapter = MiniGPT4Adapter(checkpoint=args.model, dtype=args.dtype, device=args.device)
    with make_judge(args.judge, **options) as judge:
        report = curate(adapter, images, args.out, judge=judge, store_path=args.store, min_tokens=args.min_tokens,
                        max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, seed=args.seed,
                        progress=args.progress, min_words=args.min_words, auto_accept=args.auto_accept,
                        queue_in=args.queue_in, retry_errors=args.retry_errors,
                        budget=Budget(args.max_requests, args.max_tokens), model_name=args.model,
                        argv=["mgbench", *argv])
    print(json.dumps(report.to_dict(), indent=1, sort_keys=True))
    if report.pending:
        print(f"{report.pending} item(s) await a decision in {Path(args.out) / QUEUE_FILE}: set \"decision\" to "
              "accept / reject / edit (with \"caption\") and rerun, or rerun with --auto-accept")
    if report.unjudged or report.generation_errors:
        print(f"{report.unjudged} unjudged, {report.generation_errors} generation errors: rerun to retry the judge "
              "(--retry-errors for the model)")
    return 0
