"""Offline rating forms: one self-contained HTML file per rater, and the import of the answers they save.

A form works from a file:// URL with no server: every item (image as a data: URI, request, output as
autoescaped text) is in the page, answers persist in the browser's localStorage so closing the file and
reopening it resumes, and "Save answers" downloads a JSON file. The page's Content-Security-Policy allows
only its own inline script and style (by hash) and data: images, and no form may post anywhere.

Each form carries a signature (an HMAC of campaign and rater under the campaign's secret). `import_files`
checks it, so a file from another campaign, for a rater the campaign does not have, or edited to claim
another rater, is refused; so is any answer that duplicates one already stored or one in another file.
Import is all or nothing: one bad file and no file is imported.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.store import Store, utc_now
from human_eval.campaign import FAILURE_KINDS, CampaignError, campaign_info, raters, sign, transaction
from human_eval.ratings import insert_rating, rater_items
from human_eval.render import csp_hash, image_data_uri, render, static_text

FORMAT = "mgbench-rating-form"
FORMAT_VERSION = 1


class ImportRefused(CampaignError):
    """Answer files that were not imported; `problems` lists every reason, file by file."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("import refused, nothing was imported:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class Exported:
    rater: str
    path: Path
    items: int
    already_rated: int


def form_signature(secret: str, campaign: str, rater: str) -> str:
    return sign(secret, "form", campaign, rater)


def export_forms(store: Store, campaign: str, out: str | Path, only: list[str] | None = None) -> list[Exported]:
    """Write `<campaign>__<rater>.html` for each rater (or those in `only`): their items not yet rated."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    info = campaign_info(store.conn, campaign)
    known = raters(store.conn, campaign)
    unknown = sorted(set(only or ()) - set(known))
    if unknown:
        raise CampaignError(f"campaign {campaign!r} has no rater(s) {unknown}")
    js, css = static_text("form.js"), static_text("rate.css")
    csp = (f"default-src 'none'; img-src data:; style-src {csp_hash(css)}; script-src {csp_hash(js)}; "
           "form-action 'none'; base-uri 'none'")
    written = []
    for rater in only or known:
        items = rater_items(store.conn, campaign, rater)
        todo = [i for i in items if i.verdict is None]
        html = render("form.html.j2", campaign=campaign, rater=rater, items=todo, csp=csp, js=js, css=css,
                      images={i.item_id: image_data_uri(i.image_path) for i in todo}, kinds=FAILURE_KINDS,
                      signature=form_signature(info["secret"], campaign, rater), format=FORMAT,
                      version=FORMAT_VERSION)
        path = out / f"{_safe(campaign)}__{_safe(rater)}.html"
        path.write_text(html, encoding="utf-8")
        written.append(Exported(rater, path, len(todo), len(items) - len(todo)))
    return written


def import_files(store: Store, campaign: str, paths: list[str | Path]) -> dict[str, int]:
    """Merge saved answer files into the store in one transaction; returns answers imported per rater."""
    conn = store.conn
    secret = campaign_info(conn, campaign)["secret"]
    known = set(raters(conn, campaign))
    problems: list[str] = []
    batches: list[tuple[str, str, list[dict[str, Any]]]] = []
    seen: dict[tuple[str, str], str] = {}
    for path in map(Path, paths):
        try:
            raw = path.read_bytes()
            data = json.loads(raw.decode("utf-8"))
            rater, answers = _check_file(data, campaign, secret, known)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            problems.append(f"{path}: {exc}")
            continue
        digest = hashlib.sha256(raw).hexdigest()[:16]
        for a in answers:
            first = seen.setdefault((rater, a["item_id"]), str(path))
            if first != str(path):
                problems.append(f"{path}: item {a['item_id']} of rater {rater!r} is also answered in {first}")
        batches.append((rater, f"offline:{digest}", answers))
    if problems:
        raise ImportRefused(problems)
    counts: dict[str, int] = {}
    try:
        with transaction(conn):
            for rater, source, answers in batches:
                for a in answers:
                    if not insert_rating(conn, campaign, rater, a["item_id"], a["verdict"], a.get("failure_kind"),
                                         source, a["rated_at"]):
                        raise CampaignError(f"rater {rater!r} already has a stored rating for item {a['item_id']}")
                counts[rater] = counts.get(rater, 0) + len(answers)
    except CampaignError as exc:
        raise ImportRefused([str(exc)]) from exc
    return counts


def _check_file(data: Any, campaign: str, secret: str, known: set[str]) -> tuple[str, list[dict[str, Any]]]:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"not an mgbench rating answers file (expected format {FORMAT!r})")
    if data.get("version") != FORMAT_VERSION:
        raise ValueError(f"answers file version {data.get('version')!r}; this mgbench reads {FORMAT_VERSION}")
    if data.get("campaign") != campaign:
        raise ValueError(f"from another campaign ({data.get('campaign')!r}), not {campaign!r}")
    rater = data.get("rater")
    if rater not in known:
        raise ValueError(f"campaign {campaign!r} has no rater {rater!r}")
    if not hmac.compare_digest(str(data.get("signature", "")), form_signature(secret, campaign, rater)):
        raise ValueError(f"signature does not match rater {rater!r} of campaign {campaign!r} (edited or forged)")
    answers = data.get("answers")
    if not isinstance(answers, list):
        raise ValueError("'answers' must be a list")
    out, ids = [], set()
    for n, a in enumerate(answers, start=1):
        if not isinstance(a, dict) or not isinstance(a.get("item_id"), str):
            raise ValueError(f"answer {n}: expected an object with an item_id")
        if a["item_id"] in ids:
            raise ValueError(f"answer {n}: item {a['item_id']} is answered twice in this file")
        ids.add(a["item_id"])
        rated_at = a.get("rated_at")
        try:
            datetime.fromisoformat(str(rated_at).replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"answer {n}: rated_at {rated_at!r} is not an ISO time") from exc
        out.append({"item_id": a["item_id"], "verdict": a.get("verdict"), "failure_kind": a.get("failure_kind"),
                    "rated_at": str(rated_at)})
    return rater, out


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def saved_file(campaign: str, rater: str, signature: str, answers: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON a form saves (used by tests and by anyone scripting a form)."""
    return {"format": FORMAT, "version": FORMAT_VERSION, "campaign": campaign, "rater": rater,
            "signature": signature, "saved_at": utc_now(), "answers": answers}
