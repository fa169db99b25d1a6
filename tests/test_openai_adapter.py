"""The OpenAI-compatible adapter, driven through the real `openai` client against a real loopback HTTP server.

No mocks: every test sends HTTP to harness.testing.FakeOpenAIServer on 127.0.0.1, which decodes the images it
receives and answers deterministically, and can be scripted to rate-limit, fail or stall.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from harness.config import ConfigError, RunConfig
from harness.registry import MODELS
from harness.runner import Runner
from harness.store import Store
from harness.testing import FakeOpenAIServer, ReceivedImage
from harness.testing.openai_server import IMAGE_TOKENS, answer, count_tokens
from harness.types import GenerationSettings, ImageRef, Request

pytest.importorskip("openai", reason="the OpenAI adapter needs the openai package")
from model_zoo.openai_vision import OpenAIAuthError, OpenAIVisionAdapter  # noqa: E402

KEY = "sk-loopback-test-0123456789abcdef"
MODEL = "gpt-test-vision"


# ----- fixtures and helpers ------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key comes from the environment; nothing else in it may steer the client away from loopback."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    for name in ("OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_CUSTOM_HEADERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=KEY) as srv:
        yield srv


@pytest.fixture
def make(server: FakeOpenAIServer) -> Iterator[Callable[..., OpenAIVisionAdapter]]:
    """Build adapters pointed at the server, with short timeouts; closed at the end of the test."""
    made: list[OpenAIVisionAdapter] = []

    def build(**options: Any) -> OpenAIVisionAdapter:
        adapter = OpenAIVisionAdapter(**{"model": MODEL, "base_url": server.base_url, "timeout_s": 5.0,
                                         "max_retries": 2, **options})
        made.append(adapter)
        return adapter

    yield build
    for adapter in made:
        adapter.close()


def tag(i: int) -> str:
    """A unique marker in sample i's prompt, for matching rules and requests ("[s-01]" is not in "[s-011]")."""
    return f"[sample-{i:02d}]"


def req(i: int, **settings: Any) -> Request:
    return Request(task="t", sample_id=f"{i:02d}", prompt=f"{tag(i)} What colour is the shape?",
                   image=ImageRef("t", f"{i}.png"), settings=GenerationSettings(**settings))


def picture(i: int) -> Image.Image:
    """A different size and colour per sample, with a shape in the middle (so the mean is not the centre)."""
    colours = [(220, 30, 30), (30, 170, 40), (30, 60, 220), (235, 220, 40), (140, 40, 170), (245, 140, 20)]
    img = Image.new("RGB", (24 + 4 * i, 16 + 2 * i), (128, 128, 128))
    w, h = img.size
    ImageDraw.Draw(img).rectangle((w // 4, h // 4, 3 * w // 4, 3 * h // 4), fill=colours[i % len(colours)])
    return img


def expected_text(request: Request, img: Image.Image) -> str:
    stop = request.settings.stop
    return answer(request.prompt, [ReceivedImage.from_pil(img)], request.settings.max_new_tokens, stop)[0]


def run_config(tmp_path: Path, server: FakeOpenAIServer, task: str = "smoke_colours", **options: Any) -> RunConfig:
    return RunConfig(models=("openai-test",), tasks=(task,), limit=10, store=str(tmp_path / "s.sqlite"),
                     progress=False, model_options={"openai-test": {
                         "model": MODEL, "base_url": server.base_url, "timeout_s": 5, "max_retries": 1, **options}})


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(MODELS._entries, "openai-test", "model_zoo.openai_vision:OpenAIVisionAdapter")


# ----- generate ----------------------------------------------------------------------------------------------
def test_a_batch_returns_text_and_token_counts(server: FakeOpenAIServer, make: Callable[..., OpenAIVisionAdapter]):
    requests = [req(i) for i in range(3)]
    images = [picture(i) for i in range(3)]
    responses = make().generate(requests, images)
    assert len(responses) == 3
    for request, img, resp in zip(requests, images, responses, strict=True):
        assert resp.ok, resp.error
        assert resp.text == expected_text(request, img)
        assert resp.completion_tokens == count_tokens(resp.text) > 0
        assert resp.prompt_tokens == count_tokens(request.prompt) + IMAGE_TOKENS
        assert resp.latency_s > 0
    assert [r.status for r in server.requests] == [200] * 3
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in server.requests)
    assert all(r.body["model"] == MODEL for r in server.requests)


@pytest.mark.parametrize("image_format", ["png", "jpeg"])
def test_the_image_really_arrives(server: FakeOpenAIServer, make: Callable[..., OpenAIVisionAdapter],
                                  image_format: str):
    img = picture(4)
    make(image_format=image_format, image_detail="low").generate([req(4)], [img])
    (seen,) = server.requests
    (received,) = seen.images
    sent = ReceivedImage.from_pil(img)
    assert received.size == img.size == (40, 24)
    assert received.detail == "low"
    assert received.colour == sent.colour == "purple"
    if image_format == "png":  # lossless: every pixel arrived
        assert (received.media_type, received.format) == ("image/png", "PNG")
        assert (received.mean, received.centre) == (sent.mean, sent.centre)
    else:
        assert (received.media_type, received.format) == ("image/jpeg", "JPEG")
        assert all(abs(a - b) <= 3 for a, b in zip(received.mean, sent.mean, strict=True))
    image_part, text_part = seen.body["messages"][-1]["content"]
    assert image_part["type"] == "image_url"
    assert image_part["image_url"]["url"].startswith(f"data:image/{image_format};base64,")
    assert text_part == {"type": "text", "text": req(4).prompt}


def test_a_request_without_image_is_sent_as_plain_text(server: FakeOpenAIServer,
                                                       make: Callable[..., OpenAIVisionAdapter]):
    request = Request(task="t", sample_id="x", prompt="Say hello.")
    (resp,) = make().generate([request], [None])
    assert resp.ok and resp.text == "You said: Say hello."
    (seen,) = server.requests
    assert seen.images == () and seen.body["messages"] == [{"role": "user", "content": "Say hello."}]


def test_settings_and_system_prompt_are_forwarded(server: FakeOpenAIServer,
                                                  make: Callable[..., OpenAIVisionAdapter]):
    adapter = make(system_prompt="Answer with one colour word.")
    greedy = req(0, max_new_tokens=3, stop=("mean", "###"))
    sampled = req(1, do_sample=True, temperature=0.7, top_p=0.9)
    responses = adapter.generate([greedy, sampled], [picture(0), picture(1)])
    assert responses[0].text == expected_text(greedy, picture(0)) == "red image 24x16"  # cut at 3 words
    assert responses[0].completion_tokens == 3
    assert responses[0].prompt_tokens == count_tokens("Answer with one colour word.") + \
        count_tokens(greedy.prompt) + IMAGE_TOKENS
    by_tag = {tag(i): server.requests_for(tag(i))[0].body for i in range(2)}
    first, second = by_tag[tag(0)], by_tag[tag(1)]
    assert first["messages"][0] == {"role": "system", "content": "Answer with one colour word."}
    assert (first["max_tokens"], first["stop"], first["temperature"]) == (3, ["mean", "###"], 0)
    assert "top_p" not in first
    assert (second["temperature"], second["top_p"], second["max_tokens"]) == (0.7, 0.9, 64)
    assert "stop" not in second


def test_max_tokens_param_and_no_temperature(server: FakeOpenAIServer, make: Callable[..., OpenAIVisionAdapter]):
    """Newer OpenAI models want max_completion_tokens and reject a temperature; both can be configured."""
    (resp,) = make(max_tokens_param="max_completion_tokens", temperature=None).generate([req(0, max_new_tokens=2)],
                                                                                       [picture(0)])
    assert resp.completion_tokens == 2
    body = server.requests[0].body
    assert body["max_completion_tokens"] == 2
    assert "max_tokens" not in body and "temperature" not in body


def test_beam_search_is_a_per_sample_error(server: FakeOpenAIServer, make: Callable[..., OpenAIVisionAdapter]):
    beams, plain = make().generate([req(0, num_beams=3), req(1)], [picture(0), picture(1)])
    assert beams.error is not None and "beam" in beams.error
    assert plain.ok
    assert [r.prompt.split()[0] for r in server.requests] == [tag(1)]


def test_batch_order_is_kept_and_concurrency_bounded(server: FakeOpenAIServer,
                                                     make: Callable[..., OpenAIVisionAdapter]):
    n = 8
    for i in range(n):  # the earlier the request, the slower its answer: they finish in reverse order
        server.script(match=tag(i), delay_s=0.04 * (n - i))
    requests = [req(i) for i in range(n)]
    images = [picture(i) for i in range(n)]
    start = time.perf_counter()
    responses = make(max_concurrency=4).generate(requests, images)
    elapsed = time.perf_counter() - start
    assert [r.text for r in responses] == [expected_text(q, img) for q, img in zip(requests, images, strict=True)]
    assert 1 < server.max_in_flight <= 4
    assert elapsed < sum(0.04 * (n - i) for i in range(n))  # it did overlap: faster than one at a time


def test_max_concurrency_one_sends_one_at_a_time(server: FakeOpenAIServer,
                                                 make: Callable[..., OpenAIVisionAdapter]):
    server.delay_s = 0.02
    responses = make(max_concurrency=1).generate([req(i) for i in range(4)], [picture(i) for i in range(4)])
    assert all(r.ok for r in responses)
    assert server.max_in_flight == 1


# ----- failures ----------------------------------------------------------------------------------------------
def test_a_rate_limit_is_retried_after_the_servers_delay(server: FakeOpenAIServer,
                                                         make: Callable[..., OpenAIVisionAdapter]):
    server.script(429, headers={"Retry-After": "0.05"})
    (resp,) = make().generate([req(0)], [picture(0)])
    assert resp.ok and resp.text == expected_text(req(0), picture(0))
    first, second = server.requests
    assert (first.status, second.status) == (429, 200)
    assert second.received_at - first.received_at >= 0.04  # Retry-After honoured
    assert resp.latency_s >= 0.04  # latency covers the whole exchange, retries included


def test_a_persistent_server_error_fails_only_that_sample(server: FakeOpenAIServer,
                                                          make: Callable[..., OpenAIVisionAdapter]):
    server.script(500, match=tag(1), times=None, headers={"retry-after-ms": "10"})
    responses = make(max_retries=2).generate([req(i) for i in range(3)], [picture(i) for i in range(3)])
    assert responses[0].ok and responses[2].ok
    assert responses[1].error is not None
    assert responses[1].error.startswith("InternalServerError") and "500" in responses[1].error
    assert "max_retries=2" in responses[1].error
    assert responses[1].text == ""
    assert [r.status for r in server.requests_for(tag(1))] == [500, 500, 500]  # one try + two retries


def test_a_timeout_fails_only_that_sample(server: FakeOpenAIServer, make: Callable[..., OpenAIVisionAdapter]):
    server.script(match=tag(0), times=None, delay_s=3.0)  # far longer than the client waits
    slow, fast = make(timeout_s=0.3, max_retries=1).generate([req(0), req(1)], [picture(0), picture(1)])
    assert slow.error is not None and slow.error.startswith("APITimeoutError")
    assert fast.ok
    assert len(server.requests_for(tag(0))) == 2  # timeouts are retried too


def test_a_rejected_key_raises_naming_the_env_var(server: FakeOpenAIServer, make: Callable[..., OpenAIVisionAdapter],
                                                  monkeypatch: pytest.MonkeyPatch):
    wrong = "sk-wrong-key-9876543210"
    monkeypatch.setenv("MY_VLM_KEY", wrong)
    adapter = make(api_key_env="MY_VLM_KEY", max_concurrency=2)
    with pytest.raises(OpenAIAuthError, match="MY_VLM_KEY") as info:
        adapter.generate([req(i) for i in range(6)], [picture(i) for i in range(6)])
    assert isinstance(info.value, ConfigError)
    assert "401" in str(info.value) and wrong not in str(info.value)
    sent = len(server.requests)
    assert 1 <= sent <= 2 and all(r.status == 401 for r in server.requests)  # queued ones were never sent
    with pytest.raises(OpenAIAuthError, match="MY_VLM_KEY"):  # and later calls do not try again
        adapter.generate([req(0)], [picture(0)])
    assert len(server.requests) == sent


def test_a_missing_key_is_a_config_error_at_construction(server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIVisionAdapter(model=MODEL, base_url=server.base_url)


def test_bad_options_are_config_errors():
    for options in ({"model": ""}, {"model": MODEL, "image_detail": "ultra"}, {"model": MODEL, "max_concurrency": 0},
                    {"model": MODEL, "image_format": "gif"}, {"model": MODEL, "max_tokens_param": "tokens"}):
        with pytest.raises(ConfigError, match="openai-vision"):
            OpenAIVisionAdapter(**options)


def test_score_choices_is_not_available(make: Callable[..., OpenAIVisionAdapter]):
    with pytest.raises(NotImplementedError, match="log-likelihood"):
        make().score_choices([req(0)], [picture(0)])


# ----- fingerprint -------------------------------------------------------------------------------------------
def test_fingerprint_follows_what_changes_outputs(server: FakeOpenAIServer, make: Callable[..., OpenAIVisionAdapter],
                                                  monkeypatch: pytest.MonkeyPatch):
    base = make().fingerprint()
    monkeypatch.setenv("OTHER_KEY", "sk-another-key-00000000")
    same = make(api_key_env="OTHER_KEY", max_concurrency=1, timeout_s=1.0, max_retries=0,
                max_tokens_param="max_completion_tokens")
    assert same.fingerprint() == base
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)  # the same endpoint, found through the environment
    assert make(base_url=None).fingerprint() == base
    for change in ({"model": "gpt-other"}, {"base_url": "http://127.0.0.1:9/v1"},
                   {"system_prompt": "Be brief."}, {"image_detail": "high"}, {"temperature": 0.5},
                   {"image_format": "jpeg"}):
        assert make(**change).fingerprint() != base, change
    assert server.requests == []  # building adapters and fingerprints sends nothing


# ----- through the runner ------------------------------------------------------------------------------------
def test_end_to_end_through_the_runner(server: FakeOpenAIServer, registered: None, tmp_path: Path):
    server.delay_s = 0.05  # slow enough for the requests of a batch to overlap
    cfg = run_config(tmp_path, server, max_concurrency=4)
    result = Runner(cfg, argv=["mgbench", "run", "--models", "openai-test"]).run()
    pair = result.pair("openai-test", "smoke_colours")
    assert (pair.generated, pair.errors) == (10, 0)
    assert pair.metric("accuracy").value == 1.0  # the server names each shape's colour correctly
    assert len(server.requests) == 10 and 1 < server.max_in_flight <= 4
    with Store(cfg.store) as store:
        rows = list(store.generations(task="smoke_colours"))
        (run,) = store.runs()
    assert len(rows) == 10
    assert all(r.error is None and r.text and r.prompt_tokens > IMAGE_TOKENS and r.completion_tokens for r in rows)
    stored = json.loads(run["config_json"])
    assert stored["model_options"]["openai-test"]["model"] == MODEL
    for path in tmp_path.glob("s.sqlite*"):  # the database and any WAL/SHM file
        assert KEY.encode() not in path.read_bytes(), path

    again = Runner(cfg).run().pair("openai-test", "smoke_colours")  # resume: all stored, nothing re-sent
    assert (again.already_stored, again.generated) == (10, 0)
    assert len(server.requests) == 10


def test_a_likelihood_task_records_per_sample_errors(server: FakeOpenAIServer, registered: None, tmp_path: Path):
    pair = Runner(run_config(tmp_path, server, task="smoke_colours_mc")).run().pair("openai-test", "smoke_colours_mc")
    assert pair.errors == 10
    with Store(str(tmp_path / "s.sqlite")) as store:
        assert all("log-likelihood" in (r.error or "") for r in store.generations())
    assert server.requests == []


def test_a_rejected_key_in_a_run_never_hammers_the_endpoint(server: FakeOpenAIServer, registered: None,
                                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-9876543210")
    cfg = run_config(tmp_path, server, max_concurrency=2)
    with pytest.raises(OpenAIAuthError, match="OPENAI_API_KEY"):  # a config error stops the run
        Runner(cfg).run()
    with Store(cfg.store) as store:
        assert store.count_generations() == 0  # nothing was stored as if it were a sample's fault
        assert [r["status"] for r in store.runs()] == ["failed"]
    assert 1 <= len(server.requests) <= 2  # the first 401s stop all further requests


# ----- the loopback server itself ---------------------------------------------------------------------------
def _post(server: FakeOpenAIServer, body: Any, *, path: str = "/v1/chat/completions",
          key: str | None = KEY) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", data=json.dumps(body).encode(),
                                     headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_server_rejects_what_a_strict_server_would(server: FakeOpenAIServer):
    png = "data:image/png;base64,"
    ok = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    status, body = _post(server, ok)
    assert status == 200 and body["object"] == "chat.completion" and body["usage"]["total_tokens"] > 0
    assert _post(server, ok, key=None)[0] == 401
    assert _post(server, ok, key="sk-wrong")[0] == 401
    assert _post(server, ok, path="/v1/completions")[0] == 404
    bad_bodies = [
        {"messages": ok["messages"]},
        {**ok, "messages": []},
        {**ok, "max_tokens": 0},
        {**ok, "stop": ["a", "b", "c", "d", "e"]},
        {**ok, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]},
        {**ok, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": png + "bm90IGFuIGltYWdl"}}]}]},  # "not an image"
    ]
    for bad in bad_bodies:
        status, body = _post(server, bad)
        assert status == 400 and body["error"]["type"] == "invalid_request_error", bad
