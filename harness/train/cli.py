"""`mgbench train`: stage 1 or stage 2 of MiniGPT-4's alignment, for any variant, resumable."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

STAGE_DEFAULTS = {1: {"max_txt_len": 32, "lr": 1e-4, "min_lr": 8e-5},
                  2: {"max_txt_len": 160, "lr": 3e-5, "min_lr": 1e-5}}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train MiniGPT-4 (stage 1 or 2; any variant); resumes from the newest checkpoint in --out",
        description="Only the projection trains (plus the Q-Former with --train-qformer, or LoRA adapters with "
        "--lora). Stage 1: image-caption pairs, no prompt, loss on caption + newline. Stage 2: the template with "
        "one of the four instructions at random, loss on description + ###. Run under torchrun/accelerate for "
        "data parallelism. The final model is written to OUT/final (mgbench checkpoint format).",
    )
    p.add_argument("--stage", type=int, choices=[1, 2], required=True)
    start = p.add_mutually_exclusive_group(required=True)
    start.add_argument("--init",
                       help="starting model: a checkpoint folder (e.g. stage 1's OUT/final) or tiny:VARIANT "
                            "(tiny:minigpt4, tiny:no-qformer, tiny:3-layers, tiny:lora) for random tiny weights")
    start.add_argument("--blip2", metavar="DIR",
                       help="start from real parts: a Hugging Face BLIP-2 folder (its ViT, Q-Former and queries), "
                            "with --llm and optionally --projection")
    p.add_argument("--llm", metavar="DIR", help="with --blip2: a Vicuna/LLaMA Hugging Face folder")
    p.add_argument("--projection", metavar="PTH",
                   help="with --blip2: start llama_proj from an official MiniGPT-4 .pth (e.g. stage 2 from the "
                        "stage-1 checkpoint); without it the projection starts fresh (seeded)")
    p.add_argument("--frozen-dtype", choices=["float32", "float16", "bfloat16"], default="float32",
                   help="dtype of the frozen parts (upstream: ViT and LLM in float16, about half the memory); the "
                        "trained parameters stay float32 under AMP. Anything but float32 needs a CUDA GPU")
    p.add_argument("--data-kind", choices=["pairs_jsonl", "cc_sbu_align", "locna"], required=True)
    p.add_argument("--data", required=True, help="pairs JSONL / cc_sbu_align folder / narratives JSONL")
    p.add_argument("--images", help="image folder for --data-kind locna (e.g. coco/train2017)")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=8, help="global batch size")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--lr", type=float)
    p.add_argument("--min-lr", type=float)
    p.add_argument("--warmup-steps", type=int, default=10)
    p.add_argument("--max-txt-len", type=int)
    p.add_argument("--crop-min-scale", type=float, default=0.5,
                   help="stage 1's random resized crop keeps this much of the area at least (paper: 0.5; 1 = no crop)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=50)
    p.add_argument("--train-qformer", action="store_true", help="the '+ finetune Q-Former' variant")
    p.add_argument("--lora", action="store_true", help="also train the model's LoRA adapters (tiny:lora)")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=True)


def cmd_train(args: argparse.Namespace, argv: list[str]) -> int:
    from harness.train.loop import TrainConfig, train, write_summary  # torch: only when training
    from model_zoo import checkpoints

    if args.blip2:
        if not args.llm:
            raise SystemExit("mgbench train: --blip2 needs --llm DIR (the Vicuna/LLaMA folder)")
        import torch

        torch.manual_seed(args.seed)  # the fresh projection
        model, tokenizer = checkpoints.minigpt4_from_parts(args.blip2, args.llm, args.projection)
    elif args.llm or args.projection:
        raise SystemExit("mgbench train: --llm and --projection go with --blip2 (real parts), not --init")
    elif args.init.startswith("tiny:"):
        from model_zoo.tiny import tiny_minigpt4

        model, tokenizer = tiny_minigpt4(seed=args.seed, variant=args.init.split(":", 1)[1])
    else:
        model, tokenizer = checkpoints.load_minigpt4(args.init)
    defaults = STAGE_DEFAULTS[args.stage]
    cfg = TrainConfig(
        stage=args.stage, data_kind=args.data_kind, data_path=args.data, data_images=args.images, out_dir=args.out,
        steps=args.steps, batch_size=args.batch_size, grad_accum=args.grad_accum,
        lr=args.lr if args.lr is not None else defaults["lr"],
        min_lr=args.min_lr if args.min_lr is not None else defaults["min_lr"],
        warmup_steps=args.warmup_steps,
        max_txt_len=args.max_txt_len if args.max_txt_len is not None else defaults["max_txt_len"],
        crop_min_scale=args.crop_min_scale, seed=args.seed, checkpoint_every=args.checkpoint_every,
        train_qformer=args.train_qformer, train_lora=args.lora, frozen_dtype=args.frozen_dtype,
        progress=args.progress, extra={"init": args.init or {"blip2": args.blip2, "llm": args.llm,
                                                             "projection": args.projection}},
    )
    summary = train(model, tokenizer, cfg)
    import os

    if os.environ.get("RANK", "0") == "0":
        final = checkpoints.save_minigpt4(model, tokenizer, Path(args.out) / "final")
        write_summary(Path(args.out), summary)
        print(json.dumps({"final": str(final), "steps": summary["steps"], "resumed_from": summary["resumed_from"],
                          "last_loss": summary["losses"][-1] if summary["losses"] else None}))
    return 0
