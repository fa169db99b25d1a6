"""Running a judge over many requests through the store's cache, within a budget.

`run_judge` looks every prompt up in the cache first and asks the judge only about the misses; each prompt is
asked at most once per run however often it occurs, and each answer is written to the store the moment it
arrives (one transaction per verdict, from the calling thread), so an interrupted run loses only the requests
in flight and a rerun asks nothing that was answered. Up to `judge.max_concurrency` requests run at once on
threads; new ones are issued only while the budget lasts:

  Budget.max_requests  judge calls this run may make (cache hits are free; the client's own retries of one
                       call are not counted apart)
  Budget.max_tokens    prompt + completion tokens this run may spend. Checked before each new call against the
                       tokens of the answers received so far, so the calls already in flight may overshoot it

Prompts left unasked when the budget runs out come back as "not_judged" (counted, never stored, never "no").
A judge error that concerns every request (JudgeAuthError) stops the run: the answers already received are
stored, the calls in flight are awaited and stored, then the error is raised.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.judges import cache
from harness.judges.base import NOT_JUDGED, Judge, JudgeRequest, Verdict
from harness.store import Store


@dataclass(frozen=True)
class Budget:
    """What one run may spend; None: no limit."""

    max_requests: int | None = None
    max_tokens: int | None = None

    def stop_reason(self, requests: int, tokens: int) -> str | None:
        if self.max_requests is not None and requests >= self.max_requests:
            return f"request budget reached ({requests} of {self.max_requests} requests)"
        if self.max_tokens is not None and tokens >= self.max_tokens:
            return f"token budget reached ({tokens} of {self.max_tokens} tokens)"
        return None


@dataclass
class JudgeReport:
    """What a judge run did. Counts are over unique prompts (a prompt asked twice counts once);
    `verdicts` has one entry per request passed in, in order (duplicates share their prompt's verdict)."""

    judge: str
    judge_version: str
    label: str
    is_proxy: bool
    requests: int  # requests passed in
    unique: int  # distinct prompts among them
    cached: int  # answered from the store
    requested: int  # judge calls made by this run
    not_judged: int  # left unasked by the budget
    counts: dict[str, int]  # verdict state -> unique prompts (cached and new): yes, no, text, unparseable, error
    verbose: int  # yes/no answers read from the start of a longer answer
    prompt_tokens: int  # spent by this run's calls
    completion_tokens: int
    stop_reason: str | None  # why requests stopped being issued before the end; None: they all were
    elapsed_s: float
    verdicts: list[Verdict] = field(default_factory=list, repr=False)

    @property
    def complete(self) -> bool:
        """Every prompt has an answer (no errors, nothing left unjudged)."""
        return self.not_judged == 0 and self.counts.get("error", 0) == 0

    def to_dict(self) -> dict[str, Any]:
        """The summary as plain data (JSON-ready), without the per-request verdicts."""
        data = asdict(self)
        data.pop("verdicts")
        return data


def run_judge(judge: Judge, store: Store, requests: Sequence[JudgeRequest], run_id: str | None = None,
              budget: Budget | None = None) -> JudgeReport:
    """Judge `requests` through the store's cache; see the module docstring."""
    start = time.perf_counter()
    budget = budget or Budget()
    keys = [cache.judgment_key(judge.name, judge.version, r.prompt) for r in requests]
    unique = _unique(keys, requests)
    _check_generations(store, unique.values())
    results: dict[str, Verdict] = cache.read_verdicts(store, {k: r.kind for k, r in unique.items()})
    cached = len(results)
    misses = deque(k for k in unique if k not in results)
    issued, tokens, stop_reason = 0, 0, None
    new: list[Verdict] = []
    fatal: BaseException | None = None
    workers = max(1, min(judge.max_concurrency, len(misses)))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"judge-{judge.name}")
    in_flight: dict[Future[Verdict], str] = {}
    try:
        while misses or in_flight:
            while misses and len(in_flight) < workers and fatal is None and stop_reason is None:
                stop_reason = budget.stop_reason(issued, tokens)
                if stop_reason is None:
                    key = misses.popleft()
                    in_flight[pool.submit(judge.judge_one, unique[key])] = key
                    issued += 1
            if not in_flight:
                break
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                key = in_flight.pop(future)
                try:
                    verdict = future.result()
                except Exception as exc:  # a run-wide failure: stop issuing, keep what arrives
                    fatal = fatal or exc
                    continue
                cache.write_verdict(store, key, judge.name, judge.version, unique[key], verdict, run_id)
                results[key] = verdict
                new.append(verdict)
                tokens += verdict.tokens
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)  # e.g. Ctrl-C: what was stored stays stored
        raise
    pool.shutdown(wait=True)
    if fatal is not None:
        raise fatal
    unasked = Verdict(NOT_JUDGED, error=f"not judged: {stop_reason}")
    counts = Counter(v.verdict for v in results.values())
    return JudgeReport(
        judge=judge.name, judge_version=judge.version, label=judge.label or judge.name, is_proxy=judge.is_proxy,
        requests=len(requests), unique=len(unique), cached=cached, requested=issued,
        not_judged=len(unique) - len(results), counts=dict(sorted(counts.items())),
        verbose=sum(v.verbose for v in results.values()),
        prompt_tokens=sum(v.prompt_tokens for v in new), completion_tokens=sum(v.completion_tokens for v in new),
        stop_reason=stop_reason, elapsed_s=time.perf_counter() - start,
        verdicts=[results.get(k, unasked) for k in keys],
    )


def cached_verdicts(judge: Judge, store: Store, requests: Sequence[JudgeRequest]) -> list[Verdict | None]:
    """The stored verdict for each request (None where the store has no answer), asking nobody."""
    keys = [cache.judgment_key(judge.name, judge.version, r.prompt) for r in requests]
    found = cache.read_verdicts(store, {k: r.kind for k, r in zip(keys, requests, strict=True)})
    return [found.get(k) for k in keys]


def score_context_judge(judge: Judge, store: Store, run_id: str | None = None, budget: Budget | None = None,
                        kind: str = "yes_no") -> Callable[[Sequence[str], Sequence[str | None]], list[Verdict]]:
    """A `judge(prompts, generation_keys) -> verdicts` function for harness.task.ScoreContext, through the cache.
    The last call's JudgeReport is kept on the function as `.last_report`."""

    def judge_prompts(prompts: Sequence[str], generation_keys: Sequence[str | None]) -> list[Verdict]:
        reqs = [JudgeRequest(p, g, kind) for p, g in zip(prompts, generation_keys, strict=True)]
        report = run_judge(judge, store, reqs, run_id=run_id, budget=budget)
        judge_prompts.last_report = report  # type: ignore[attr-defined]
        return report.verdicts

    judge_prompts.last_report = None  # type: ignore[attr-defined]
    return judge_prompts


def _unique(keys: Sequence[str], requests: Sequence[JudgeRequest]) -> dict[str, JudgeRequest]:
    """The first request of each key, in order; the same prompt may not be asked as two kinds at once."""
    unique: dict[str, JudgeRequest] = {}
    for key, request in zip(keys, requests, strict=True):
        first = unique.setdefault(key, request)
        if first.kind != request.kind:
            raise ValueError(f"the same prompt is asked as kind {first.kind!r} and {request.kind!r}: "
                             f"{request.prompt[:80]!r}")
    return unique


def _check_generations(store: Store, requests: Iterable[JudgeRequest]) -> None:
    """Every generation_key must name a stored generation (the table's foreign key): fail before any request."""
    wanted = {r.generation_key for r in requests if r.generation_key is not None}
    missing = sorted(wanted - store.existing_keys(wanted))
    if missing:
        raise ValueError(f"{len(missing)} judge request(s) name generations not in the store "
                         f"{store.path}, e.g. {missing[0]!r}")
