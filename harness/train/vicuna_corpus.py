"""Tiny Vicuna's pre-training text beyond the world's corpus: what a real LLM brings from web-scale text.

- `caption_page`: two to four captions of one fresh, undrawn scene in a row, as alt text, titles and captions
  repeat what a page shows: the language of captions, and naming again what the text before named.
- `context_record`: a conversation whose human turn shows content first (a caption of such a scene) and then
  asks about it ("... Write a poem about it.", an A-OKVQA-style question), the skill a frozen LLM needs to
  answer about image tokens placed in front of an instruction.

Text only: scenes are sampled, never drawn.
"""

from __future__ import annotations

import random

# Instructions that point back at content given earlier in the turn ("... Describe it."), by kind of answer.
# None is an evaluation task's instruction (questions use common QA forms, as BLIP-2's "Question: ... Answer:"):
# the tiny Vicuna learns to read what it is shown, not the benchmark.
DEICTIC_INSTRUCTIONS = {
    "description": ("Describe it in detail.", "Tell me about this picture.", "What does this show? Be detailed.",
                    "Please describe what is shown here."),
    "brief": ("Describe it briefly.", "Caption it in one short sentence.", "Sum it up in a few words.",
              "What does it show, in one line?"),
    "poem": ("Write a poem about it.", "Compose a short poem about this picture.", "Turn this into a poem."),
    "recipe": ("Write a recipe inspired by this.", "How would I cook something that looks like this?"),
    "ad": ("Write an advertisement for this.", "Draft a short advert selling what is shown."),
    "meme": ("Why would this be a funny meme?", "Explain the joke in this picture."),
}
# What people add to a request ("... Be thorough.", "... Keep it short." after a brief one): a real LLM answers
# about the same content with or without it. Drawn for half the requests, one to three in a row (brevities: one),
# so that no phrasing, and no length of request, changes what the answer is about.
EMPHASES = ("Be thorough.", "Be as specific as you can.", "Leave nothing out.", "Mention everything you notice.",
            "Include every detail.", "Please be precise.", "Take your time.", "Tell me all of it.",
            "Use complete sentences.", "Be as detailed as you like.", "Cover each part.", "Don't skip anything.")
BREVITIES = ("Keep it short.", "One sentence only.", "Be brief and precise.", "No more than a line.")
CONTEXT_LEADS = ("", "", "Picture: ", "Image: ", "Here is a picture: ", "Look at this: ")
QA_FORMS = ("{} Answer:", "Question: {} Answer:", "{}", "{} Reply in a word.")


def scene_caption(rng: random.Random, scene) -> str:
    """One caption of `scene`: web alt text or a COCO-style sentence, half of them processed as stage 1 does."""
    from harness.train.batches import process_stage1_caption
    from tasks.world.captions import coco_captions, web_caption

    line = web_caption(rng, scene) if rng.random() < 0.5 else rng.choice(coco_captions(rng, scene, 3))
    return process_stage1_caption(line) if rng.random() < 0.5 else line


def complete_caption(rng: random.Random, scene, kind: str) -> str:
    """Every object with its colour, in the order the answer of `kind` names them (a description reads the scene
    by rows, the other answers in the scene's order): content an answer can be read from, nothing to guess."""
    from tasks.world.captions import join, noun_phrase, reading_order

    objects = reading_order(scene) if kind == "description" else list(scene.objects)
    return join([noun_phrase(rng, o, colour=1.0, size=0.0) for o in objects])


def context_record(rng: random.Random, scene=None, kind: str | None = None, complete: bool = False,
                   description_share: float | None = None) -> str:
    """A conversation whose human turn first shows content (a caption of a fresh, undrawn scene) and then asks
    about it: a description (detailed or in one sentence), poem, recipe, advert or meme explanation of that
    scene, or a question about it answered in a word. `complete`: the content names every object with its colour
    in the order the answer names them (`complete_caption`; questions keep a plain caption); `description_share`:
    that share of records asks for a detailed description, the rest as without it. Real LLM pre-training is full
    of "<text>. Summarise this."; this is that skill in the world's language, the one a frozen LLM needs to answer
    about the image tokens in front of an instruction."""
    from tasks.world.captions import coco_captions
    from tasks.world.corpus import respond
    from tasks.world.questions import aokvqa_question
    from tasks.world.scenes import sample_scene

    scene = scene or sample_scene(rng, 0)
    if kind is None and description_share is not None and rng.random() < description_share:
        kind = "description"
    kind = kind or rng.choice((*DEICTIC_INSTRUCTIONS, "description", "question", "question"))
    while kind == "ad" and scene.count("person"):  # adverts sell things, not people
        scene = sample_scene(rng, 0)
    caption = complete_caption(rng, scene, kind) if complete and kind != "question" else scene_caption(rng, scene)
    content = rng.choice(CONTEXT_LEADS) + caption
    if kind == "question":
        qa = aokvqa_question(rng, scene)
        instruction, answer = rng.choice(QA_FORMS).format(qa["question"]), qa["choices"][qa["correct_choice_idx"]]
        if rng.random() < 0.3:
            answer = f"{answer}. {qa['rationales'][0]}"
    else:
        instruction = rng.choice(DEICTIC_INSTRUCTIONS[kind])
        if kind == "brief":  # one COCO-style sentence
            answer = rng.choice(coco_captions(rng, scene, 3))
            if rng.random() < 0.5:
                instruction = f"{instruction} {rng.choice(BREVITIES)}"
        else:
            answer = respond(kind, rng, scene)
            if rng.random() < 0.5:
                instruction = " ".join((instruction, *rng.sample(EMPHASES, rng.randint(1, 3))))
    return f"###Human: {content}{rng.choice((' ', chr(10), '. '))}{instruction} ###Assistant: {answer}"


def caption_page(rng: random.Random, scene=None) -> str:
    """Web text about one scene, never drawn: two to four captions of it in a row (alt text, title, caption),
    some processed the way stage 1 processes its captions. A real LLM brings this from web-scale pre-training:
    the language of captions, and the habit of naming again what the text before it named."""
    from tasks.world.scenes import sample_scene

    scene = scene or sample_scene(rng, 0)
    return "\n".join(scene_caption(rng, scene) for _ in range(rng.randint(2, 4)))


def context_reading(llm, tokenizer, n: int = 120, seed: int = 0) -> dict[str, float]:
    """How well a language model reads content written before an instruction, teacher-forced and text only.

    Prompts are the corpus's own description requests about two objects of different categories and colours
    ("###Human: Describe a picture of a blue dog and a red cat in detail. ###Assistant: The image shows two
    objects ... there is a small"). `colour_from_context`: the share of prompts whose most likely next colour
    (of the world's six) is one of the two named (chance 1/3). `category_bound`: with one named colour written
    next, the share whose most likely category of the two named is the one that colour belongs to (chance 1/2).
    A frozen LLM that scores at chance here names one category and repeats it whatever the image tokens carry."""
    import torch

    from tasks.world.vocab import CATEGORIES, COLOURS

    def first_token(word: str) -> int:
        return tokenizer(" " + word, add_special_tokens=False).input_ids[0]

    categories = [c for c in CATEGORIES if c.name != "person"]  # people wear colours ("person in red")
    by_token = {first_token(c.name): c.name for c in categories}
    names = sorted(by_token.values())
    colour_ids = {k: first_token(k) for k in COLOURS}
    rng = random.Random(f"context-reading:{seed}")
    prompts, asks = [], []
    for _ in range(n):
        (c1, c2), (k1, k2) = rng.sample(names, 2), rng.sample(sorted(COLOURS), 2)
        size = rng.choice(("small", "large"))
        head = (f"###Human: Describe a picture of a {k1} {c1} and a {k2} {c2} in detail. ###Assistant: The image "
                f"shows two objects on a plain gray background. In the top left corner there is a {size}")
        prompts += [head, f"{head} {k1}"]
        asks.append(((k1, k2), c1, c2))
    rows = [[tokenizer.bos_token_id, *tokenizer(p, add_special_tokens=False).input_ids] for p in prompts]
    length = max(len(r) for r in rows)
    ids = torch.tensor([[tokenizer.pad_token_id] * (length - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (length - len(r)) + [1] * len(r) for r in rows])
    with torch.no_grad():
        logits = llm(input_ids=ids, attention_mask=mask).logits[:, -1].float()
    colour_hits = bound_hits = 0
    for i, (given, c1, c2) in enumerate(asks):
        colour_row, category_row = logits[2 * i], logits[2 * i + 1]
        colour_hits += max(colour_ids, key=lambda k: colour_row[colour_ids[k]]) in given
        ids1, ids2 = first_token(c1), first_token(c2)
        bound_hits += bool(category_row[ids1] > category_row[ids2])
    return {"colour_from_context": colour_hits / n, "category_bound": bound_hits / n, "prompts": n}
