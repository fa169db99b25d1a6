"""The runner: requests -> length-sorted batches -> adapter -> store, resumable and data-parallel.

For each task and model:
  1. the task lists its requests; `limit` draws a seeded random subset (recorded in the store);
  2. each request gets its key (model fingerprint + request); keys already stored are skipped (resume);
  3. the rest are sorted by length and cut into batches; batch i goes to rank i % world_size;
  4. each batch's images are loaded (a bad image is a per-sample error), the adapter answers, and the
     batch is written to the store in one transaction;
  5. rank 0 scores the task from the store alone and writes the metrics.
"""

from __future__ import annotations

import inspect
import random
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from harness import provenance
from harness.adapter import ModelAdapter
from harness.config import ConfigError, RunConfig
from harness.dist import DistContext
from harness.images import ImageLoadError, load_image
from harness.judges import Budget, Judge, make_judge, score_context_judge
from harness.metrics import MetricValue
from harness.registry import MODELS, TASKS
from harness.store import GenerationRow, Store
from harness.task import ScoreContext, Task, TaskContext
from harness.types import Request, Response, generation_key


@dataclass
class PairResult:
    """What one (model, task) pair did in this run."""

    model: str
    task: str
    selected: int
    already_stored: int
    generated: int = 0
    errors: int = 0
    metrics: list[MetricValue] = field(default_factory=list)

    def metric(self, name: str) -> MetricValue:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(f"{self.model} x {self.task}: no metric {name!r}; have {[m.name for m in self.metrics]}")


@dataclass
class RunResult:
    run_id: str
    store: str
    pairs: list[PairResult]

    def pair(self, model: str, task: str) -> PairResult:
        for p in self.pairs:
            if p.model == model and p.task == task:
                return p
        raise KeyError(f"no result for model {model!r} on task {task!r}")


def select_subset(requests: Sequence[Request], limit: int | None, seed: int) -> list[Request]:
    """A seeded random subset of `limit` requests (not the first N), kept in the task's order."""
    if limit is None or limit >= len(requests):
        return list(requests)
    task = requests[0].task if requests else ""
    rng = random.Random(f"{seed}:{task}")
    chosen = set(rng.sample(sorted(r.sample_id for r in requests), limit))
    return [r for r in requests if r.sample_id in chosen]


def length_sorted_batches(items: Sequence[tuple[str, Request]], batch_size: int) -> list[list[tuple[str, Request]]]:
    """Longest first (memory trouble shows up at once), ties broken by key, so order is deterministic."""
    def length(item: tuple[str, Request]) -> int:
        req = item[1]
        return len(req.prompt) + sum(len(c) for c in req.choices)

    ordered = sorted(items, key=lambda it: (-length(it), it[0]))
    return [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]


class Runner:
    def __init__(self, config: RunConfig, argv: Sequence[str] | None = None):
        self.config = config
        self.argv = list(sys.argv if argv is None else argv)
        self._adapters: dict[str, ModelAdapter] = {}
        self._judge: Judge | None = None

    # ----- public --------------------------------------------------------------------------------------
    def run(self, models: Sequence[str] | None = None, tasks: Sequence[str] | None = None) -> RunResult:
        models = list(models or self.config.models)
        tasks = list(tasks or self.config.tasks)
        for name in models:  # fail before any work: unknown names (listing the known ones), bad options
            check_model_options(name, self.config.model_options.get(name, {}))
        for name in tasks:
            TASKS.target(name)
        ctx = DistContext.from_env()
        try:
            return self._run(ctx, models, tasks)
        finally:
            ctx.close()

    def rescore(self, tasks: Sequence[str]) -> RunResult:
        """Recompute the metrics of `tasks` from the generations in the store, running no model.

        Judged tasks ask the judge (through the store's cache). For each model name the generations of its
        most recent fingerprint are scored. The result is a run of its own, with its own provenance.
        """
        with Store(self.config.store) as store:
            run_id = self._start_run(store, {"command": "rescore", "models": [], "tasks": list(tasks)}, 1)
            status, pairs = "failed", []
            try:
                for task_name in tasks:
                    pairs.extend(self._rescore_task(store, run_id, TASKS.load(task_name)()))
                status = "finished"
            finally:
                store.finish_run(run_id, status)
        return RunResult(run_id=run_id, store=str(self.config.store), pairs=pairs)

    def _rescore_task(self, store: Store, run_id: str, task: Task) -> Iterator[PairResult]:
        cfg = self.config
        by_model: dict[str, list[GenerationRow]] = {}
        for row in store.generations(task=task.name):
            by_model.setdefault(row.model, []).append(row)
        if not by_model:
            return
        # The data the generations were made on: --data-root if given, else what their run recorded.
        data_root = cfg.data_root
        if data_root is None:
            newest = max((r for rows in by_model.values() for r in rows), key=lambda r: r.created_at)
            data_root = store.run_config(newest.run_id).get("data_root")
        task_ctx = TaskContext(cache_dir=cfg.resolved_cache_dir(),
                               data_root=None if data_root is None else Path(data_root))
        requests = {r.sample_id: r for r in task.requests(task_ctx)}
        for model, rows in by_model.items():
            latest = max(rows, key=lambda r: r.created_at).model_fingerprint
            keyed = [(r.key, requests[r.sample_id]) for r in rows
                     if r.model_fingerprint == latest and r.sample_id in requests]
            result = PairResult(model, task.name, selected=len(keyed), already_stored=len(keyed))
            result.metrics = self._score(store, task, run_id, keyed)
            store.write_metrics(run_id, model, task.name, result.metrics)
            result.errors = int(next(m for m in result.metrics if m.name == "errors").value or 0)
            yield result

    def _start_run(self, store: Store, what: dict[str, Any], world_size: int) -> str:
        cfg = self.config
        return store.start_run(
            config=provenance.redact_options({**cfg.to_dict(), **what}), config_hash=cfg.config_hash(),
            seed=cfg.seed, argv=provenance.redact_argv(self.argv), provenance=provenance.collect(),
            world_size=world_size,
        )

    def adapter(self, name: str) -> ModelAdapter:
        if name not in self._adapters:
            cls = MODELS.load(name)
            self._adapters[name] = cls(**self.config.model_options.get(name, {}))
        return self._adapters[name]

    # ----- internals -----------------------------------------------------------------------------------
    def _run(self, ctx: DistContext, models: list[str], tasks: list[str]) -> RunResult:
        cfg = self.config
        # Rank 0 creates/migrates the store and the run row before anyone else opens it.
        store = None
        run_id = None
        if ctx.is_main:
            store = Store(cfg.store)
            run_id = self._start_run(store, {"models": models, "tasks": tasks}, ctx.world_size)
        run_id = ctx.broadcast(run_id)
        if store is None:
            store = Store(cfg.store)
        status = "failed"
        try:
            with _sigterm_as_interrupt():
                pairs = [
                    pair
                    for task_name in tasks
                    for pair in self._run_task(ctx, store, run_id, TASKS.load(task_name)(), models)
                ]
            status = "finished"
            return RunResult(run_id=run_id, store=str(cfg.store), pairs=pairs)
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            if ctx.is_main:
                store.finish_run(run_id, status)
            store.close()

    def _run_task(self, ctx: DistContext, store: Store, run_id: str, task: Task,
                  models: list[str]) -> Iterator[PairResult]:
        cfg = self.config
        task_ctx = TaskContext(cache_dir=cfg.resolved_cache_dir(),
                               data_root=None if cfg.data_root is None else Path(cfg.data_root))
        # Rank 0 goes first so any cached data is built once, before the other ranks read it.
        requests = task.requests(task_ctx) if ctx.is_main else None
        ctx.barrier()
        selected = select_subset(requests or task.requests(task_ctx), cfg.limit, cfg.seed)
        if ctx.is_main:
            store.record_run_samples(run_id, task.name, (r.sample_id for r in selected))
        for model_name in models:
            adapter = self.adapter(model_name)
            fingerprint = adapter.fingerprint()
            keyed = [(generation_key(fingerprint, r), r) for r in selected]
            pending = None
            if ctx.is_main:  # one process decides what is left, so all ranks agree on the split
                pending = self._pending(store, keyed)
            pending = ctx.broadcast(pending)
            result = PairResult(model_name, task.name, selected=len(keyed),
                                already_stored=len(keyed) - len(pending))
            todo = set(pending)
            batches = length_sorted_batches([kr for kr in keyed if kr[0] in todo], cfg.batch_size)
            mine = batches[ctx.rank :: ctx.world_size]
            label = f"{model_name} · {task.name}"
            if ctx.world_size > 1:
                label += f" [rank {ctx.rank}/{ctx.world_size}]"
            with tqdm(total=sum(len(b) for b in mine), desc=label, unit="sample", dynamic_ncols=True,
                      disable=not (cfg.progress and ctx.is_main), file=sys.stderr) as bar:
                bar.set_postfix(resumed=result.already_stored)
                # Images of batch i+1 are decoded on a worker thread while the model works on batch i.
                with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mgbench-images") as pool:
                    upcoming = pool.submit(load_batch_images, mine[0]) if mine else None
                    for i, batch in enumerate(mine):
                        images = upcoming.result()
                        if i + 1 < len(mine):
                            upcoming = pool.submit(load_batch_images, mine[i + 1])
                        rows = self._run_batch(adapter, task.mode, batch, images, model_name, fingerprint, run_id,
                                               ctx.rank)
                        result.generated += store.write_generations(rows)
                        bar.update(len(batch))
            ctx.barrier()
            if ctx.is_main:
                result.metrics = self._score(store, task, run_id, keyed)
                store.write_metrics(run_id, model_name, task.name, result.metrics)
                errors = next(m for m in result.metrics if m.name == "errors")
                result.errors = int(errors.value or 0)
            yield result

    def _pending(self, store: Store, keyed: list[tuple[str, Request]]) -> list[str]:
        keys = [k for k, _ in keyed]
        done = store.existing_keys(keys)
        if self.config.retry_errors:
            done -= store.error_keys(keys)
        return [k for k in keys if k not in done]

    def _run_batch(self, adapter: ModelAdapter, mode: str, batch: list[tuple[str, Request]],
                   images: list[Any], model_name: str, fingerprint: str, run_id: str,
                   rank: int) -> list[GenerationRow]:
        requests = [r for _, r in batch]
        # An image that failed to load is that sample's error; the rest of the batch goes on.
        responses: list[Response | None] = [
            Response(error=f"ImageLoadError: {img}") if isinstance(img, ImageLoadError) else None for img in images
        ]
        ok = [i for i in range(len(batch)) if responses[i] is None]
        call = adapter.score_choices if mode == "score_choices" else adapter.generate
        for i, resp in zip(ok, call_with_isolation(call, [requests[i] for i in ok], [images[i] for i in ok]),
                           strict=True):
            responses[i] = resp
        return [
            GenerationRow(
                key=key, model=model_name, model_fingerprint=fingerprint, task=req.task,
                sample_id=req.sample_id, request_json=req.to_json(), text=resp.text,
                prompt_tokens=resp.prompt_tokens, completion_tokens=resp.completion_tokens,
                latency_s=resp.latency_s,
                choice_logprobs=None if resp.choice_logprobs is None else list(resp.choice_logprobs),
                error=resp.error, run_id=run_id, rank=rank,
            )
            for (key, req), resp in zip(batch, responses, strict=True)
            if resp is not None
        ]

    def judge(self) -> Judge:
        if self._judge is None:
            self._judge = make_judge(self.config.judge, **self.config.judge_options)
        return self._judge

    def _score(self, store: Store, task: Task, run_id: str,
               keyed: list[tuple[str, Request]]) -> list[MetricValue]:
        """Score from the store alone: the metrics of a resumed run equal those of an uninterrupted one."""
        # Not filtered by model name: two names for one fingerprint share rows (the key has no name in it).
        rows = store.generations(task=task.name, keys=[k for k, _ in keyed])
        by_key = {row.key: row for row in rows}
        pairs: list[tuple[Request, Response]] = []
        errors = 0
        for key, req in keyed:
            row = by_key.get(key)
            if row is None or row.error is not None:
                errors += 1
                continue
            pairs.append((req, Response(
                text=row.text, prompt_tokens=row.prompt_tokens, completion_tokens=row.completion_tokens,
                latency_s=row.latency_s,
                choice_logprobs=None if row.choice_logprobs is None else tuple(row.choice_logprobs),
            )))
        model = next((by_key[k].model for k, _ in keyed if k in by_key), "")
        context = ScoreContext(keys=[k for k, _ in keyed if k in by_key and by_key[k].error is None], model=model,
                               store=store)
        if task.spec.judge and pairs:
            judge = self.judge()
            context.judge = score_context_judge(judge, store, run_id, Budget(self.config.judge_max_requests,
                                                                              self.config.judge_max_tokens))
            context.judge_name, context.judge_label, context.is_proxy = judge.name, judge.label, judge.is_proxy
        metrics = list(task.score(pairs, context)) if pairs else []
        metrics.append(MetricValue("errors", float(errors), len(keyed), higher_is_better=False,
                                   details={"samples": len(keyed), "scored": len(pairs)}))
        return metrics


def load_batch_images(batch: list[tuple[str, Request]]) -> list[Any]:
    """Each request's decoded image, None where it has none, or the ImageLoadError where it failed."""
    images: list[Any] = []
    for _, req in batch:
        if req.image is None:
            images.append(None)
            continue
        try:
            images.append(load_image(req.image))
        except ImageLoadError as exc:
            images.append(exc)
    return images


def check_model_options(name: str, options: dict[str, Any]) -> None:
    """Raise ConfigError if the model's constructor would not accept `options`."""
    cls = MODELS.load(name)
    try:
        inspect.signature(cls).bind(**options)
    except TypeError as exc:
        raise ConfigError(
            f"model {name!r} ({MODELS.target(name)}): options {sorted(options)} not accepted: {exc}"
        ) from exc


def call_with_isolation(call: Callable[[list[Request], list[Any]], list[Response]],
                         requests: list[Request], images: list[Any]) -> list[Response]:
    """Call the adapter on the batch; if it fails, retry sample by sample so one bad sample costs one."""
    if not requests:
        return []
    try:
        responses = call(requests, images)
        if len(responses) != len(requests):
            raise RuntimeError(f"adapter returned {len(responses)} responses for {len(requests)} requests")
        return list(responses)
    except ConfigError:  # a configuration problem (e.g. a rejected API key) fails every sample: stop the run
        raise
    except Exception as exc:
        if len(requests) == 1:
            return [Response(error=f"{type(exc).__name__}: {exc}")]
        return [r for req, img in zip(requests, images, strict=True)
                for r in call_with_isolation(call, [req], [img])]


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt, so the run is marked interrupted and the store closed."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

