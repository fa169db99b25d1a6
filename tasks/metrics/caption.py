"""COCO caption metrics through pycocoevalcap: BLEU-1..4, METEOR, ROUGE-L, CIDEr(-D); SPICE reported unavailable.

pycocoevalcap's `COCOEvalCap.evaluate()` tokenises with the Stanford PTB tokenizer and then runs Bleu(4),
Meteor, Rouge, Cider and Spice. Spice downloads Stanford CoreNLP the first time it runs, so offline the
stock method dies before printing anything. Here the same scorers run one at a time on the same
tokenisation, and a scorer that cannot run (no Java, a crashed JVM) is reported with its reason while the
others are still computed. Score names are pycocoevalcap's (Bleu_4, ROUGE_L, ...), each with a
`<name>_status`.

Tokenisation is the stock PTBTokenizer step - the jar shipped in pycocoevalcap, `-preserveLines
-lowerCase`, then pycocoevalcap's PUNCTUATIONS list removed - but invoked here rather than through the
stock wrapper, because that wrapper (1) only turns "\\n" into a space, so a "\\r", "\\v", "\\f", U+2028 or
U+2029 inside a caption splits it into two lines and silently shifts every later caption onto the wrong
image, (2) writes its temp file inside site-packages and (3) ignores Java's exit status. Here every
line-breaking character becomes a space (inside one caption it can only mean whitespace), the temp file
goes to the system temp dir, and a failed or misaligned run counts as "tokenizer unavailable". References
and candidates go through one JVM launch; with -preserveLines each line is tokenised on its own, so this
gives the same tokens as the stock two launches (checked, quotes included).

Without a working PTB tokenizer, BLEU/ROUGE-L/CIDEr are still computed on a simple fallback tokenisation
(lower-case, split words from punctuation, punctuation dropped) and their status says they are NOT
comparable to published COCO numbers. Which images are scored: those in `candidates` (the
`params['image_id'] = cocoRes.getImgIds()` setting); each must have references and exactly one caption.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tasks.readers._fields import load_json, numbered, top_level
from tasks.readers.errors import DataError

BLEU = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4")
METRICS = (*BLEU, "METEOR", "ROUGE_L", "CIDEr", "SPICE")
SCORERS = ("Bleu", "METEOR", "ROUGE_L", "CIDEr")  # SPICE is never run
SPICE_STATUS = "unavailable offline: needs Stanford CoreNLP download"
FALLBACK_NOTE = "fallback tokenizer, not comparable to published COCO numbers"
# The characters str.splitlines() breaks on; Java's line reader breaks on several of them.
_LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_SIMPLE_TOKEN = re.compile(r"\w+|[^\w\s]+")


def caption_metrics(references: dict[Any, list[str]], candidates: dict[Any, str],
                    scorers: tuple[str, ...] = SCORERS) -> dict[str, Any]:
    """Corpus scores for `candidates` (one caption per image) against `references` (one or more each).

    `scorers` picks a subset of SCORERS (METEOR is the slow one: its JVM loads a paraphrase table); the
    others are reported as None with status "not requested".
    """
    if set(scorers) - set(SCORERS):
        raise ValueError(f"unknown scorers {sorted(set(scorers) - set(SCORERS))}; known: {', '.join(SCORERS)}")
    if not candidates:
        raise ValueError("no candidate captions to score")
    for image_id, caption in candidates.items():
        if image_id not in references or not references[image_id]:
            raise ValueError(f"image {image_id!r} has a candidate caption but no reference captions")
        if not isinstance(caption, str) or not all(isinstance(r, str) for r in references[image_id]):
            raise ValueError(f"image {image_id!r}: expected one candidate string and a list of reference strings")
    ids = list(candidates)
    texts = [c for i in ids for c in references[i]] + [candidates[i] for i in ids]
    result: dict[str, Any] = {"n_images": len(ids), "n_references": len(texts) - len(ids)}
    try:
        tokens = ptb_tokenize(texts)
        result["tokenizer"] = "PTBTokenizer (stanford-corenlp-3.4.1.jar from pycocoevalcap)"
        note = ""
    except TokenizerUnavailable as exc:
        tokens = [simple_tokenize(t) for t in texts]
        result["tokenizer"] = f"simple fallback: PTBTokenizer unavailable: {exc}"
        note = f" ({FALLBACK_NOTE})"
    gts, res, pos = {}, {}, 0
    for i in ids:
        gts[i], pos = tokens[pos:pos + len(references[i])], pos + len(references[i])
    for i in ids:
        res[i], pos = [tokens[pos]], pos + 1

    def record(scorer: str, names: tuple[str, ...], compute: Any) -> None:
        if scorer not in scorers:
            for name in names:
                result[name], result[f"{name}_status"] = None, "not requested"
            return
        try:
            values = compute()
        except Exception as exc:  # a scorer that cannot run is reported, the others still run
            for name in names:
                result[name], result[f"{name}_status"] = None, f"unavailable: {type(exc).__name__}: {exc}"
            return
        for name, value in zip(names, values, strict=True):
            result[name], result[f"{name}_status"] = float(value), "ok" + note

    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    record("Bleu", BLEU, lambda: Bleu(4).compute_score(gts, res, verbose=0)[0])
    record("METEOR", ("METEOR",), lambda: [meteor_score(gts, res)])
    record("ROUGE_L", ("ROUGE_L",), lambda: [Rouge().compute_score(gts, res)[0]])
    record("CIDEr", ("CIDEr",), lambda: [Cider().compute_score(gts, res)[0]])
    result["SPICE"], result["SPICE_status"] = None, SPICE_STATUS
    return result


class TokenizerUnavailable(RuntimeError):
    """The PTB tokenizer could not run or gave output that does not line up with its input."""


def ptb_tokenize(texts: list[str]) -> list[str]:
    """pycocoevalcap's PTB tokenisation of each text, in order (see the module docstring)."""
    from pycocoevalcap.tokenizer import ptbtokenizer

    java = shutil.which("java")
    if java is None:
        raise TokenizerUnavailable("java not found on PATH")
    jar = Path(ptbtokenizer.__file__).with_name(ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR)
    lines = "\n".join(_LINE_BREAKS.sub(" ", t) for t in texts)
    with tempfile.TemporaryDirectory(prefix="mgbench-ptb-") as tmp:
        source = Path(tmp) / "captions.txt"
        source.write_bytes(lines.encode())
        cmd = [java, "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines", "-lowerCase",
               str(source)]
        try:
            done = subprocess.run(cmd, capture_output=True, check=False)
        except OSError as exc:
            raise TokenizerUnavailable(f"cannot start java: {exc}") from exc
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise TokenizerUnavailable(f"java exited with status {done.returncode}: {tail[0]}")
    out = done.stdout.decode(errors="replace").split("\n")
    if len(out) < len(texts) or any(line.strip() for line in out[len(texts):]):
        raise TokenizerUnavailable(f"got {len(out)} output lines for {len(texts)} captions")
    drop = set(ptbtokenizer.PUNCTUATIONS)
    return [" ".join(w for w in line.rstrip().split(" ") if w not in drop) for line in out[: len(texts)]]


def simple_tokenize(text: str) -> str:
    """The fallback: lower-case, words and punctuation runs split apart, punctuation runs dropped."""
    return " ".join(t for t in _SIMPLE_TOKEN.findall(text.lower()) if re.match(r"\w", t))


def meteor_score(gts: dict[Any, list[str]], res: dict[Any, list[str]]) -> float:
    """pycocoevalcap's Meteor (meteor-1.5.jar, `-l en -norm`), cleaned up even when it fails.

    The stock class takes a lock in compute_score and its __del__ takes it again, so an exception inside
    compute_score (a JVM that died) would hang the interpreter at garbage collection; release it here.
    """
    if shutil.which("java") is None:
        raise RuntimeError("java not found on PATH")
    from pycocoevalcap.meteor.meteor import Meteor

    meteor = Meteor()
    proc = meteor.meteor_p
    try:
        return float(meteor.compute_score(gts, res)[0])
    except Exception as exc:
        try:  # a JVM that died closes its output a moment before it can be reaped
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            raise exc from None
        tail = proc.stderr.read().decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise RuntimeError(f"the METEOR JVM exited with status {proc.returncode}: {tail[0]}") from exc
    finally:
        if meteor.lock.locked():
            meteor.lock.release()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            try:
                stream.close()
            except OSError:
                pass
        proc.kill()
        proc.wait()


def load_caption_references(path: str | Path) -> dict[int, list[str]]:
    """COCO captions annotations ({"annotations": [{"image_id", "caption"}, ...], ...}) by image id."""
    path = Path(path)
    data = load_json(path)
    top_level(path, data, dict, "annotations")
    refs: dict[int, list[str]] = {}
    for rec in numbered(path, data["annotations"], unit="annotation"):
        refs.setdefault(rec.integer("image_id"), []).append(rec.text("caption"))
    if not refs:
        raise DataError(path, None, "annotations", "no caption annotations")
    return refs


def load_caption_results(path: str | Path, references: dict[int, list[str]] | None = None) -> dict[int, str]:
    """COCO results ([{"image_id", "caption"}, ...]): one caption per image, each image in `references`."""
    path = Path(path)
    data = load_json(path)
    top_level(path, data, list)
    out: dict[int, str] = {}
    for rec in numbered(path, data):
        image_id = rec.integer("image_id")
        rec.name_by("image_id", image_id)
        if image_id in out:
            raise rec.error("image_id", "a second caption for this image (the scorers take exactly one)")
        if references is not None and image_id not in references:
            raise rec.error("image_id", "no reference captions for this image in the annotations file")
        out[image_id] = rec.text("caption", allow_empty=True)
    if not out:
        raise DataError(path, None, None, "no results")
    return out


def caption_cli(annotations_file: str | Path, results_file: str | Path) -> dict[str, Any]:
    """`mgbench metric caption --annotations FILE --results FILE` as one JSON-able dict."""
    references = load_caption_references(annotations_file)
    candidates = load_caption_results(results_file, references)
    return {"metric": "caption", "annotations": str(annotations_file), "results": str(results_file),
            "annotation_images_without_result": len(set(references) - set(candidates)),
            **caption_metrics(references, candidates)}

