"""Stage-2 data curation (paper Sec. 3.2): describe, continue, post-edit, filter, verify, export `cc_sbu_align`.

    report = curate(adapter, [(image_id, path), ...], "cc_sbu_align/", judge=make_judge("rule"), auto_accept=True)

1. describe: the stage-1 model answers DESCRIBE_PROMPT per image (batched); an answer under `min_tokens` tokens
   (the adapter's tokenizer, else whitespace words) is continued once with `continue_prompt(answer)`, answers joined.
2. fix: the judge post-edits each description with the paper's fix-up prompt (JudgeRequest kind "text").
3. rules: `check_rules` rejects failure texts; the first rule that fires is recorded with what it matched.
4. verify: each fixed item goes to QUEUE_FILE with its rule verdict ("passed" or the rule), `decision` null. People
   write accept / reject / edit (+ `caption`); an accept of a row whose `fixed` was changed in place is an edit.
   Decisions in the queue (or `queue_in`) survive its rewrite. Undecided "passed" rows are pending (accepted with
   `auto_accept`); undecided rejected rows stay rejected.
5. export: accepted -> filter_cap.json + image/<image_id>.jpg (JPEGs hard-linked, other formats converted; other
   .jpg files in image/ removed), and the report -> REPORT_FILE.

Resumable: model answers are store generations (tasks curate_describe / curate_continue, keyed by fingerprint and
request; the image is named by its content hash, so a moved folder resumes and a changed file is re-described) and
judge answers are judgments rows; a rerun asks only for what is missing (stored model errors only with retry_errors).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm import tqdm

from harness import provenance
from harness.judges import KIND_TEXT, TEXT, UNPARSEABLE, Budget, Judge, JudgeRequest, fixup_prompt, run_judge
from harness.runner import call_with_isolation, length_sorted_batches, load_batch_images
from harness.store import GenerationRow, Store
from harness.types import GenerationSettings, ImageRef, Request, Response, generation_key
from tasks.readers._fields import iter_jsonl
from tasks.readers.ccsbu import ANNOTATION_FILE, IMAGE_DIR
from tasks.readers.errors import DataError
from tasks.world.writers import link_or_copy, write_atomic, write_bytes, write_json

DESCRIBE_PROMPT = ("###Human: <Img><ImageHere></Img> Describe this image in detail. Give as many details as possible. "
                   "Say everything you see. ###Assistant:")
CONTINUE_TURN = "###Human: Continue ###Assistant:"
DESCRIBE_TASK, CONTINUE_TASK = "curate_describe", "curate_continue"
QUEUE_FILE, REPORT_FILE, DEFAULT_STORE = "verification_queue.jsonl", "curation_report.json", "curation.sqlite"
DECISIONS = ("accept", "reject", "edit")
PASSED = "passed"
JUDGE_CHUNK = 64  # judge requests per run_judge call (one progress-bar step)

_APOS = "['\u2019]"
RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("apology", re.compile(rf"\b(i{_APOS}?m sorry|i am sorry|sorry,|i apologi[sz]e|my apologies)", re.I)),
    ("mistake", re.compile(rf"\b(i made (a|an) (mistake|error)|my mistake|i was mistaken|i{_APOS}?ve made)", re.I)),
    ("judge_meta", re.compile(  # the fixer talked about its task instead of returning the paragraph
        rf"\b(as an ai|language model|i cannot|i can{_APOS}?t|i{_APOS}?m unable|i am unable|(the|this) (given |input "
        r"|original |corrected )?paragraph|corrected version|here is the|no errors? (were |was )?found)\b", re.I)),
)


def continue_prompt(answer: str) -> str:
    """The conversation after a short first answer, laid out as upstream's v0 template (`Assistant: <answer>###`)."""
    return f"{DESCRIBE_PROMPT} {answer.strip()}{CONTINUE_TURN}"


def count_tokens(adapter: Any, text: str) -> int:
    tokenizer = getattr(adapter, "tokenizer", None)
    return len(tokenizer(text, add_special_tokens=False).input_ids) if tokenizer is not None else len(text.split())


def check_rules(text: str, min_words: int = 10) -> tuple[str, str] | None:
    """(rule, what it matched) for a failure text, or None: empty, non_english, apology, mistake, judge_meta,
    repetition (one to four words 3+ times in a row, or a sentence twice), too_short (fewer than `min_words`)."""
    text = text.strip()
    if not text:
        return "empty", ""
    visible = [c for c in text if not c.isspace()]
    letters = sum(c.isascii() and c.isalpha() for c in visible) / len(visible)
    odd = [c for c in visible if not c.isprintable() or c == "\ufffd"]
    if odd or letters < 0.7:
        return "non_english", f"{letters:.0%} ASCII letters" + (f", {len(odd)} unprintable" if odd else "")
    for name, pattern in RULES:
        if match := pattern.search(text):
            return name, match.group(0)
    words = re.findall(r"[a-z0-9']+", text.lower())
    if loop := re.search(r"\b((?:[a-z0-9']+ ){1,4}?)\1{2,}", " ".join(words) + " "):
        return "repetition", loop.group(0).strip()[:80]
    sentences = [" ".join(re.findall(r"[a-z0-9']+", s)) for s in re.split(r"[.!?\n]+", text.lower())]
    repeated = [s for s, n in Counter(s for s in sentences if s).items() if n > 1]
    if repeated:
        return "repetition", f"sentence repeated: {repeated[0][:80]}"
    if len(words) < min_words:
        return "too_short", f"{len(words)} words"
    return None


@dataclass
class CuratedItem:
    image_id: str
    image: str  # the source image's path
    key: str  # the describe generation's store key
    raw: str = ""  # the model's description (both answers when continued)
    fixed: str | None = None  # the judge's post-edit
    continued: bool = False
    error: str | None = None  # no description or no fix: the model or the judge failed (a rerun retries the judge)
    rule: str | None = None  # "passed", or the rule that rejected `fixed`
    rule_detail: str = ""
    decision: str | None = None  # a person's: accept / reject / edit
    caption: str | None = None  # the caption written out, when accepted


@dataclass
class CurationReport:
    images: int = 0
    described: int = 0  # items with a description (new or from the store)
    generated: int = 0  # model answers generated by this run (describe + continue)
    from_store: int = 0  # model answers found in the store
    continued: int = 0
    generation_errors: int = 0
    judge_requested: int = 0  # judge calls made by this run
    judge_cached: int = 0
    unjudged: int = 0  # judge error or budget: retried by a rerun
    fixed_changed: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # rule -> items
    passed_rules: int = 0
    queued: int = 0
    accepted: int = 0  # written out: people's accepts + edits + auto-accepted
    edited: int = 0
    auto_accepted: int = 0
    rejected_by_people: int = 0
    overruled_rules: int = 0  # rule-rejected items a person accepted or edited
    pending: int = 0  # passed items awaiting a decision
    queue_ignored: int = 0  # decisions for image ids this curation does not have
    judge: str = ""
    judge_label: str = ""
    judge_is_proxy: bool = False
    run_id: str = ""
    store: str = ""
    out: str = ""
    items: list[CuratedItem] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("items")
        return data


def curate(adapter: Any, images: Sequence[tuple[str, str | Path]], out_dir: str | Path, *, judge: Judge,
           store_path: str | Path | None = None, min_tokens: int = 80, max_new_tokens: int = 300, batch_size: int = 8,
           seed: int = 0, progress: bool = True, min_words: int = 10, auto_accept: bool = False,
           queue_in: str | Path | None = None, retry_errors: bool = False, budget: Budget | None = None,
           model_name: str | None = None, argv: Sequence[str] = ()) -> CurationReport:
    """Curate `images` into `out_dir` (see the module docstring); `store_path` defaults to out_dir/curation.sqlite."""
    out = Path(out_dir)
    ids = [str(image_id) for image_id, _ in images]
    bad = sorted({i for i, n in Counter(ids).items() if n > 1 or not i or "/" in i or "\\" in i or i in {".", ".."}})
    if bad:
        raise ValueError(f"image ids must be unique plain file-name parts; bad or duplicate: {bad[:5]}")
    out.mkdir(parents=True, exist_ok=True)
    name = model_name or type(adapter).__name__
    report = CurationReport(images=len(ids), judge=judge.name, judge_label=judge.label, judge_is_proxy=judge.is_proxy,
                            store=str(store_path or out / DEFAULT_STORE), out=str(out))
    config = {"command": "curate", "model": name, "images": len(ids), "out": str(out), "judge": judge.name,
              "judge_version": judge.version, "min_tokens": min_tokens, "max_new_tokens": max_new_tokens,
              "min_words": min_words}
    with Store(report.store) as store:
        report.run_id = store.start_run(
            config=provenance.redact_options(config), seed=seed, argv=provenance.redact_argv(argv),
            config_hash=hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16],
            provenance=provenance.collect())
        status = "failed"
        try:
            ask = _Asker(store, adapter, name, report, GenerationSettings(max_new_tokens=max_new_tokens), batch_size,
                         retry_errors, progress)
            report.items = _describe(ask, [(i, str(p)) for i, (_, p) in zip(ids, images, strict=True)], min_tokens)
            _fix(judge, store, report, budget or Budget(), progress)
            for item in report.items:
                if item.fixed is not None and item.error is None:
                    item.rule, item.rule_detail = check_rules(item.fixed, min_words) or (PASSED, "")
            _verify(report, out / QUEUE_FILE, queue_in, auto_accept)
            _export(out, [it for it in report.items if it.caption is not None])
            write_json(out / REPORT_FILE, report.to_dict(), indent=1)
            status = "finished"
            return report
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            store.finish_run(report.run_id, status)


@dataclass
class _Asker:
    store: Store
    adapter: Any
    name: str
    report: CurationReport
    settings: GenerationSettings
    batch_size: int
    retry_errors: bool
    progress: bool

    def ask(self, task: str, items: list[tuple[CuratedItem, ImageRef, str]], desc: str) -> list[GenerationRow]:
        """The stored answer to each (item, image, prompt), asking the model for the missing ones first."""
        fingerprint = self.adapter.fingerprint()
        requests = [Request(task, it.image_id, prompt, ref, self.settings) for it, ref, prompt in items]
        keyed = [(generation_key(fingerprint, r), r) for r in requests]
        keys = [k for k, _ in keyed]
        done = self.store.existing_keys(keys) - (self.store.error_keys(keys) if self.retry_errors else set())
        todo = [kr for kr in keyed if kr[0] not in done]
        self.report.from_store += len(keyed) - len(todo)
        with tqdm(total=len(todo), desc=desc, unit="image", disable=not self.progress, file=sys.stderr,
                  dynamic_ncols=True) as bar:
            for batch in length_sorted_batches(todo, self.batch_size):
                self.report.generated += self.store.write_generations(self._answer(batch, fingerprint))
                bar.update(len(batch))
        rows = {row.key: row for row in self.store.generations(task=task, keys=keys)}
        return [rows[k] for k in keys]

    def _answer(self, batch: list[tuple[str, Request]], fingerprint: str) -> list[GenerationRow]:
        images = load_batch_images(batch)  # an image that fails to load is that item's error
        answers = [Response(error=f"ImageLoadError: {img}") if isinstance(img, Exception) else None for img in images]
        ok = [i for i, answer in enumerate(answers) if answer is None]
        for i, answer in zip(ok, call_with_isolation(self.adapter.generate, [batch[i][1] for i in ok],
                                                      [images[i] for i in ok]), strict=True):
            answers[i] = answer
        return [GenerationRow(key=key, model=self.name, model_fingerprint=fingerprint, task=req.task,
                              sample_id=req.sample_id, request_json=req.to_json(), text=a.text,
                              prompt_tokens=a.prompt_tokens, completion_tokens=a.completion_tokens,
                              latency_s=a.latency_s, choice_logprobs=None, error=a.error, run_id=self.report.run_id,
                              rank=0) for (key, req), a in zip(batch, answers, strict=True)]


def _image_ref(path: str) -> ImageRef:
    try:
        return ImageRef("sha256", hashlib.sha256(Path(path).read_bytes()).hexdigest()[:32], path)
    except OSError:  # described as an error (the loader says why); a file that appears later gets its own key
        return ImageRef("unreadable", path, path)


def _describe(ask: _Asker, images: list[tuple[str, str]], min_tokens: int) -> list[CuratedItem]:
    refs = [_image_ref(path) for _, path in images]
    items = [CuratedItem(image_id, path, key="") for image_id, path in images]
    rows = ask.ask(DESCRIBE_TASK, [(it, ref, DESCRIBE_PROMPT) for it, ref in zip(items, refs, strict=True)],
                   "describe")
    short = []
    for item, ref, row in zip(items, refs, rows, strict=True):
        item.key, item.raw, item.error = row.key, row.text.strip(), row.error
        if row.error is None and count_tokens(ask.adapter, item.raw) < min_tokens:
            short.append((item, ref, continue_prompt(item.raw)))
    for (item, _, _), row in zip(short, ask.ask(CONTINUE_TASK, short, "continue"), strict=True):
        item.continued, item.error = True, row.error
        item.raw = f"{item.raw} {row.text.strip()}".strip()
    ask.report.continued = len(short)
    ask.report.generation_errors = sum(it.error is not None for it in items)
    ask.report.described = len(items) - ask.report.generation_errors
    return items


def _fix(judge: Judge, store: Store, report: CurationReport, budget: Budget, progress: bool) -> None:
    """The judge's post-edit of each description (an empty description needs none: the rules reject it)."""
    todo = [it for it in report.items if it.error is None and it.raw.strip()]
    for item in report.items:
        if item.error is None and not item.raw.strip():
            item.fixed = ""
    requests_left, tokens_left = budget.max_requests, budget.max_tokens
    with tqdm(total=len(todo), desc="fix-up", unit="text", disable=not progress, file=sys.stderr) as bar:
        for start in range(0, len(todo), JUDGE_CHUNK):
            chunk = todo[start:start + JUDGE_CHUNK]
            requests = [JudgeRequest(fixup_prompt(it.raw), it.key, kind=KIND_TEXT) for it in chunk]
            result = run_judge(judge, store, requests, report.run_id, Budget(requests_left, tokens_left))
            report.judge_requested += result.requested
            report.judge_cached += sum(v.cached for v in result.verdicts)
            requests_left = None if requests_left is None else max(0, requests_left - result.requested)
            spent = result.prompt_tokens + result.completion_tokens
            tokens_left = None if tokens_left is None else max(0, tokens_left - spent)
            for item, verdict in zip(chunk, result.verdicts, strict=True):
                if verdict.verdict in (TEXT, UNPARSEABLE):
                    item.fixed = (verdict.raw_text or "").strip()
                else:
                    item.error = f"judge {verdict.verdict}: {verdict.error or 'not asked (budget)'}"
                    report.unjudged += 1
            bar.update(len(chunk))
    report.fixed_changed = sum(it.fixed is not None and it.fixed != it.raw for it in report.items)


def read_queue(path: str | Path) -> dict[str, tuple[str, str | None]]:
    """image_id -> (decision, caption to write or None) from a filled-in queue; undecided rows are left out."""
    path, decided = Path(path), {}
    for number, obj in iter_jsonl(path):
        where = f"line {number}"
        if not isinstance(obj, dict) or not isinstance(obj.get("image_id"), str):
            raise DataError(path, where, "image_id", "expected an object with a string image_id")
        decision = obj.get("decision")
        if decision is None or decision == "":
            continue
        if decision not in DECISIONS:
            raise DataError(path, where, "decision", f"expected one of {DECISIONS} or null, got {decision!r}")
        text = {"accept": obj.get("fixed"), "edit": obj.get("caption"), "reject": ""}[decision]
        if not isinstance(text, str) or (decision != "reject" and not text.strip()):
            field_name = "fixed" if decision == "accept" else "caption"
            raise DataError(path, where, field_name, f"decision {decision!r} needs a non-empty {field_name!r} text")
        decided[obj["image_id"]] = (decision, text.strip() if decision != "reject" else None)
    return decided


def _verify(report: CurationReport, queue_path: Path, queue_in: str | Path | None, auto_accept: bool) -> None:
    source = Path(queue_in) if queue_in is not None else queue_path
    decided = read_queue(source) if queue_in is not None or queue_path.exists() else {}
    queued = [it for it in report.items if it.rule is not None]
    report.queue_ignored = len(set(decided) - {it.image_id for it in queued})
    for item in queued:
        decision, text = decided.get(item.image_id, (None, None))
        if decision == "accept" and text != item.fixed:  # accepted after changing `fixed` in place: an edit
            decision = "edit"
        item.decision = decision
        if decision in ("accept", "edit"):
            item.caption = text
            report.overruled_rules += item.rule != PASSED
        elif decision is None and item.rule == PASSED and auto_accept:
            item.caption = item.fixed
            report.auto_accepted += 1
    counts = Counter(it.decision for it in queued)
    report.queued, report.edited, report.rejected_by_people = len(queued), counts["edit"], counts["reject"]
    report.rejected = dict(sorted(Counter(it.rule for it in queued if it.rule != PASSED).items()))
    report.passed_rules = sum(it.rule == PASSED for it in queued)
    report.pending = sum(it.rule == PASSED and it.decision is None and not auto_accept for it in queued)
    report.accepted = sum(it.caption is not None for it in queued)
    rows = [{"image_id": it.image_id, "image": it.image, "raw": it.raw, "fixed": it.fixed, "continued": it.continued,
             "rule": it.rule, "rule_detail": it.rule_detail, "decision": it.decision,
             "caption": it.caption if it.decision == "edit" else None} for it in queued]
    write_bytes(queue_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8"))


def _export(out: Path, accepted: list[CuratedItem]) -> None:
    image_dir = out / IMAGE_DIR
    image_dir.mkdir(parents=True, exist_ok=True)
    for item in accepted:
        src, dst = Path(item.image), image_dir / f"{item.image_id}.jpg"
        with src.open("rb") as fh:
            is_jpeg = fh.read(3) == b"\xff\xd8\xff"
        if is_jpeg:
            link_or_copy(src, dst)
        else:
            with Image.open(src) as img:
                rgb = img.convert("RGB")
            write_atomic(dst, lambda fh, rgb=rgb: rgb.save(fh, format="JPEG", quality=95))
    keep = {f"{it.image_id}.jpg" for it in accepted}
    for stale in image_dir.glob("*.jpg"):
        if stale.name not in keep:
            stale.unlink()
    write_json(out / ANNOTATION_FILE, {"annotations": [{"image_id": it.image_id, "caption": it.caption}
                                                        for it in accepted]}, indent=1)
