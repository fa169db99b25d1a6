"""Rating campaigns: which stored generations people rate, who rates which, and in what order.

An item is one stored generation: (image, request, one model's output). Raters never see which model wrote
it: an item is named by an opaque id (an HMAC of the generation key under the campaign's secret), and
neither pages nor offline forms carry the model name or the generation key.

- Every rater gets a personal secret link; the store keeps only the SHA-256 of its token, so a lost link is
  replaced (`issue_link`), never recovered.
- Each item goes to `per_item` distinct raters (all of them by default), spread evenly; each rater's items
  are shuffled with `Random(f"{seed}:{rater}")` and the order is stored, so a returning rater sees the same
  order and every rating records the position at which its item was shown.
- Hidden gold items (generations whose answer is known) go to every rater, mixed into the order, and count
  only towards each rater's gold accuracy, never towards results.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.store import Store, utc_now

YES, NO = "yes", "no"
VERDICTS = (YES, NO)
FAILURE_KINDS = ("repetition", "fragment", "irrelevant", "other")
FAILURE_TASKS = frozenset({"failure_caption", "failure_poem"})


class CampaignError(ValueError):
    """A campaign that cannot be built or used as asked; the message says why."""


@dataclass(frozen=True)
class Gold:
    """A hidden control item: a stored generation and the answer it should get."""

    generation_key: str
    verdict: str
    failure_kind: str | None = None


@dataclass(frozen=True)
class CampaignSpec:
    name: str
    tasks: tuple[str, ...]
    models: tuple[str, ...]
    raters: tuple[str, ...]
    per_item: int | None = None  # None: every rater rates every item
    seed: int = 0
    samples: int | None = None  # per task, a seeded draw of sample ids shared by all models; None: all
    gold: tuple[Gold, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Created:
    campaign: str
    links: dict[str, str]  # rater -> secret token (shown once)
    items: int
    gold: int
    skipped: dict[str, int]


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def sign(secret: str, *parts: str) -> str:
    """HMAC-SHA256 of the parts under the campaign's secret (CSRF tokens, form signatures, item ids)."""
    return hmac.new(secret.encode("utf-8"), "\x1f".join(parts).encode("utf-8"), hashlib.sha256).hexdigest()


def is_failure_task(task: str) -> bool:
    return task in FAILURE_TASKS


def check_answer(task: str, verdict: str, failure_kind: str | None) -> None:
    """The answer rules: yes/no; a failure task's "no" names its failure kind; nothing else carries one."""
    if verdict not in VERDICTS:
        raise CampaignError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
    if is_failure_task(task) and verdict == NO:
        if failure_kind not in FAILURE_KINDS:
            raise CampaignError(f"a 'no' on {task} needs a failure kind {FAILURE_KINDS}, got {failure_kind!r}")
    elif failure_kind is not None:
        raise CampaignError(f"a failure kind goes only with a 'no' on a failure task, got {failure_kind!r}")


# ----- building ------------------------------------------------------------------------------------------
def create_campaign(store: Store, spec: CampaignSpec) -> Created:
    """Build the campaign in one transaction and return each rater's secret token."""
    if not spec.raters or len(set(spec.raters)) != len(spec.raters):
        raise CampaignError("a campaign needs at least one rater, each named once")
    per_item = len(spec.raters) if spec.per_item is None else spec.per_item
    if not 1 <= per_item <= len(spec.raters):
        raise CampaignError(f"raters per item must be between 1 and {len(spec.raters)} (the raters), got {per_item}")
    conn = store.conn
    if conn.execute("SELECT 1 FROM rating_campaigns WHERE campaign=?", (spec.name,)).fetchone():
        raise CampaignError(f"campaign {spec.name!r} already exists in {store.path}")
    gold_rows = _gold_rows(conn, spec.gold)
    chosen, skipped = _choose_generations(conn, spec, exclude={g.generation_key for g in spec.gold})
    if not chosen:
        raise CampaignError(f"no stored generations for tasks {list(spec.tasks)} and models {list(spec.models)}")
    secret = secrets.token_hex(32)
    keys = [k for k, _ in chosen] + [g.generation_key for g in spec.gold]
    item_id = {key: sign(secret, "item", key)[:16] for key in keys}
    # Assignment and orders work on generation keys, so the same seed gives the same orders in any campaign.
    assignment = _assign([key for key, _ in chosen], list(spec.raters), per_item, spec.seed)
    links = {rater: secrets.token_urlsafe(24) for rater in spec.raters}
    now = utc_now()
    config = {"tasks": list(spec.tasks), "models": list(spec.models), "raters": list(spec.raters),
              "samples": spec.samples, "gold": len(spec.gold), "skipped": skipped, **spec.extra}
    with transaction(conn):
        conn.execute("INSERT INTO rating_campaigns (campaign, created_at, seed, raters_per_item, secret, config_json) "
                     "VALUES (?, ?, ?, ?, ?, ?)", (spec.name, now, spec.seed, per_item, secret,
                                                   json.dumps(config, sort_keys=True)))
        conn.executemany("INSERT INTO rating_items (campaign, item_id, generation_key, task) VALUES (?, ?, ?, ?)",
                         [(spec.name, item_id[key], key, task) for key, task in chosen])
        conn.executemany(
            "INSERT INTO rating_items (campaign, item_id, generation_key, task, gold_verdict, gold_failure_kind) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(spec.name, item_id[g.generation_key], g.generation_key, gold_rows[g.generation_key], g.verdict,
              g.failure_kind) for g in spec.gold])
        conn.executemany("INSERT INTO rating_raters (campaign, rater, token_sha256, created_at) VALUES (?, ?, ?, ?)",
                         [(spec.name, rater, token_sha256(token), now) for rater, token in links.items()])
        for rater in spec.raters:
            order = assignment[rater] + sorted(g.generation_key for g in spec.gold)
            random.Random(f"{spec.seed}:{rater}").shuffle(order)
            conn.executemany(
                "INSERT INTO rating_assignments (campaign, rater, item_id, position) VALUES (?, ?, ?, ?)",
                [(spec.name, rater, item_id[key], position) for position, key in enumerate(order, start=1)])
    return Created(spec.name, links, len(chosen), len(spec.gold), skipped)


def _assign(keys: list[str], raters: list[str], per_item: int, seed: int) -> dict[str, list[str]]:
    """Item i (in a seeded shuffle) goes to raters i*k .. i*k+k-1 (mod n): k distinct raters, even loads."""
    order = sorted(keys)
    random.Random(f"{seed}:assign").shuffle(order)
    out: dict[str, list[str]] = {r: [] for r in raters}
    for i, item in enumerate(order):
        for j in range(per_item):
            out[raters[(i * per_item + j) % len(raters)]].append(item)
    return {r: sorted(v) for r, v in out.items()}


def _choose_generations(conn: sqlite3.Connection, spec: CampaignSpec,
                        exclude: set[str]) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """(generation key, task) per (model, task, sample): the newest successful row; what was left out, counted."""
    skipped = {"errors": 0, "older_duplicates": 0, "not_drawn": 0, "gold": 0}
    newest: dict[tuple[str, str, str], sqlite3.Row] = {}
    marks_t, marks_m = ",".join("?" * len(spec.tasks)), ",".join("?" * len(spec.models))
    rows = conn.execute(f"SELECT key, model, task, sample_id, error, created_at FROM generations WHERE task IN "
                        f"({marks_t}) AND model IN ({marks_m}) ORDER BY created_at, key", [*spec.tasks, *spec.models])
    for row in rows:
        if row["key"] in exclude:
            skipped["gold"] += 1
        elif row["error"] is not None:
            skipped["errors"] += 1
        else:
            slot = (row["model"], row["task"], row["sample_id"])
            skipped["older_duplicates"] += slot in newest
            newest[slot] = row
    if spec.samples is not None:
        for task in spec.tasks:
            ids = sorted({s for (_, t, s) in newest if t == task})
            drawn = set(random.Random(f"{spec.seed}:{task}").sample(ids, min(spec.samples, len(ids))))
            for slot in [s for s in newest if s[1] == task and s[2] not in drawn]:
                del newest[slot]
                skipped["not_drawn"] += 1
    return sorted((row["key"], row["task"]) for row in newest.values()), skipped


def _gold_rows(conn: sqlite3.Connection, gold: Sequence[Gold]) -> dict[str, str]:
    """Check each gold item and return its generation's task."""
    tasks: dict[str, str] = {}
    for g in gold:
        row = conn.execute("SELECT task FROM generations WHERE key=?", (g.generation_key,)).fetchone()
        if row is None:
            raise CampaignError(f"gold item {g.generation_key!r}: no such generation in the store")
        if g.generation_key in tasks:
            raise CampaignError(f"gold item {g.generation_key!r} is listed twice")
        check_answer(row["task"], g.verdict, g.failure_kind)
        tasks[g.generation_key] = row["task"]
    return tasks


def read_gold_file(path: str | Path) -> tuple[Gold, ...]:
    """JSONL: one {"generation_key": ..., "verdict": "yes"|"no", "failure_kind": ...} per line."""
    out = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            out.append(Gold(str(obj["generation_key"]), str(obj["verdict"]), obj.get("failure_kind")))
        except (ValueError, KeyError, TypeError) as exc:
            raise CampaignError(f"{path}: line {number}: expected a gold item object ({exc})") from exc
    return tuple(out)


# ----- using ---------------------------------------------------------------------------------------------
def campaign_names(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT campaign FROM rating_campaigns ORDER BY created_at, campaign")]


def resolve_campaign(conn: sqlite3.Connection, name: str | None) -> str:
    """The named campaign, or the store's only one when no name is given."""
    names = campaign_names(conn)
    if name is None:
        if len(names) != 1:
            raise CampaignError(f"name the campaign with --campaign (the store has {len(names)}: {names})")
        return names[0]
    if name not in names:
        raise CampaignError(f"no campaign {name!r} in this store (it has {names})")
    return name


def campaign_info(conn: sqlite3.Connection, campaign: str) -> dict[str, Any]:
    row = conn.execute("SELECT * FROM rating_campaigns WHERE campaign=?", (campaign,)).fetchone()
    if row is None:
        raise CampaignError(f"no campaign {campaign!r} in this store")
    return {**dict(row), "config": json.loads(row["config_json"])}


def rater_for_token(conn: sqlite3.Connection, campaign: str, token: str) -> str | None:
    row = conn.execute("SELECT rater FROM rating_raters WHERE campaign=? AND token_sha256=?",
                       (campaign, token_sha256(token))).fetchone()
    return None if row is None else row[0]


def raters(conn: sqlite3.Connection, campaign: str) -> list[str]:
    return [r[0] for r in conn.execute("SELECT rater FROM rating_raters WHERE campaign=? ORDER BY rater", (campaign,))]


def issue_link(store: Store, campaign: str, rater: str) -> str:
    """A fresh secret token for `rater`; the old link stops working."""
    token = secrets.token_urlsafe(24)
    with transaction(store.conn):
        cur = store.conn.execute("UPDATE rating_raters SET token_sha256=? WHERE campaign=? AND rater=?",
                                 (token_sha256(token), campaign, rater))
    if cur.rowcount != 1:
        raise CampaignError(f"campaign {campaign!r} has no rater {rater!r}")
    return token
