"""Judges: the yes/no rule, the cached runner, the OpenAI judge against a REAL loopback HTTP server (scripted to
answer verbosely, badly, slowly or not at all), the offline rule judge and the replay judge. No mocks."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.judges import (
    ERROR,
    NOT_JUDGED,
    Budget,
    Judge,
    JudgeAuthError,
    JudgeRequest,
    Verdict,
    cached_verdicts,
    coverage_prompt,
    fixup_prompt,
    judgment_key,
    make_judge,
    parse_yes_no,
    run_judge,
    score_context_judge,
)
from harness.judges.prompts import parse_coverage_prompt, parse_fixup_prompt, prompt_sha256
from harness.judges.replay_judge import ReplayJudge
from harness.judges.rule_judge import RuleJudge, covers
from harness.store import GenerationRow, Store
from harness.testing import FakeOpenAIServer
from harness.testing.openai_server import count_tokens

pytest.importorskip("openai", reason="the OpenAI judge needs the openai package")
from harness.judges.openai_judge import OpenAIJudge  # noqa: E402

KEY = "sk-judge-loopback-0123456789abcdef"
MODEL = "gpt-judge-test"
PAPER_TABLE2 = ("There is one image caption1 'A dog.', and there is another image caption2 'A puppy.'. Does image "
                "caption2 cover all the objects and visual relations shown in image caption1? Only answer yes or "
                "no without any explanation.")


# ----- fixtures and helpers ------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    for name in ("OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_CUSTOM_HEADERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def tag(i: int) -> str:
    return f"[item-{i:02d}]"


def prompt(i: int) -> str:
    """A coverage prompt the loopback judge answers "Yes" for even i, "No" for odd i."""
    return coverage_prompt(f"A dog {tag(i)}", "a puppy" if i % 2 == 0 else "a cat")


def yes_no_responder(text: str) -> str:
    captions = parse_coverage_prompt(text)
    return "Yes" if captions and covers(*captions) else "No"


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=KEY, responder=yes_no_responder) as srv:
        yield srv


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "s.sqlite") as st:
        yield st


@pytest.fixture
def make(server: FakeOpenAIServer) -> Iterator[Callable[..., OpenAIJudge]]:
    made: list[OpenAIJudge] = []

    def build(**options: Any) -> OpenAIJudge:
        judge = OpenAIJudge(**{"model": MODEL, "base_url": server.base_url, "timeout_s": 5.0, "max_retries": 2,
                               **options})
        made.append(judge)
        return judge

    yield build
    for judge in made:
        judge.close()


def reqs(n: int) -> list[JudgeRequest]:
    return [JudgeRequest(prompt(i)) for i in range(n)]


def rows(store: Store) -> list[dict[str, Any]]:
    return [dict(r) for r in store.conn.execute("SELECT * FROM judgments ORDER BY prompt")]


def add_generation(store: Store, key: str) -> None:
    run_id = store.start_run(config={}, config_hash="h", seed=0, argv=["t"], provenance={
        "git_sha": None, "package_version": "0", "host": "h"}, run_id=f"run-{key}")
    store.write_generations([GenerationRow(key=key, model="m", model_fingerprint="fp", task="t", sample_id=key,
                                           request_json="{}", text="a dog", prompt_tokens=1, completion_tokens=2,
                                           latency_s=0.0, choice_logprobs=None, error=None, run_id=run_id, rank=0)])


class ScriptedJudge(Judge):
    """An in-process judge answering "Yes"; raises `crash` on the call numbered `crash_at` (to simulate a crash)."""

    name, version = "scripted", "1"

    def __init__(self, crash_at: int | None = None, crash: BaseException | None = None):
        self.calls, self.crash_at, self.crash = 0, crash_at, crash

    def judge_one(self, request: JudgeRequest) -> Verdict:
        self.calls += 1
        if self.calls == self.crash_at:
            raise self.crash  # type: ignore[misc]
        return Verdict("yes", raw_text="Yes", prompt_tokens=10, completion_tokens=1)


class Crash(BaseException):
    """Stands for the process dying (not an Exception: nothing may catch it as a per-prompt failure)."""


# ----- the parsing rule and the prompts ------------------------------------------------------------------
@pytest.mark.parametrize(("text", "verdict", "verbose"), [
    ("Yes", "yes", False), ("yes.", "yes", False), ("No", "no", False), ("NO!", "no", False),
    ("**Yes**", "yes", False), ('"No."', "no", False), ("  yes \n", "yes", False),
    ("Yes, caption2 covers every object.", "yes", True), ("No. It misses the dog.", "no", True),
    ("Yes\nBecause...", "yes", True), ("No - the cat is missing", "no", True),
    ("Maybe", "unparseable", False), ("", "unparseable", False), (None, "unparseable", False),
    ("Yes and no", "unparseable", False), ("Yes/No", "unparseable", False), ("Yes because", "unparseable", False),
    ("Answer: yes", "unparseable", False), ("Yeah", "unparseable", False), ("Nope", "unparseable", False),
    ("I think yes.", "unparseable", False),
])
def test_the_yes_no_rule(text: str | None, verdict: str, verbose: bool):
    assert parse_yes_no(text) == (verdict, verbose)


def test_prompts_are_the_papers_word_for_word():
    assert coverage_prompt(" A dog. ", "A puppy.") == PAPER_TABLE2
    tricky = ("The dog's ball, and there is another image caption2 'x'", "A cat's toy {caption1}")
    assert parse_coverage_prompt(coverage_prompt(*tricky)) == tricky
    assert parse_coverage_prompt("Is this a dog?") is None
    fix = fixup_prompt("A dog. A dog.")
    assert fix.startswith("Fix the error in the given paragraph. Remove any repeating sentences, meanless characters")
    assert fix.endswith("if it is already correct without explanation.\n\nA dog. A dog.")
    assert parse_fixup_prompt(fix) == "A dog. A dog." and parse_fixup_prompt(PAPER_TABLE2) is None


# ----- the OpenAI judge through the cache ----------------------------------------------------------------
def test_a_run_judges_and_stores_every_verdict_with_its_raw_text(server: FakeOpenAIServer, store: Store,
                                                                  make: Callable[..., OpenAIJudge]):
    judge = make()
    report = run_judge(judge, store, reqs(6), run_id=None)
    assert (report.requested, report.cached, report.not_judged) == (6, 0, 0)
    assert report.counts == {"no": 3, "yes": 3} and report.complete and report.stop_reason is None
    assert [v.verdict for v in report.verdicts] == ["yes", "no"] * 3
    body = server.requests[0].body
    assert body["temperature"] == 0 and body["max_tokens"] == 16 and body["messages"][0]["content"] in (
        prompt(i) for i in range(6))
    stored = rows(store)
    assert {r["raw_text"] for r in stored} == {"Yes", "No"} and all(r["judge"] == f"openai:{MODEL}" for r in stored)
    expected_prompt_tokens = sum(count_tokens(prompt(i)) for i in range(6))
    assert sum(r["prompt_tokens"] for r in stored) == report.prompt_tokens == expected_prompt_tokens
    assert report.completion_tokens == 6
    assert {r["key"] for r in stored} == {judgment_key(judge.name, judge.version, prompt(i)) for i in range(6)}


def test_verbose_malformed_and_empty_answers_are_counted_apart(server: FakeOpenAIServer, store: Store,
                                                               make: Callable[..., OpenAIJudge]):
    server.script(match=tag(0), text="Yes, caption2 covers the dog.")
    server.script(match=tag(1), text="Maybe")
    server.script(match=tag(2), text="")
    null_content = {"id": "x", "object": "chat.completion", "created": 0, "model": MODEL, "choices": [{
        "index": 0, "message": {"role": "assistant", "content": None}, "finish_reason": "stop"}]}
    server.script(match=tag(3), body=null_content)
    report = run_judge(make(), store, reqs(5))
    assert report.counts == {"unparseable": 3, "yes": 2} and report.verbose == 1
    assert [v.verdict for v in report.verdicts] == ["yes", "unparseable", "unparseable", "unparseable", "yes"]
    assert report.verdicts[0].raw_text == "Yes, caption2 covers the dog." and report.verdicts[0].verbose
    # A re-run answers all five from the cache, verbose flag included, and "unparseable" is never a "no".
    server.reset()
    again = run_judge(make(), store, reqs(5))
    assert again.requested == 0 and again.counts == report.counts and again.verbose == 1
    assert "no" not in again.counts


def test_rate_limits_server_errors_and_timeouts_are_retried_then_counted(server: FakeOpenAIServer, store: Store,
                                                                         make: Callable[..., OpenAIJudge]):
    server.script(429, match=tag(0), headers={"Retry-After": "0.05"})
    server.script(500, match=tag(1), times=None, headers={"retry-after-ms": "10"})
    server.script(match=tag(2), times=None, delay_s=3.0)  # far longer than the client waits
    judge = make(timeout_s=0.4, max_retries=1)
    report = run_judge(judge, store, reqs(4))
    assert [r.status for r in server.requests_for(tag(0))] == [429, 200]
    assert len(server.requests_for(tag(1))) == 2 and len(server.requests_for(tag(2))) == 2
    assert report.counts == {"error": 2, "no": 1, "yes": 1} and not report.complete
    assert "InternalServerError" in report.verdicts[1].error and "max_retries=1" in report.verdicts[1].error
    assert "Timeout" in report.verdicts[2].error
    errors = [r for r in rows(store) if r["verdict"] == ERROR]
    assert len(errors) == 2 and all("max_retries" in r["raw_text"] for r in errors)
    # Errors are not answers: a re-run (endpoint healed) asks exactly those two again and stores their verdicts.
    server.reset()
    again = run_judge(judge, store, reqs(4))
    assert (again.requested, again.cached) == (2, 2) and again.counts == {"no": 2, "yes": 2} and again.complete
    assert len(server.requests) == 2 and not [r for r in rows(store) if r["verdict"] == ERROR]


def test_duplicate_prompts_are_one_request_and_counted_once(server: FakeOpenAIServer, store: Store,
                                                            make: Callable[..., OpenAIJudge]):
    requests = [JudgeRequest(prompt(i % 3)) for i in range(9)]
    report = run_judge(make(max_concurrency=4), store, requests)
    assert len(server.requests) == 3 and report.requested == 3
    assert (report.requests, report.unique) == (9, 3) and sum(report.counts.values()) == 3
    assert [v.verdict for v in report.verdicts] == ["yes", "no", "yes"] * 3
    assert len(rows(store)) == 3


def test_a_rerun_makes_no_requests_and_gives_the_same_verdicts(server: FakeOpenAIServer, store: Store,
                                                               make: Callable[..., OpenAIJudge]):
    server.script(match=tag(3), text="No, the dog is missing.")
    first = run_judge(make(), store, reqs(8))
    server.reset()
    second = run_judge(make(max_concurrency=1), store, list(reversed(reqs(8))))  # other settings, other order
    assert server.requests == [] and (second.requested, second.cached) == (0, 8)
    assert [(v.verdict, v.raw_text, v.verbose) for v in reversed(second.verdicts)] == [
        (v.verdict, v.raw_text, v.verbose) for v in first.verdicts]
    assert all(v.cached for v in second.verdicts) and second.prompt_tokens == 0
    assert cached_verdicts(make(), store, reqs(9))[-1] is None  # never asked: not in the cache


def test_a_judge_with_other_settings_does_not_reuse_the_cache(server: FakeOpenAIServer, store: Store,
                                                              make: Callable[..., OpenAIJudge]):
    run_judge(make(), store, reqs(2))
    run_judge(make(max_tokens=4), store, reqs(2))
    assert len(server.requests) == 4 and len(rows(store)) == 4


def test_a_crash_loses_nothing_already_answered(store: Store):
    with pytest.raises(Crash):
        run_judge(ScriptedJudge(crash_at=4, crash=Crash()), store, reqs(6))
    assert len(rows(store)) == 3  # written one by one, as they came
    judge = ScriptedJudge()
    report = run_judge(judge, store, reqs(6))
    assert judge.calls == 3 and (report.cached, report.requested) == (3, 3)


def test_a_run_wide_error_stops_issuing_keeps_what_arrived_and_raises(store: Store):
    judge = ScriptedJudge(crash_at=3, crash=JudgeAuthError("key rejected"))
    with pytest.raises(JudgeAuthError, match="key rejected"):
        run_judge(judge, store, reqs(6))
    assert judge.calls == 3 and len(rows(store)) == 2


def test_the_request_budget_stops_issuing_and_reports_the_rest(server: FakeOpenAIServer, store: Store,
                                                               make: Callable[..., OpenAIJudge]):
    report = run_judge(make(max_concurrency=3), store, reqs(10), budget=Budget(max_requests=4))
    assert len(server.requests) == 4 and report.requested == 4 and report.not_judged == 6
    assert "request budget" in report.stop_reason and not report.complete
    assert sum(report.counts.values()) == 4 and len(rows(store)) == 4
    assert sum(v.verdict == NOT_JUDGED for v in report.verdicts) == 6  # un-judged, never "no"
    rest = run_judge(make(), store, reqs(10))
    assert (rest.cached, rest.requested) == (4, 6) and rest.complete


def test_the_token_budget_stops_issuing(server: FakeOpenAIServer, store: Store, make: Callable[..., OpenAIJudge]):
    per_request = count_tokens(prompt(0)) + 1  # prompt words + a one-word answer
    report = run_judge(make(max_concurrency=1), store, reqs(10), budget=Budget(max_tokens=2 * per_request + 1))
    assert report.requested == 3 and len(server.requests) == 3  # checked before each call: the third overshoots
    assert report.prompt_tokens + report.completion_tokens == 3 * per_request and "token budget" in report.stop_reason


def test_concurrency_is_bounded(server: FakeOpenAIServer, store: Store, make: Callable[..., OpenAIJudge]):
    server.delay_s = 0.05
    run_judge(make(max_concurrency=3), store, reqs(12))
    assert 2 <= server.max_in_flight <= 3


# ----- the key never leaves the environment --------------------------------------------------------------
def test_the_key_is_never_stored_reported_or_raised(server: FakeOpenAIServer, store: Store, tmp_path: Path,
                                                    make: Callable[..., OpenAIJudge]):
    server.script(500, match=tag(0), times=None, body={"error": {"message": f"boom, your key is {KEY}"}},
                  headers={"retry-after-ms": "1"})
    server.script(400, match=tag(1), body={"error": {"message": f"bad request for Bearer {KEY}"}})
    server.script(match=tag(2), text=f"Yes, and your key is {KEY}")
    server.script(400, match=tag(3), body={"error": {"message": "key sk-judge-lo*****cdef is odd"}})
    judge = make(max_retries=1)
    report = run_judge(judge, store, reqs(5))
    assert report.counts["error"] == 3 and "***" in report.verdicts[0].error
    server.script(401, body={"error": {"message": f"Incorrect API key provided: {KEY}"}}, times=None)
    with pytest.raises(JudgeAuthError) as excinfo:
        run_judge(judge, store, [JudgeRequest(prompt(7))])
    assert "OPENAI_API_KEY" in str(excinfo.value) and excinfo.value.__cause__ is None
    seen = len(server.requests)
    with pytest.raises(JudgeAuthError):  # a rejected key is not tried again
        judge.judge_one(JudgeRequest(prompt(8)))
    assert len(server.requests) == seen
    texts = [str(excinfo.value), json.dumps(report.to_dict()), repr(judge), repr(report), str(vars(judge)),
             *(f"{v.error} {v.raw_text}" for v in report.verdicts)]
    for table in [r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]:
        texts += [str(v) for row in store.conn.execute(f"SELECT * FROM {table}") for v in row]
    store.close()
    files = b"".join(p.read_bytes() for p in tmp_path.glob("s.sqlite*"))
    for fragment in (KEY, KEY[3:], KEY[-12:]):
        assert not [t for t in texts if fragment in t] and fragment.encode() not in files
    assert "judge-lo" not in " ".join(texts)  # the masked echo is scrubbed too


def test_a_missing_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ValueError, match="OPENAI_API_KEY is not set"):
        OpenAIJudge(MODEL)


# ----- generation keys, the ScoreContext adapter, the factory --------------------------------------------
def test_generation_keys_must_exist_and_are_recorded(server: FakeOpenAIServer, store: Store,
                                                     make: Callable[..., OpenAIJudge]):
    with pytest.raises(ValueError, match="not in the store"):
        run_judge(make(), store, [JudgeRequest(prompt(0), generation_key="nope")])
    assert server.requests == []
    add_generation(store, "g0")
    run_judge(make(), store, [JudgeRequest(prompt(0), generation_key="g0")])
    assert rows(store)[0]["generation_key"] == "g0"


def test_score_context_judge_and_make_judge(server: FakeOpenAIServer, store: Store):
    judge = make_judge("openai", model=MODEL, base_url=server.base_url)
    assert isinstance(judge, OpenAIJudge) and isinstance(make_judge("rule"), RuleJudge)
    with pytest.raises(ValueError, match="known judges"):
        make_judge("gpt5")
    ask = score_context_judge(judge, store, budget=Budget(max_requests=2))
    verdicts = ask([prompt(0), prompt(1), prompt(0), prompt(2)], [None] * 4)
    assert [v.verdict for v in verdicts] == ["yes", "no", "yes", NOT_JUDGED]
    assert ask.last_report.not_judged == 1
    assert [v.verdict for v in judge.judge(reqs(3))] == ["yes", "no", "yes"]  # the uncached batch call
    judge.close()


# ----- the offline rule judge -----------------------------------------------------------------------------
@pytest.mark.parametrize(("caption1", "caption2", "covered"), [
    ("A dog to the left of a cat.", "A cat to the right of a puppy on a plain background.", True),
    ("A dog to the left of a cat.", "A dog and a cat.", False),  # the relation is missing
    ("A dog to the left of a cat.", "A cat to the left of a dog.", False),  # the relation is reversed
    ("Two hot dogs and a teddy bear.", "A dog and a bear.", False),  # "hot dog" is no dog, "teddy bear" no bear
    ("Two hot dogs and a teddy bear.", "A teddybear beside a hot dog.", True),
    ("A red kitty above a pony.", "There is a horse below a white cat in the picture.", True),
    ("A motor bike next to a man in blue.", "A person in blue is to the right of a motorcycle.", True),
    ("An airplane over a boat.", "A plane and a ship. The plane is under the ship.", False),
    ("A small umbrella on a plain background.", "A large yellow umbrella and a pizza.", True),
    ("A umbrella and a pizza.", "An umbrella.", False),
])
def test_the_rule_judges_coverage(caption1: str, caption2: str, covered: bool):
    verdict = RuleJudge().judge_one(JudgeRequest(coverage_prompt(caption1, caption2)))
    assert verdict.verdict == ("yes" if covered else "no") and verdict.raw_text == ("Yes" if covered else "No")


@pytest.mark.parametrize("paragraph,fixed", [
    ("A dog sits. A dog sits. A cat runs.", "A dog sits. A cat runs."),
    ("Two buses. The red bus is above the red bus. The red bus is above the green bus.",
     "Two buses. The red bus is above the green bus."),
    ("The green bus and the red bus are larger than the green bus and the red bus! A cat.", "A cat."),
    ("A small cat is to the left of a small cat. The cat is next to the dog.", "The cat is next to the dog."),
    ("Three objects. The background is plai", "Three objects."),
    ("The background is plai", "The background is plai"),  # nothing finished to keep instead
    ("A red bus is larger than a red bus", ""),
])
def test_the_rule_judges_fixup(paragraph: str, fixed: str):
    verdict = RuleJudge().judge_one(JudgeRequest(fixup_prompt(paragraph), kind="text"))
    assert verdict.raw_text == fixed


def test_the_rule_judge_is_labelled_and_cached(store: Store):
    judge = RuleJudge()
    requests = [JudgeRequest(coverage_prompt("A dog.", "A puppy.")),
                JudgeRequest(fixup_prompt("A dog sits. A dog sits. A cat runs. A dog sits."), kind="text"),
                JudgeRequest("What is in the picture?")]
    report = run_judge(judge, store, requests)
    assert report.is_proxy and report.label == "offline rule judge (not ChatGPT)" and judge.name == "offline-rule-judge"
    assert [v.verdict for v in report.verdicts] == ["yes", "text", ERROR]
    assert report.verdicts[1].raw_text == "A dog sits. A cat runs."
    assert "answers only the coverage, failure and request-met prompts" in report.verdicts[2].error
    assert run_judge(judge, store, requests[:2]).cached == 2


# ----- the replay judge ---------------------------------------------------------------------------------
def test_the_replay_judge_answers_from_its_file(store: Store, tmp_path: Path):
    path = tmp_path / "verdicts.jsonl"
    lines = [{"prompt": prompt(0), "verdict": "yes", "raw_text": "Yes."},
             {"prompt_sha256": prompt_sha256(prompt(1)), "raw_text": "No, it is a cat."},
             {"prompt": prompt(2), "raw_text": "Perhaps", "prompt_tokens": 40, "completion_tokens": 1},
             {"prompt": prompt(3), "verdict": "text"}]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    judge = ReplayJudge(path)
    report = run_judge(judge, store, reqs(5))
    assert [v.verdict for v in report.verdicts] == ["yes", "no", "unparseable", ERROR, ERROR]
    assert report.verdicts[1].verbose and report.verdicts[2].prompt_tokens == 40
    assert "does not answer a yes_no request" in report.verdicts[3].error
    assert "has no verdict for this prompt" in report.verdicts[4].error and prompt_sha256(prompt(4)) in (
        report.verdicts[4].error)
    assert run_judge(ReplayJudge(path), store, reqs(3)).cached == 3
    path.write_text(path.read_text() + json.dumps({"prompt": prompt(4), "verdict": "no"}) + "\n")
    assert ReplayJudge(path).version != judge.version  # an edited file re-judges


@pytest.mark.parametrize(("line", "message"), [
    ("not json", "not a JSON object"), ('{"verdict": "yes"}', "needs 'prompt'"),
    ('{"prompt": "p"}', "needs 'verdict' or 'raw_text'"), ('{"prompt": "p", "verdict": "maybe"}', "verdict must be"),
    ('{"prompt": "p", "prompt_sha256": "' + "0" * 64 + '", "verdict": "yes"}', "does not match"),
    ('{"prompt": "p", "verdict": "yes"}\n{"prompt": "p", "verdict": "no"}', "second, different answer"),
])
def test_a_bad_replay_file_is_refused_naming_the_line(tmp_path: Path, line: str, message: str):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(ValueError, match=message):
        ReplayJudge(path)


def test_the_store_file_stays_a_plain_judgments_table(store: Store):
    """The cache uses the existing schema: a stored verdict is readable with nothing but SQL."""
    run_judge(RuleJudge(), store, [JudgeRequest(coverage_prompt("A dog.", "A cat."))])
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT verdict, raw_text, judge FROM judgments").fetchall() == [
            ("no", "No", "offline-rule-judge")]


# ----- the proxy prompts for the human-rated tables (our own, labelled as a proxy) --------------------------
def test_rule_judge_failure_and_request_met_verdicts():
    from harness.judges.base import JudgeRequest
    from harness.judges.prompts import failure_prompt, request_met_prompt
    from harness.judges.rule_judge import RuleJudge

    judge = RuleJudge()

    def ask(prompt: str) -> str:
        return judge.judge_one(JudgeRequest(prompt)).verdict

    poem = "Roses sit beside the dog.\nThe sky is wide and blue.\nA cat sleeps in the sun."
    assert ask(failure_prompt("Can you write a beautiful poem about this image?", poem)) == "no"
    assert ask(failure_prompt("Describe this image in detail.", "a dog")) == "yes"  # under 5 words
    assert ask(failure_prompt("Describe this image.", "I'm sorry, I cannot see any image here.")) == "yes"
    assert ask(failure_prompt("Describe.", "A dog sits. A dog sits. A dog sits here.")) == "yes"  # repetition
    incoherent = "There are two cows. The purple cow is to the left of the purple cow. The background is gray."
    assert ask(failure_prompt("Describe this image in detail.", incoherent)) == "yes"  # a thing beside itself
    assert ask(failure_prompt("Describe this image in detail.", incoherent.replace("left of the purple",
                                                                                  "left of the green"))) == "no"
    # the failure prompt also asks whether the request was ignored: a sound caption is no poem and no recipe
    caption = "There is a red dog next to a small cat on the grass."
    assert ask(failure_prompt("Describe this image in detail.", caption)) == "no"
    assert ask(failure_prompt("Can you write a beautiful poem about this image?", caption)) == "yes"
    assert ask(failure_prompt("How should I make something like this?", caption)) == "yes"
    assert ask(request_met_prompt("Can you craft a beautiful poem about this image?", poem)) == "yes"
    assert ask(request_met_prompt("Can you craft a beautiful poem about this image?",
                                  "There is a red dog next to a cat on the grass")) == "no"  # one line
    assert ask(request_met_prompt("How should I make something like this?",
                                  "First gather the ingredients, then mix them and bake for an hour.")) == "yes"
    assert ask(request_met_prompt("Help me draft a professional advertisement for this.",
                                  "This is a picture of a red dog and a small cat.")) == "no"
