"""`mgbench zoo build`: train the tiny zoo on the synthetic world (cached by content hash)."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    zoo = sub.add_parser("zoo", help="the tiny zoo: every model of the paper in miniature, trained on the world")
    zoo_sub = zoo.add_subparsers(dest="zoo_command", required=True, metavar="ZOO_COMMAND")
    build = zoo_sub.add_parser(
        "build", help="pre-train the tiny ViT, BLIP-2 and Vicuna, then stage 1, curation, stage 2 and every variant",
        description="Each phase is cached under a key that hashes its code version, config and inputs: a "
        "rebuild skips finished phases and an interrupted phase resumes. Models land in OUT/zoo.json and "
        "are evaluated as minigpt4-tiny, minigpt4-tiny-stage1, ..., blip2-tiny. Phases: tokenizer; vision (the "
        "tiny ViT on dense category and colour labels; 'vision: {position_weight: 1.0}' also teaches each patch "
        "token its place); blip2 (captioning + image-text contrastive loss, ViT frozen; "
        "'blip2: {freeze_lm: true}' pre-trains its OPT on text first and keeps it frozen, as BLIP-2 does; "
        "'blip2: {place_share: 0.3}' makes that share of its captions place every object; "
        "'blip2: {cross_attention_init: 0.1}' starts the Q-Former's cross-attention sharper); "
        "vicuna (the world's text corpus + caption pages + caption-then-instruction conversations; its "
        "artefact.json records how it reads text put before an instruction); stage1; "
        "curate (describe, fix up, rule filters, then a scripted rater standing in for people that removes "
        "the sentences that do not match the image; 'curation: {verifier: world-no-edit}' accepts or rejects "
        "whole descriptions, 'curation: {verifier: none}' accepts what passed the rules); stage2; the variants. "
        "Every MiniGPT-4 artefact.json records image_reading: how often the model names a picture's first and "
        "second object from its image tokens, and how often it repeats the first instead.",
    )
    build.add_argument("--world", help="world folder (default: the cached default world)")
    build.add_argument("--out", help="zoo folder (default: ~/.cache/mgbench/zoo)")
    build.add_argument("--seed", type=int, default=0,
                       help="seed of every phase's initialisation and data order (default 0); another seed trains "
                            "another zoo of the same recipe, to see how much a figure owes to chance")
    build.add_argument("--config", help="YAML naming the ZooConfig fields to change, nested as in "
                       "harness/train/zoo.py, e.g. 'stage1: {steps: 100}' or 'variants: [noqformer]'")
    build.add_argument("--no-progress", dest="progress", action="store_false", default=True)


def cmd_zoo(args: argparse.Namespace, argv: list[str]) -> int:
    from pathlib import Path

    from harness.config import ConfigError, default_cache_dir
    from harness.train.zoo import build_zoo, load_zoo_config
    from model_zoo.zoo_models import default_zoo_dir
    from tasks.world import cached_world

    world = Path(args.world) if args.world else cached_world(default_cache_dir(), progress=args.progress)
    out = Path(args.out) if args.out else default_zoo_dir()
    try:
        config = load_zoo_config(args.config) if args.config else None
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    models = build_zoo(world, out, seed=args.seed, progress=args.progress, config=config)
    print(json.dumps({name: str(path) for name, path in models.items()}, indent=1, sort_keys=True))
    return 0
