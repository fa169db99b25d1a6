"""The `mgbench` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from harness.config import ConfigError, build_config
from harness.registry import MODELS, TASKS, UnknownNameError, parse_names
from harness.store import SCHEMA_VERSION, Store, StoreError
from harness.task import SpecError

EXPORT_SCHEMA_VERSION = 1
# The models `mgbench demo` runs: the tiny zoo, every model of the paper trained on the synthetic world
# (the same names as harness.train.zoo.MODELS, which imports torch; a test keeps the two equal).
DEMO_MODELS = ("minigpt4-tiny", "minigpt4-tiny-stage1", "minigpt4-tiny-noqformer", "minigpt4-tiny-3layers",
               "minigpt4-tiny-ftqformer", "minigpt4-tiny-locna", "minigpt4-tiny-ftvicuna", "blip2-tiny",
               "blip2-tiny-ft")

DESCRIPTION = """\
mgbench: evaluate MiniGPT-4-family vision-language models and reproduce the MiniGPT-4 paper's tables.

Every result goes into one SQLite store (runs, generations, judgments, metrics, ratings). Runs resume by
default: samples already in the store are skipped, so an interrupted run is finished by running the
same command again. Under torchrun/accelerate, samples are sharded across processes.
"""

EPILOG = """\
examples:
  mgbench models                                  list the registered models
  mgbench tasks                                   list the registered tasks
  mgbench run --models dummy,dummy-blind --tasks smoke_colours --store runs/smoke.sqlite
  mgbench run --models dummy --tasks smoke_colours --store s.sqlite --limit 20 --seed 1
  torchrun --nproc_per_node 2 -m harness.cli run --models dummy --tasks smoke_colours --store s.sqlite
  mgbench show --store runs/smoke.sqlite          runs and metrics as a table
  mgbench export --store runs/smoke.sqlite --out exports/   one JSONL per task and model
  mgbench report --store runs/smoke.sqlite --out report/    HTML leaderboard + report.json
  mgbench demo                                    the main job: world + tiny zoo -> every task -> leaderboard
  mgbench zoo build --config my-zoo.yaml          train the tiny zoo (cached per phase; YAML changes ZooConfig)
  mgbench world build --out world/ --size small   write the synthetic world in the real dataset formats
  mgbench judge --store s.sqlite --judge openai --judge-option model=gpt-3.5-turbo   re-judge, no model run
  mgbench metric chair --captions caps.jsonl --coco coco/annotations/           score files made anywhere
  mgbench rate create --store s.sqlite --tasks advanced_poem --models minigpt4 --raters 3   rating campaign
  mgbench rate serve --store s.sqlite             the rating web app (one secret link per rater)
"""


def _parse_option(text: str) -> tuple[str, str, Any]:
    """`model.key=value` -> (model, key, YAML-parsed value)."""
    target, eq, value = text.partition("=")
    model, dot, key = target.partition(".")
    if not eq or not dot or not model or not key:
        raise argparse.ArgumentTypeError(f"expected MODEL.KEY=VALUE, got {text!r}")
    return model, key, yaml.safe_load(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mgbench", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run", help="generate answers for every model x task and score them (resumes by default)",
        description="Run models on tasks, store every generation, and compute each task's metrics. "
        "Samples already stored for the same model fingerprint and request are skipped.",
    )
    run.add_argument("--models", help="comma-separated model names, or 'all' (default: dummy)")
    run.add_argument("--tasks", help="comma-separated task names, or 'all' (default: smoke_colours)")
    run.add_argument("--store", help="results store file (SQLite; created if missing)")
    run.add_argument("--config", help="YAML file with any of the run settings (CLI flags override it)")
    run.add_argument("--batch-size", type=int, help="samples per batch (default 8)")
    run.add_argument("--limit", type=int, help="draw a seeded random subset of N samples per task")
    run.add_argument("--seed", type=int, help="seed for subsets and anything random (default 0)")
    run.add_argument("--data-root", help="folder with a task's real data instead of the built-in data")
    run.add_argument("--cache-dir", help="where generated data is cached (default ~/.cache/mgbench)")
    run.add_argument("--model-option", action="append", type=_parse_option, default=[], metavar="M.KEY=VALUE",
                     help="constructor option for a model, e.g. dummy.seed=3 (repeatable)")
    run.add_argument("--retry-errors", action="store_true", default=None,
                     help="regenerate samples stored with a per-sample error (never touches successes)")
    run.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                     help="hide progress bars")

    show = sub.add_parser("show", help="print a store's runs and metrics as tables")
    show.add_argument("--store", required=True)

    export = sub.add_parser("export", help="write one JSONL file per task and model from a store")
    export.add_argument("--store", required=True)
    export.add_argument("--out", required=True, help="output folder (created if missing)")

    report = sub.add_parser("report", help="write the HTML leaderboard (index.html + report.json) from a store")
    report.add_argument("--store", required=True)
    report.add_argument("--out", required=True, help="output folder (created if missing)")
    report.add_argument("--roles", help="YAML mapping model names to the paper's rows (default: by name pattern)")
    report.add_argument("--samples-per-task", type=int, default=50, help="drill-down samples per task (seeded)")
    report.add_argument("--seed", type=int, default=0)

    demo = sub.add_parser(
        "demo", help="the main job: the paper in miniature, from the world to the leaderboard",
        description="Build the synthetic world and the tiny zoo (both cached: a second demo reuses them), run "
        "every task on every zoo model (resuming whatever the store already holds), judge, write the HTML "
        "leaderboard, and print its path and the commands that open the rating forms. On 2 CPU cores the "
        "first demo takes about half an hour, most of it training the zoo.",
    )
    demo.add_argument("--store", default="runs/demo.sqlite", help="results store (default runs/demo.sqlite)")
    demo.add_argument("--out", default="runs/demo-report", help="report folder (default runs/demo-report)")
    demo.add_argument("--limit", type=int, default=30,
                      help="samples per task (seeded subset; default 30, so the evaluation takes minutes on a CPU)")
    demo.add_argument("--world", help="world folder to use (default: the cached default world, built if missing)")
    demo.add_argument("--zoo", help="tiny zoo folder (default: ~/.cache/mgbench/zoo, built or updated as needed)")
    demo.add_argument("--zoo-config", help="YAML of ZooConfig changes, as for `mgbench zoo build --config`")
    demo.add_argument("--no-progress", dest="progress", action="store_false", default=True)

    world = sub.add_parser("world", help="the synthetic world: a miniature of the paper's data in the real formats")
    world_sub = world.add_subparsers(dest="world_command", required=True, metavar="WORLD_COMMAND")
    build = world_sub.add_parser(
        "build", help="write the synthetic world (COCO, A-OKVQA, GQA, cc_sbu_align, shards, ...) to a folder",
        description="Write the synthetic world: scenes of 1-4 glyph objects drawn from 24 COCO categories, "
        "with COCO 2014 captions/instances and the Karpathy split, A-OKVQA, GQA, stage-1 caption shards, "
        "stage-2 cc_sbu_align, Localized-Narratives-style text, the advanced-task manifest and a text-only "
        "corpus. The same seed gives byte-identical files.",
    )
    build.add_argument("--out", help="output folder (default: the cache, ~/.cache/mgbench/world/...)")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--size", choices=["small", "default"], default="default")
    build.add_argument("--cache-dir", help="cache folder used when --out is not given")
    build.add_argument("--no-progress", dest="progress", action="store_false", default=True)

    metric = sub.add_parser("metric", help="score files made anywhere (CHAIR, A-OKVQA, GQA, COCO caption metrics)",
                            description="Each prints one JSON object of metrics.")
    metric_sub = metric.add_subparsers(dest="metric_command", required=True, metavar="METRIC")
    chair = metric_sub.add_parser("chair", help="CHAIRi/CHAIRs/recall/length, per-caption objects")
    chair.add_argument("--captions", required=True, help="JSON list or JSONL of {image_id, caption}")
    chair.add_argument("--coco", required=True, help="COCO annotations/ folder (instances_* and captions_*)")
    chair.add_argument("--mode", choices=["reference", "fixed"], default="reference",
                       help="reference: the reference implementation's numbers, quirks included (default); "
                            "fixed: quirks fixed, metrics named *_fixed")
    chair.add_argument("--cache-dir", help="where the ground-truth cache goes (default: the mgbench cache)")
    aok = metric_sub.add_parser("aokvqa", help="A-OKVQA MC and DA accuracy as the official script scores")
    aok.add_argument("--data", required=True, help="aokvqa_v1p0_{split}.json")
    aok.add_argument("--predictions", required=True, help="{question_id: {multiple_choice, direct_answer}}")
    gqa = metric_sub.add_parser("gqa", help="GQA accuracy (exact match after the named normalisation)")
    gqa.add_argument("--questions", required=True, help="{split}_balanced_questions.json")
    gqa.add_argument("--predictions", required=True, help="[{questionId, prediction}]")
    gqa.add_argument("--normalize", choices=["none", "llava", "lavis"], default="none")
    cap = metric_sub.add_parser("caption", help="BLEU-1..4, METEOR, ROUGE-L, CIDEr (SPICE: unavailable offline)")
    cap.add_argument("--annotations", required=True, help="COCO captions annotation file")
    cap.add_argument("--results", required=True, help="COCO results file [{image_id, caption}]")

    judge = sub.add_parser(
        "judge", help="re-score stored generations (re-judging judged tasks) without running any model",
        description="Recompute every task's metrics from the generations already in the store; judged tasks "
        "ask the judge, answering from the store's judgment cache where it can. API keys are read from the "
        "environment only.",
    )
    judge.add_argument("--store", required=True)
    judge.add_argument("--tasks", help="comma-separated tasks (default: every task in the store)")
    judge.add_argument("--judge", default="rule", help="rule (offline, default), openai, or replay")
    judge.add_argument("--judge-option", action="append", default=[], metavar="KEY=VALUE",
                       help="judge option, e.g. model=gpt-3.5-turbo, base_url=URL, path=verdicts.jsonl")
    judge.add_argument("--max-requests", type=int, help="budget: at most this many judge requests")
    judge.add_argument("--max-tokens", type=int, help="budget: at most this many judge tokens")
    judge.add_argument("--data-root", help="the tasks' data, as for `mgbench run`")
    judge.add_argument("--cache-dir")

    from harness.train.cli import add_parser as add_train_parser

    add_train_parser(sub)
    from harness.train.curate_cli import add_parser as add_curate_parser

    add_curate_parser(sub)
    from human_eval.cli import add_parser as add_rate_parser

    add_rate_parser(sub)
    from harness.train.zoo_cli import add_parser as add_zoo_parser

    add_zoo_parser(sub)

    sub.add_parser("models", help="list registered models")
    sub.add_parser("tasks", help="list registered tasks")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args, argv)
    except (StoreError, ConfigError, UnknownNameError, SpecError, ValueError, FileNotFoundError) as exc:
        print(f"mgbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mgbench: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


# ----- commands ----------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace, argv: list[str]) -> int:
    from harness.runner import Runner  # imports torch: only when running

    options: dict[str, dict[str, Any]] = {}
    for model, key, value in args.model_option:
        options.setdefault(model, {})[key] = value
    config = build_config(
        args.config,
        models=tuple(parse_names(args.models, MODELS)) if args.models else None,
        tasks=tuple(parse_names(args.tasks, TASKS)) if args.tasks else None,
        store=args.store, batch_size=args.batch_size, limit=args.limit, seed=args.seed,
        data_root=args.data_root, cache_dir=args.cache_dir, retry_errors=args.retry_errors,
        progress=args.progress, model_options=options or None,
    )
    result = Runner(config, argv=["mgbench", *argv]).run()
    if os.environ.get("RANK", "0") != "0":
        return 0
    rows = []
    for p in result.pairs:
        for m in p.metrics:
            rows.append([p.model, p.task, m.name, _fmt(m.value), _ci(m.ci_low, m.ci_high), str(m.n),
                         str(p.already_stored), str(p.generated)])
    print(f"run {result.run_id} -> {result.store}")
    print(format_table(["model", "task", "metric", "value", "95% CI", "n", "resumed", "new"], rows))
    return 0


def cmd_show(args: argparse.Namespace, argv: list[str]) -> int:
    with _open_existing(args.store) as store:
        runs = store.runs()
        run_rows = []
        for r in runs:
            cfg = json.loads(r["config_json"])
            run_rows.append([r["run_id"], r["started_at"][:19], r["status"], ",".join(cfg.get("models", [])),
                             ",".join(cfg.get("tasks", [])), str(r["seed"]), str(cfg.get("limit") or "all"),
                             str(r["world_size"]), (r["git_sha"] or "-")[:12]])
        print(f"store {args.store} (schema {SCHEMA_VERSION}): {len(runs)} run(s), "
              f"{store.count_generations()} generation(s)\n")
        print(format_table(["run", "started (UTC)", "status", "models", "tasks", "seed", "limit", "procs",
                            "git"], run_rows))
        metric_rows = [[m["task"], m["model"], m["metric"], _fmt(m["value"]), _ci(m["ci_low"], m["ci_high"]),
                        str(m["n"]), m["run_id"]] for m in store.latest_metrics()]
        print()
        print(format_table(["task", "model", "metric", "value", "95% CI", "n", "run"], metric_rows))
    return 0


def cmd_export(args: argparse.Namespace, argv: list[str]) -> int:
    out = Path(args.out)
    with _open_existing(args.store) as store:
        out.mkdir(parents=True, exist_ok=True)
        files: dict[tuple[str, str], list[str]] = {}
        for row in store.generations():
            request = json.loads(row.request_json)
            record = {
                "schema_version": EXPORT_SCHEMA_VERSION, "key": row.key, "model": row.model,
                "model_fingerprint": row.model_fingerprint, "task": row.task, "sample_id": row.sample_id,
                "prompt": request["prompt"], "image": request["image"], "settings": request["settings"],
                "choices": request["choices"], "text": row.text, "prompt_tokens": row.prompt_tokens,
                "completion_tokens": row.completion_tokens, "latency_s": row.latency_s,
                "choice_logprobs": row.choice_logprobs, "error": row.error, "run_id": row.run_id,
                "created_at": row.created_at,
            }
            files.setdefault((row.task, row.model), []).append(json.dumps(record, sort_keys=True))
    for (task, model), lines in sorted(files.items()):
        path = out / f"{_safe(task)}__{_safe(model)}.jsonl"
        fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{path.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
        os.replace(tmp, path)
        print(f"{path}\t{len(lines)} records")
    if not files:
        print(f"{args.store}: no generations to export", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace, argv: list[str]) -> int:
    from reports.leaderboard import build_report
    from reports.roles import RolesError

    try:
        with _open_existing(args.store) as store:
            path = build_report(store, args.out, roles=args.roles, samples_per_task=args.samples_per_task,
                                seed=args.seed)
    except RolesError as exc:
        raise ConfigError(str(exc)) from exc
    print(f"leaderboard: {path.resolve()}")
    return 0


def cmd_demo(args: argparse.Namespace, argv: list[str]) -> int:
    from harness.config import default_cache_dir
    from harness.runner import Runner
    from harness.train.zoo import build_zoo, load_zoo_config
    from model_zoo.zoo_models import default_zoo_dir
    from reports.leaderboard import build_report
    from tasks.world import cached_world

    try:
        zoo_config = load_zoo_config(args.zoo_config) if args.zoo_config else None
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    print("[demo] 1/4 the synthetic world", flush=True)
    world = Path(args.world) if args.world else cached_world(default_cache_dir(), progress=args.progress)
    print("[demo] 2/4 the tiny zoo (pre-training, stage 1, curation, stage 2, variants; cached)", flush=True)
    zoo = Path(args.zoo) if args.zoo else default_zoo_dir()
    build_zoo(world, zoo, progress=args.progress, config=zoo_config)
    print(f"[demo] 3/4 every task on every zoo model (limit {args.limit} per task; judged offline)", flush=True)
    options = {name: {"zoo": str(zoo.resolve())} for name in DEMO_MODELS}
    tasks = tuple(t for t in TASKS.names() if not t.startswith("smoke_"))  # the paper's tasks
    config = build_config(None, models=DEMO_MODELS, tasks=tasks, store=args.store,
                          progress=args.progress, limit=args.limit, model_options=options,
                          data_root=str(world.resolve()) if args.world else None)
    result = Runner(config, argv=["mgbench", *argv]).run()
    print("[demo] 4/4 the leaderboard", flush=True)
    with Store(args.store) as store:
        path = build_report(store, args.out)
    human = [t for t in TASKS.names() if t.startswith(("advanced_", "failure_"))]
    print(f"run {result.run_id}: {len(result.pairs)} model x task pairs -> {args.store}")
    print("human-rated tables (1 and 3) show a labelled judge proxy until people rate; open the forms with:")
    print(f"  mgbench rate create --store {args.store} --tasks {','.join(human)} "
          f"--models minigpt4-tiny,blip2-tiny,minigpt4-tiny-stage1 --raters 3")
    print(f"  mgbench rate serve --store {args.store}")
    print(f"leaderboard: {path.resolve()}")
    return 0


def cmd_world(args: argparse.Namespace, argv: list[str]) -> int:
    from harness.config import default_cache_dir
    from tasks.world import build_world, cached_world

    start = time.perf_counter()
    if args.out:
        path = build_world(Path(args.out), seed=args.seed, size=args.size, progress=args.progress)
    else:
        cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
        path = cached_world(cache, seed=args.seed, size=args.size, progress=args.progress)
    manifest = json.loads((path / "world.json").read_text(encoding="utf-8"))
    print(f"world (seed {manifest['seed']}, size {manifest['size']}): {path.resolve()}  "
          f"[{sum(manifest['splits'].values())} images, {time.perf_counter() - start:.1f} s]")
    return 0


def cmd_metric(args: argparse.Namespace, argv: list[str]) -> int:
    if args.metric_command == "chair":
        from tasks.metrics.chair import chair_cli

        result = chair_cli(args.captions, args.coco, mode=args.mode, cache_dir=args.cache_dir)
    elif args.metric_command == "aokvqa":
        from tasks.metrics.vqa import aokvqa_cli

        result = aokvqa_cli(args.data, args.predictions)
    elif args.metric_command == "gqa":
        from tasks.metrics.vqa import gqa_cli

        result = gqa_cli(args.questions, args.predictions, args.normalize)
    else:
        from tasks.metrics.caption import caption_cli

        result = caption_cli(args.annotations, args.results)
    print(json.dumps(result, indent=1, sort_keys=True, default=str))
    return 0


def cmd_judge(args: argparse.Namespace, argv: list[str]) -> int:
    from harness.runner import Runner

    options: dict[str, Any] = {}
    for item in args.judge_option:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ConfigError(f"--judge-option: expected KEY=VALUE, got {item!r}")
        options[key] = yaml.safe_load(value)
    with _open_existing(args.store) as store:
        in_store = sorted({row.task for row in store.generations()})
    tasks = parse_names(args.tasks, TASKS) if args.tasks else [t for t in in_store if t in TASKS.names()]
    config = build_config(None, store=args.store, tasks=tuple(tasks) or None, judge=args.judge,
                          judge_options=options, judge_max_requests=args.max_requests,
                          judge_max_tokens=args.max_tokens, data_root=args.data_root, cache_dir=args.cache_dir)
    result = Runner(config, argv=["mgbench", *argv]).rescore(tasks)
    rows = [[p.model, p.task, m.name, _fmt(m.value), _ci(m.ci_low, m.ci_high), str(m.n)]
            for p in result.pairs for m in p.metrics]
    print(f"run {result.run_id} (re-scored from the store, judge {args.judge}) -> {args.store}")
    print(format_table(["model", "task", "metric", "value", "95% CI", "n"], rows))
    return 0


def cmd_train(args: argparse.Namespace, argv: list[str]) -> int:
    from harness.train.cli import cmd_train as run_training

    return run_training(args, argv)


def cmd_curate(args: argparse.Namespace, argv: list[str]) -> int:
    from harness.train.curate_cli import cmd_curate as run_curation

    return run_curation(args, argv)


def cmd_rate(args: argparse.Namespace, argv: list[str]) -> int:
    from human_eval.cli import cmd_rate as run_rating

    return run_rating(args, argv)


def cmd_zoo(args: argparse.Namespace, argv: list[str]) -> int:
    from harness.train.zoo_cli import cmd_zoo as run_zoo

    return run_zoo(args, argv)


def cmd_models(args: argparse.Namespace, argv: list[str]) -> int:
    print(format_table(["model", "adapter"], [[n, MODELS.target(n)] for n in MODELS.names()]))
    return 0


def cmd_tasks(args: argparse.Namespace, argv: list[str]) -> int:
    print(format_table(["task", "implementation"], [[n, TASKS.target(n)] for n in TASKS.names()]))
    return 0


COMMANDS = {"run": cmd_run, "show": cmd_show, "export": cmd_export, "report": cmd_report, "demo": cmd_demo,
            "world": cmd_world, "metric": cmd_metric, "judge": cmd_judge, "train": cmd_train, "curate": cmd_curate,
            "rate": cmd_rate, "zoo": cmd_zoo,
            "models": cmd_models, "tasks": cmd_tasks}


# ----- helpers -----------------------------------------------------------------------------------------
def _open_existing(path: str) -> Store:
    if not Path(path).exists():
        raise StoreError(f"{path}: no such store")
    return Store(path)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) and not value.is_integer() else f"{value:g}"


def _ci(low: float | None, high: float | None) -> str:
    return "-" if low is None or high is None else f"[{low:.3f}, {high:.3f}]"


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return "(none)"
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
