"""How a MiniGPT-4 reads the objects of a picture from its image tokens: teacher-forced category slots.

Table 2's coverage needs a description that names every object of a picture. `image_reading` measures, in a few
seconds, the two steps that takes. Fresh world scenes (never the world's files) with two or more objects, the
first two (in the order a detailed description names them) of different categories, are put to the model with
the coverage task's prompt, and the answer is written for it up to a category:

    ... ###Assistant: The image shows two objects on a plain gray background. In the top left corner there is
    a small red |dog|. In the bottom right corner there is a large blue |cat|

At each |slot| the model's most likely category (of the world's categories, by first token) is read off:

- `first_object`: the first object's category comes first (chance 1/number of categories);
- `second_object`: with the first object named correctly before it, the second object's category comes first;
- `second_repeats_first`: the model names the first object's category again instead (the failure that keeps a
  description at one category however many objects the picture has).

`context_reading` (in `vicuna_corpus`) is the text-only counterpart for the LLM alone.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import torch

from tasks.world.captions import reading_order, region_phrase
from tasks.world.scenes import sample_scene, scene_image
from tasks.world.vocab import CATEGORIES, NUMBER_WORDS

DESCRIBE = "Describe this image in detail."  # the coverage task's prompt
# prompts and images -> (B, vocabulary) logits of the token after each prompt (the prompt holds <ImageHere>)
NextLogits = Callable[[Sequence[str], Sequence], torch.Tensor]


def reading_scenes(n: int, seed: int = 0) -> list[tuple]:
    """`n` (scene, RGB image) pairs for the probe, drawn by the world's generator from their own stream."""
    rng = random.Random(f"mgbench-zoo:{seed}:image-reading")
    out = []
    while len(out) < n:
        scene = sample_scene(rng, 0)
        objects = reading_order(scene)
        if len(objects) >= 2 and objects[0].name != objects[1].name and "person" not in (o.name for o in objects[:2]):
            out.append((scene, scene_image(scene)))
    return out


def slot_prompts(scene) -> tuple[str, str]:
    """The answer written up to the first object's category, and on to the second's."""
    from model_zoo.minigpt4 import conversation_v0

    first, second = reading_order(scene)[:2]

    def there_is(obj) -> str:
        place = region_phrase(scene, obj)
        return f"{place[0].upper()}{place[1:]} there is a {obj.size} {obj.colour}"

    count = f"{NUMBER_WORDS[len(scene.objects)]} objects"
    head = f"{conversation_v0(DESCRIBE)} The image shows {count} on a plain gray background. {there_is(first)}"
    return head, f"{head} {first.name}. {there_is(second)}"


def image_reading(next_logits: NextLogits, tokenizer, n: int = 60, seed: int = 0) -> dict[str, float]:
    """The probe described above, on `n` scenes; `next_logits` runs the model (see `minigpt4_next_logits`)."""

    def first_token(word: str) -> int:
        return tokenizer(" " + word, add_special_tokens=False).input_ids[0]

    by_token: dict[int, str] = {}
    for c in CATEGORIES:
        if c.name != "person":
            by_token.setdefault(first_token(c.name), c.name)
    tokens = torch.tensor(sorted(by_token))
    pairs = reading_scenes(n, seed)
    prompts, images = [], []
    for scene, image in pairs:
        prompts += slot_prompts(scene)
        images += [image, image]
    logits = next_logits(prompts, images)[:, tokens]
    named = [by_token[int(tokens[i])] for i in logits.argmax(-1)]
    first = second = repeats = 0
    for k, (scene, _) in enumerate(pairs):
        a, b = reading_order(scene)[:2]
        first += named[2 * k] == a.name
        second += named[2 * k + 1] == b.name
        repeats += named[2 * k + 1] == a.name
    return {"first_object": first / n, "second_object": second / n, "second_repeats_first": repeats / n,
            "scenes": n, "categories": len(by_token)}


def minigpt4_next_logits(adapter, batch_size: int = 32) -> NextLogits:
    """`NextLogits` for a `MiniGPT4Adapter`: its own prompt embedding (image tokens spliced in), left-padded."""
    from harness.types import Request
    from model_zoo.generation import padded_logits

    @torch.no_grad()
    def run(prompts: Sequence[str], images: Sequence) -> torch.Tensor:
        out = []
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start:start + batch_size]
            requests = [Request("image_reading", str(start + i), p) for i, p in enumerate(chunk)]
            rows = adapter.prompt_embeddings(requests, list(images[start:start + batch_size]))
            out.append(padded_logits(adapter.model.llm, rows)[:, -1].float().cpu())
        return torch.cat(out)

    return run
