"""A real OpenAI-compatible chat-completions server on 127.0.0.1, for tests: no mocks, no network.

It speaks enough of the API for a client to be exercised end to end over HTTP:

  POST /v1/chat/completions   checks the bearer key (401 otherwise), validates the body the way a strict
                              server would (400 with an OpenAI-style error body), decodes every image data URL
                              with PIL (so a test can prove the pixels arrived) and answers deterministically:
                              for each image, the named colour nearest its centre pixel, its size and mean
                              colour; then the prompt, echoed. `max_tokens` (or `max_completion_tokens`) cuts the
                              answer to that many words and `stop` cuts it at the first stop string; `usage`
                              counts words, plus IMAGE_TOKENS per image. `answer()` computes the same text, so
                              a test can state exactly what it expects.

Failures are scripted with rules, consumed in the order they were added: a one-off answer
(`server.script(429, headers={"Retry-After": "0.05"})`), or an answer for every request whose prompt contains
some text (`server.script(500, match="sample-3", times=None)`); a rule sets a status, headers, a body, a
delay (longer than the client's timeout = a timeout) or the answer's text (`server.script(text="Maybe")`: a
normal completion with that content, cut by `max_tokens` like any answer). A `responder` (a function of the
prompt, given to the constructor or set later) replaces the echo as the default answer, e.g. a judge that
says "Yes" to every prompt. The server records every request it received (thread-safe) and the largest
number it was working on at once, so tests can check retries and bounded concurrency.

    with FakeOpenAIServer(api_key="sk-test") as server:
        client = OpenAI(base_url=server.base_url, api_key="sk-test")
        ...
        assert len(server.requests) == 1
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image, ImageStat, UnidentifiedImageError

CHAT_PATH = "/v1/chat/completions"
IMAGE_TOKENS = 85  # what OpenAI bills a low-detail image; any fixed number would do
# The smoke task's palette plus black, white and grey, so a smoke image's colour is named exactly.
NAMED_COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "grey": (128, 128, 128),
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "yellow": (235, 220, 40),
    "purple": (140, 40, 170),
    "orange": (245, 140, 20),
}
MEDIA_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP", "image/gif": "GIF"}
DATA_URL = re.compile(r"data:(image/[a-z0-9.+-]+);base64,(.*)", re.DOTALL)
ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
               429: "requests"}


# ----- what the server saw ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReceivedImage:
    """An image as the server decoded it from a data URL."""

    size: tuple[int, int]
    mean: tuple[int, int, int]  # rounded mean RGB of the whole image
    centre: tuple[int, int, int]  # RGB of the centre pixel
    media_type: str = ""  # what the data URL said, e.g. "image/png"
    format: str = ""  # what PIL found in the bytes, e.g. "PNG"
    detail: str | None = None

    @classmethod
    def from_pil(cls, img: Image.Image, media_type: str = "", format: str = "",
                 detail: str | None = None) -> ReceivedImage:
        rgb = img.convert("RGB")
        w, h = rgb.size
        mean = tuple(round(v) for v in ImageStat.Stat(rgb).mean)
        centre = rgb.getpixel((w // 2, h // 2))
        return cls(size=(w, h), mean=mean, centre=tuple(centre), media_type=media_type,  # type: ignore[arg-type]
                   format=format, detail=detail)

    @property
    def colour(self) -> str:
        return min(NAMED_COLOURS, key=lambda name: math.dist(self.centre, NAMED_COLOURS[name]))


@dataclass(frozen=True)
class ReceivedRequest:
    """One HTTP request as the server received it, and the status it answered."""

    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # the parsed JSON; None if it did not parse
    status: int
    system: str = ""  # the system messages' text
    prompt: str = ""  # the user messages' text parts, joined by newlines
    images: tuple[ReceivedImage, ...] = ()
    received_at: float = 0.0  # time.monotonic()


@dataclass
class Rule:
    """A scripted answer for requests whose prompt contains `match` (every request when None)."""

    status: int = 200
    match: str | None = None
    times: int | None = 1  # how many requests it answers before it is used up; None: no limit
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # None: the normal completion (200) or an OpenAI-style error body (otherwise)
    delay_s: float | None = None  # None: the server's default delay
    used: int = 0
    text: str | None = None  # a 200 completion with this content (None: the server's default answer)

    def applies_to(self, prompt: str) -> bool:
        return (self.times is None or self.used < self.times) and (self.match is None or self.match in prompt)


# ----- the deterministic model -------------------------------------------------------------------------------
def answer(prompt: str, images: Sequence[ReceivedImage], max_tokens: int | None = None,
           stop: Sequence[str] = ()) -> tuple[str, str]:
    """(text, finish_reason) the server gives for this prompt and these images."""
    parts = [f"{img.colour} image {img.size[0]}x{img.size[1]} mean {img.mean[0]},{img.mean[1]},{img.mean[2]}."
             for img in images]
    text = " ".join([*parts, f"You said: {prompt}"])
    finish = "stop"
    cuts = [text.find(s) for s in stop if s and s in text]
    if cuts:
        text = text[: min(cuts)]
    words = text.split()
    if max_tokens is not None and len(words) > max_tokens:
        words, finish = words[:max_tokens], "length"
    return " ".join(words), finish


def _cut(text: str, max_tokens: int | None, stop: Sequence[str]) -> tuple[str, str]:
    """A scripted answer cut the way `answer()` cuts its own; text within the limits is returned unchanged."""
    cuts = [text.find(s) for s in stop if s and s in text]
    if cuts:
        text = text[: min(cuts)]
    words = text.split()
    if max_tokens is not None and len(words) > max_tokens:
        return " ".join(words[:max_tokens]), "length"
    return text, "stop"


def count_tokens(text: str) -> int:
    """The server's tokeniser: whitespace-separated words."""
    return len(text.split())


# ----- the server ---------------------------------------------------------------------------------------------
class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


class FakeOpenAIServer:
    """A ThreadingHTTPServer in a background thread; see the module docstring. `api_key=None`: no auth check."""

    def __init__(self, api_key: str | None = "sk-loopback-test", *, delay_s: float = 0.0, host: str = "127.0.0.1",
                 responder: Callable[[str], str] | None = None):
        self.api_key = api_key
        self.delay_s = delay_s  # default delay before every answer: makes concurrency observable
        self.responder = responder  # prompt -> answer text, instead of the echo of `answer()`
        self.host = host
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._requests: list[ReceivedRequest] = []
        self._in_flight = 0
        self._max_in_flight = 0
        self._completions = 0
        self._stopping = threading.Event()  # wakes delayed answers, so stop() never waits them out
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> FakeOpenAIServer:
        if self._httpd is not None:
            raise RuntimeError("server already started")
        httpd = _HTTPServer((self.host, 0), _Handler)
        httpd.fake = self
        self._httpd = httpd
        self._stopping.clear()
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fake-openai-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # ----- scripting and inspection -------------------------------------------------------------------
    def script(self, status: int = 200, *, match: str | None = None, times: int | None = 1,
               headers: dict[str, str] | None = None, body: Any = None, delay_s: float | None = None,
               text: str | None = None) -> Rule:
        """Add a rule (see `Rule`); rules are tried in the order they were added."""
        rule = Rule(status=status, match=match, times=times, headers=dict(headers or {}), body=body,
                    delay_s=delay_s, text=text)
        with self._lock:
            self._rules.append(rule)
        return rule

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_for(self, text: str) -> list[ReceivedRequest]:
        """The received requests whose prompt contains `text`."""
        return [r for r in self.requests if text in r.prompt]

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._max_in_flight

    def reset(self) -> None:
        """Forget rules, recorded requests and the in-flight maximum."""
        with self._lock:
            self._rules.clear()
            self._requests.clear()
            self._max_in_flight = self._in_flight

    # ----- handling a request (called on the connection's thread) -------------------------------------
    def _handle(self, h: _Handler) -> None:
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            status, headers, payload, delay = self._decide(h, raw)
            if delay > 0:
                self._stopping.wait(delay)
        finally:
            # Counted out before the answer is written: once a client has its answer it may send the next
            # request at once, and that one must not be counted while this one still is.
            with self._lock:
                self._in_flight -= 1
        _send(h, status, headers, payload)

    def _decide(self, h: _Handler, raw: bytes) -> tuple[int, dict[str, str], Any, float]:
        """(status, extra headers, JSON payload, delay) for one request; records the request."""
        path = h.path.split("?", 1)[0]
        headers = {k.lower(): v for k, v in h.headers.items()}
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None

        def reply(status: int, payload: Any, *, extra: dict[str, str] | None = None, delay: float = 0.0,
                  system: str = "", prompt: str = "", images: tuple[ReceivedImage, ...] = ()) -> tuple:
            with self._lock:
                self._requests.append(ReceivedRequest(path=path, headers=headers, body=body, status=status,
                                                      system=system, prompt=prompt, images=images,
                                                      received_at=time.monotonic()))
            return status, extra or {}, payload, delay

        if h.command != "POST" or path != CHAT_PATH:
            return reply(404, _error(404, f"Unknown request URL: {h.command} {path}", code="unknown_url"))
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            return reply(401, _error(401, "Incorrect API key provided.", code="invalid_api_key"))
        if body is None:
            return reply(400, _error(400, "We could not parse the JSON body of your request."))
        try:
            system, prompt, images = _parse(body)
        except BadRequest as exc:
            return reply(400, _error(400, str(exc), param=exc.param))
        with self._lock:
            rule = next((r for r in self._rules if r.applies_to(prompt)), None)
            if rule is not None:
                rule.used += 1
        status = 200 if rule is None else rule.status
        delay = self.delay_s if rule is None or rule.delay_s is None else rule.delay_s
        if rule is not None and rule.body is not None:
            payload = rule.body
        elif status == 200:
            payload = self._completion(body, system, prompt, images, None if rule is None else rule.text)
        else:
            payload = _error(status, f"scripted error {status}")
        return reply(status, payload, extra=None if rule is None else rule.headers, delay=delay,
                     system=system, prompt=prompt, images=images)

    def _completion(self, body: dict[str, Any], system: str, prompt: str,
                    images: tuple[ReceivedImage, ...], scripted: str | None = None) -> dict[str, Any]:
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        stop = body.get("stop") or ()
        stops = [stop] if isinstance(stop, str) else stop
        if scripted is None and self.responder is not None:
            scripted = self.responder(prompt)
        if scripted is None:
            text, finish = answer(prompt, images, max_tokens, stops)
        else:
            text, finish = _cut(scripted, max_tokens, stops)
        prompt_tokens = count_tokens(system) + count_tokens(prompt) + IMAGE_TOKENS * len(images)
        completion_tokens = count_tokens(text)
        with self._lock:
            self._completions += 1
            number = self._completions
        return {
            "id": f"chatcmpl-loopback-{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": "fp_loopback",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": finish,
            }],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }


# ----- request validation ----------------------------------------------------------------------------------
def _parse(body: Any) -> tuple[str, str, tuple[ReceivedImage, ...]]:
    """(system text, user text, images) of a chat-completions body; BadRequest where a strict server would 400."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise BadRequest("you must provide a model parameter", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array", "messages")
    system: list[str] = []
    user: list[str] = []
    images: list[ReceivedImage] = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("system", "developer", "user", "assistant"):
            raise BadRequest(f"messages[{i}]: invalid role {role!r}", f"messages[{i}].role")
        content = message.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(parts, list) or not parts:
            raise BadRequest(f"messages[{i}].content must be a string or a non-empty array",
                             f"messages[{i}].content")
        for j, part in enumerate(parts):
            where = f"messages[{i}].content[{j}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                if role == "user":
                    user.append(part["text"])
                elif role in ("system", "developer"):
                    system.append(part["text"])
                # an assistant turn is context, not the question: not echoed
            elif kind == "image_url" and role == "user":
                images.append(_decode_image(part.get("image_url"), where))
            else:
                raise BadRequest(f"{where}: invalid content part {kind!r} for role {role!r}", where)
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise BadRequest(f"'{name}' must be an integer >= 1, got {value!r}", name)
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
        isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop)
    ):
        raise BadRequest("'stop' must be a string or an array of at most 4 strings", "stop")
    for name, high in (("temperature", 2.0), ("top_p", 1.0)):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0 <= value <= high):
            raise BadRequest(f"'{name}' must be a number in [0, {high}], got {value!r}", name)
    return "\n".join(system), "\n".join(user), tuple(images)


def _decode_image(image_url: Any, where: str) -> ReceivedImage:
    if not isinstance(image_url, dict) or not isinstance(image_url.get("url"), str):
        raise BadRequest(f"{where}: image_url must be an object with a 'url'", where)
    match = DATA_URL.fullmatch(image_url["url"])
    if match is None:  # a real server would fetch http(s) URLs; this one has no network on purpose
        raise BadRequest(f"{where}: only base64 data: URLs are supported here", where)
    media_type, encoded = match.groups()
    detail = image_url.get("detail")
    if detail not in (None, "auto", "low", "high"):
        raise BadRequest(f"{where}: invalid detail {detail!r}", where)
    try:
        data = base64.b64decode(encoded, validate=True)
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            found = img.format or ""
            rgb = img.convert("RGB")
    except (binascii.Error, UnidentifiedImageError, OSError, ValueError) as exc:
        raise BadRequest(f"{where}: the image could not be decoded: {exc}", where) from exc
    if MEDIA_TYPES.get(media_type) != found:
        raise BadRequest(f"{where}: the data URL says {media_type} but the bytes are {found or 'unknown'}", where)
    return ReceivedImage.from_pil(rgb, media_type=media_type, format=found, detail=detail)


def _error(status: int, message: str, *, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": ERROR_TYPES.get(status, "server_error"), "param": param,
                      "code": code}}


# ----- HTTP plumbing ---------------------------------------------------------------------------------------
class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for idle keep-alive connections to time out
    request_queue_size = 128  # listen backlog: a client opening 32 connections at once must not see SYNs dropped
    fake: FakeOpenAIServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real API: clients pool their connections
    timeout = 30  # an idle keep-alive connection frees its thread after this long
    disable_nagle_algorithm = True  # TCP_NODELAY, like real servers: no 40 ms delayed-ACK stall per answer
    server: _HTTPServer

    def do_POST(self) -> None:  # noqa: N802 (the name http.server dispatches to)
        self.server.fake._handle(self)

    def do_GET(self) -> None:  # noqa: N802
        self.server.fake._handle(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests read server.requests instead


def _send(h: _Handler, status: int, headers: dict[str, str], payload: Any) -> None:
    data = json.dumps(payload).encode("utf-8")
    try:
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout): nothing to tell
        h.close_connection = True
