"""Helpers for tests of human_eval: a real store with a few generations and images, and a real server process.

`build_store` writes small PNG images and stores one generation per (model, task, sample) through the real
Store API (start_run + write_generations), with request_json as the runner writes it. `RatingServer` runs
`python -m human_eval.cli serve` as a subprocess (waitress on loopback, a free port) and stops it with
SIGINT, waiting for it to exit, so no server outlives a test.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image

from harness.store import GenerationRow, Store
from harness.types import ImageRef, Request, generation_key

PROMPTS = {
    "advanced_meme": "Explain why this meme is funny.",
    "advanced_recipe": "How should I make something like this?",
    "advanced_ad": "Help me draft a professional advertisement for this.",
    "advanced_poem": "Can you craft a beautiful poem about this image?",
    "failure_caption": "Describe this image in detail.",
    "failure_poem": "Can you write a beautiful poem about this image?",
}
PROVENANCE = {"git_sha": None, "package_version": "test", "host": "test"}


def write_png(path: Path, colour: tuple[int, int, int], size: int = 64) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), colour).save(path, format="PNG")
    return path


def build_store(path: Path, images: Path, *, models: Sequence[str] = ("model-a", "model-b"),
                tasks: Sequence[str] = ("advanced_meme", "failure_caption"), samples: int = 3,
                text: Callable[[str, str, int], str] | None = None) -> dict[tuple[str, str, str], str]:
    """A store with models x tasks x samples generations; returns (model, task, sample_id) -> generation key."""
    text = text or (lambda model, task, i: f"{model} answers {task} #{i}")
    keys: dict[tuple[str, str, str], str] = {}
    with Store(path) as store:
        run_id = store.start_run(config={"models": list(models), "tasks": list(tasks)}, config_hash="test",
                                 seed=0, argv=["test"], provenance=PROVENANCE)
        rows = []
        for t, task in enumerate(tasks):
            for i in range(samples):
                sample_id = f"img{i:03d}"
                image = write_png(images / task / f"{sample_id}.png", ((40 * i) % 256, (90 * t) % 256, 128))
                request = Request(task=task, sample_id=sample_id, prompt=PROMPTS.get(task, "Describe this."),
                                  image=ImageRef(source="test", id=f"{task}/{sample_id}", path=str(image)))
                for model in models:
                    key = generation_key(f"fp-{model}", request)
                    keys[(model, task, sample_id)] = key
                    rows.append(GenerationRow(key=key, model=model, model_fingerprint=f"fp-{model}", task=task,
                                              sample_id=sample_id, request_json=request.to_json(),
                                              text=text(model, task, i), prompt_tokens=5, completion_tokens=7,
                                              latency_s=0.01, choice_logprobs=None, error=None, run_id=run_id,
                                              rank=0))
        store.write_generations(rows)
        store.finish_run(run_id)
    return keys


class RatingServer:
    """`with RatingServer(store, campaign) as server: server.url(token)`: a real server subprocess."""

    def __init__(self, store: Path, campaign: str, *, threads: int = 8, nice: int = 0):
        self.args = [sys.executable, "-m", "human_eval.cli", "serve", "--store", str(store), "--campaign", campaign,
                     "--host", "127.0.0.1", "--port", "0", "--threads", str(threads)]
        self.nice = nice
        self.proc: subprocess.Popen[str] | None = None
        self.base = ""
        self.output: list[str] = []

    def __enter__(self) -> RatingServer:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        prefix = ["nice", "-n", str(self.nice)] if self.nice else []
        self.proc = subprocess.Popen([*prefix, *self.args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env, cwd=Path(__file__).resolve().parent.parent)
        assert self.proc.stdout is not None
        lines = []
        for line in self.proc.stdout:  # the first line names the port; waitress binds before it is printed
            lines.append(line)
            match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            if match:
                self.base = f"http://127.0.0.1:{match.group(1)}"
                self.output = lines
                # keep draining the pipe so a chatty server can never block on a full one
                threading.Thread(target=lines.extend, args=(self.proc.stdout,), daemon=True).start()
                return self
        self.__exit__()
        raise RuntimeError("rating server did not start:\n" + "".join(lines))

    def url(self, token: str, suffix: str = "") -> str:
        return f"{self.base}/r/{token}{suffix}"

    def __exit__(self, *exc: object) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
