"""An offline rule judge for the synthetic world: NOT ChatGPT, and labelled so wherever its verdicts appear.

It answers the two prompts of `harness.judges.prompts` and nothing else:

- Table 2's coverage prompt: "Yes" when caption2 names every object of caption1 and states every relation of
  caption1, else "No". Objects are COCO categories, read the way CHAIR reads them (lower case, plurals
  singularised, two-word names such as "hot dog" or "teddy bear" read as one word, synonyms mapped to their
  category by `tasks.world.coco_names.WORD_TO_CATEGORY`, plus "kitty" for cat, a world word CHAIR lacks).
  Relations are the world's phrases ("to the left of", "left of", "right of", "above", "over", "on top of",
  "below", "under", "beneath", "next to", "beside"), each between the nearest object before and after it in
  the same sentence: "a dog left of a cat" and "a cat to the right of a dog" state the same relation, and
  "next to"/"beside" is covered by any left/right/next-to relation of the same two objects. A relation phrase
  without an object on both sides must appear (as the same relation) anywhere in caption2. Colours, sizes and
  counts are not checked. This is enough for the world's templated captions; it is no reader of English.
- Sec. 3.2's fix-up prompt: what a reader of the paragraph alone can fix (`fix_paragraph`): exact repeated
  sentences removed (first occurrence kept), comparisons of a thing with itself ("the red bus is above the red
  bus") removed, and an unfinished last sentence dropped. It never sees the image, as ChatGPT did not.
- Our proxy prompts for the human-rated tables (`failure_prompt`, `request_met_prompt`): an answer is broken
  (`fails`) when it is shorter than 5 words, repeats a sentence, says something incoherent about a thing and
  itself ("the red bus is above the red bus", read as the fix-up reads it), is mostly not letters, or apologises
  instead of answering;
  it meets a request when it is not broken and looks like what was asked (a poem has 3+ lines or sentences,
  a recipe speaks of ingredients or steps, an advertisement sells, a meme explanation says why it is funny).
  The failure prompt asks about both (its examples end with "or ignoring the request"), so its answer is "Yes"
  exactly when the request is not met: a one-line caption given for a poem is a failure.
  These are crude and exist so the offline pipeline has numbers; people rate the real thing.
"""

from __future__ import annotations

import re

from harness.judges.base import ERROR, KIND_TEXT, KIND_YES_NO, Judge, JudgeRequest, Verdict, verdict_from_answer
from harness.judges.prompts import (
    parse_coverage_prompt,
    parse_failure_prompt,
    parse_fixup_prompt,
    parse_request_met_prompt,
)
from tasks.world.coco_names import WORD_TO_CATEGORY

LABEL = "offline rule judge (not ChatGPT)"
WORDS: dict[str, str] = {**WORD_TO_CATEGORY, "kitty": "cat"}
IRREGULAR = {"people": "person", "men": "man", "women": "woman", "children": "child", "mice": "mouse",
             "knives": "knife", "ponies": "pony", "puppies": "puppy", "kitties": "kitty", "buses": "bus",
             "calves": "calf", "sheep": "sheep"}
# Relation phrases, longest first, -> (canonical relation, whether subject and object swap to reach it).
RELATIONS: tuple[tuple[tuple[str, ...], str, bool], ...] = tuple(sorted((
    (("to", "the", "left", "of"), "left of", False), (("to", "the", "right", "of"), "left of", True),
    (("on", "top", "of"), "above", False), (("next", "to"), "next to", False),
    (("left", "of"), "left of", False), (("right", "of"), "left of", True),
    (("above",), "above", False), (("over",), "above", False), (("below",), "above", True),
    (("under",), "above", True), (("beneath",), "above", True), (("beside",), "next to", False),
), key=lambda rel: -len(rel[0])))

Relation = tuple[str | None, str, str | None]  # (subject category, relation, object category)


def _singular(word: str) -> str:
    if word in WORDS or word in IRREGULAR:
        return IRREGULAR.get(word, word)
    for suffix, replacement in (("ies", "y"), ("es", ""), ("s", "")):
        if word.endswith(suffix) and word[: -len(suffix)] + replacement in WORDS:
            return word[: -len(suffix)] + replacement
    return word


def _items(sentence: str) -> list[tuple[str, str, bool]]:
    """The sentence as a sequence of ("obj", category, False) and ("rel", relation, swapped) items."""
    words = [_singular(w) for w in re.findall(r"[a-z]+", sentence.lower())]
    items: list[tuple[str, str, bool]] = []
    i = 0
    while i < len(words):
        rel = next((r for r in RELATIONS if tuple(words[i:i + len(r[0])]) == r[0]), None)
        if rel is not None:
            items.append(("rel", rel[1], rel[2]))
            i += len(rel[0])
        elif " ".join(words[i:i + 2]) in WORDS:
            items.append(("obj", WORDS[" ".join(words[i:i + 2])], False))
            i += 2
        else:
            if words[i] in WORDS:
                items.append(("obj", WORDS[words[i]], False))
            i += 1
    return items


def read_caption(text: str) -> tuple[set[str], set[Relation]]:
    """(object categories, relations) of a caption or paragraph; relations as (subject, relation, object)."""
    objects: set[str] = set()
    relations: set[Relation] = set()
    for sentence in re.split(r"[.!?;\n]+", text):
        items = _items(sentence)
        for i, (what, value, swapped) in enumerate(items):
            if what == "obj":
                objects.add(value)
                continue
            before = next((v for w, v, _ in reversed(items[:i]) if w == "obj"), None)
            after = next((v for w, v, _ in items[i + 1:] if w == "obj"), None)
            subject, obj = (after, before) if swapped else (before, after)
            if value == "next to" and subject is not None and obj is not None:
                subject, obj = sorted((subject, obj))
            relations.add((subject, value, obj))
    return objects, relations


def _covered(relation: Relation, offered: set[Relation]) -> bool:
    subject, rel, obj = relation
    if subject is None or obj is None:  # a dangling phrase: the same relation anywhere will do
        return any(r == rel for _, r, _ in offered)
    if (subject, rel, obj) in offered:
        return True
    if rel == "next to":  # any side-by-side relation of the same two objects says they are next to each other
        pair = {subject, obj}
        return any({s, o} == pair and r in ("left of", "next to") for s, r, o in offered)
    return False


def covers(caption1: str, caption2: str) -> bool:
    """Does caption2 name every object and state every relation of caption1 (under the rules above)?"""
    objects1, relations1 = read_caption(caption1)
    objects2, relations2 = read_caption(caption2)
    return objects1 <= objects2 and all(_covered(r, relations2) for r in relations1)


def remove_repeated_sentences(paragraph: str) -> str:
    """The paragraph with each sentence kept only at its first exact occurrence (whitespace normalised)."""
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", paragraph.strip()) if s.strip()]
    return " ".join(dict.fromkeys(sentences))


# "<A> is/are <comparison> <B>": a statement about two things, nonsense when A and B are the same words
COMPARISON = re.compile(r"^(?P<a>.+?) (?:is|are) (?:to the left of|to the right of|left of|right of|on top of|"
                        r"above|below|over|under|beneath|next to|beside|larger than|smaller than|bigger than) "
                        r"(?P<b>.+?)[.!?]?$", re.IGNORECASE)


def relates_to_itself(sentence: str) -> bool:
    """"The red bus is above the red bus.": a comparison whose two sides are the same words."""
    m = COMPARISON.match(sentence.strip())
    return m is not None and m["a"].lower().split() == m["b"].lower().split()


def fix_paragraph(paragraph: str) -> str:
    """The fix-up prompt's edits that need the text alone: repeated sentences removed (first occurrence kept),
    sentences that compare a thing with itself removed ("the red bus is above the red bus": an error), and an
    unfinished last sentence removed when a finished one comes before it ("... The background is plai")."""
    sentences = remove_repeated_sentences(paragraph)
    kept = [s for s in re.split(r"(?<=[.!?])\s+", sentences) if s and not relates_to_itself(s)]
    if len(kept) > 1 and not kept[-1].endswith((".", "!", "?")):
        kept = kept[:-1]
    return " ".join(kept)


APOLOGY = re.compile(r"\b(i'?m sorry|i apologi[sz]e|as an ai|i cannot|i can't)\b", re.IGNORECASE)
REQUEST_KINDS: tuple[tuple[str, re.Pattern[str], re.Pattern[str]], ...] = (
    ("poem", re.compile(r"\bpoem\b", re.I), re.compile(r".")),  # shape checked by line count below
    ("recipe", re.compile(r"\bmake\b|\brecipe\b", re.I),
     re.compile(r"\b(ingredients?|steps?|mix|add|bake|cook|cut|stir|serve)\b", re.I)),
    ("ad", re.compile(r"advertisement|\bad\b", re.I),
     re.compile(r"\b(introducing|buy|discover|perfect|get yours|order|now|brand|new)\b|!", re.I)),
    ("meme", re.compile(r"\bmeme\b|\bfunny\b", re.I), re.compile(r"\b(funny|because|joke|humou?r|ironic)\b", re.I)),
)


def fails(answer: str) -> bool:
    words = answer.split()
    if len(words) < 5 or APOLOGY.search(answer):
        return True
    sentences = [s.strip().lower() for s in re.split(r"[.!?\n]+", answer) if s.strip()]
    if len(sentences) != len(set(sentences)) or any(relates_to_itself(s) for s in sentences):
        return True
    visible = [c for c in answer if not c.isspace()]
    return sum(c.isascii() and c.isalpha() for c in visible) < 0.7 * len(visible)


def meets_request(request: str, answer: str) -> bool:
    if fails(answer):
        return False
    for kind, asks, looks in REQUEST_KINDS:
        if asks.search(request):
            if kind == "poem":
                return len([s for s in re.split(r"[.!?\n]+", answer) if s.strip()]) >= 3
            return bool(looks.search(answer))
    return True


class RuleJudge(Judge):
    """The offline stand-in for ChatGPT on the synthetic world (see the module docstring)."""

    name = "offline-rule-judge"
    version = "5"
    label = LABEL
    is_proxy = True

    def judge_one(self, request: JudgeRequest) -> Verdict:
        captions = parse_coverage_prompt(request.prompt)
        if captions is not None and request.kind == KIND_YES_NO:
            return verdict_from_answer(KIND_YES_NO, "Yes" if covers(*captions) else "No")
        asked = parse_failure_prompt(request.prompt)
        if asked is not None and request.kind == KIND_YES_NO:
            return verdict_from_answer(KIND_YES_NO, "No" if meets_request(*asked) else "Yes")
        asked = parse_request_met_prompt(request.prompt)
        if asked is not None and request.kind == KIND_YES_NO:
            return verdict_from_answer(KIND_YES_NO, "Yes" if meets_request(*asked) else "No")
        paragraph = parse_fixup_prompt(request.prompt)
        if paragraph is not None and request.kind == KIND_TEXT:
            return verdict_from_answer(KIND_TEXT, fix_paragraph(paragraph))
        return Verdict(ERROR, error=f"{LABEL} answers only the coverage, failure and request-met prompts (kind "
                                    f"yes_no) and the fix-up prompt (kind text); got a {request.kind} request "
                                    f"it cannot read: "
                                    f"{request.prompt[:80]!r}")
