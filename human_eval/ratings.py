"""Reading a rater's items and writing their ratings: the only code that touches the `ratings` table.

Every function takes the rater's name from the caller's authenticated context (the secret link, a signed
form), never from the submitted data, so nobody reads or writes another rater's ratings. A rating is stored
with its time and the position at which its item was shown; the UNIQUE (campaign, rater, generation_key)
constraint makes a repeated submission (a double click, a re-sent form) a no-op rather than a second vote.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from harness.store import utc_now
from human_eval.campaign import CampaignError, check_answer, is_failure_task, transaction


@dataclass(frozen=True)
class ItemView:
    """What a rater is shown for one item (never the model or the generation key)."""

    item_id: str
    position: int
    task: str
    prompt: str
    text: str
    image_path: str | None
    verdict: str | None  # this rater's answer so far
    failure_kind: str | None

    @property
    def failure_task(self) -> bool:
        return is_failure_task(self.task)


_ITEMS_SQL = """
    SELECT a.item_id, a.position, i.task, i.generation_key, g.request_json, g.text, r.verdict, r.failure_kind
    FROM rating_assignments a
    JOIN rating_items i ON i.campaign = a.campaign AND i.item_id = a.item_id
    JOIN generations g ON g.key = i.generation_key
    LEFT JOIN ratings r ON r.campaign = a.campaign AND r.rater = a.rater AND r.generation_key = i.generation_key
    WHERE a.campaign = ? AND a.rater = ?
"""


def _view(row: sqlite3.Row) -> ItemView:
    request = json.loads(row["request_json"])
    image = request.get("image") or {}
    return ItemView(row["item_id"], row["position"], row["task"], request.get("prompt", ""), row["text"],
                    image.get("path"), row["verdict"], row["failure_kind"])


def rater_items(conn: sqlite3.Connection, campaign: str, rater: str) -> list[ItemView]:
    """The rater's items in their fixed order."""
    return [_view(r) for r in conn.execute(_ITEMS_SQL + " ORDER BY a.position", (campaign, rater))]


def rater_item(conn: sqlite3.Connection, campaign: str, rater: str, item_id: str) -> ItemView | None:
    """One item, only if it is assigned to this rater."""
    row = conn.execute(_ITEMS_SQL + " AND a.item_id = ?", (campaign, rater, item_id)).fetchone()
    return None if row is None else _view(row)


def next_item(conn: sqlite3.Connection, campaign: str, rater: str) -> tuple[ItemView | None, int, int]:
    """(first unrated item in the rater's order or None when finished, rated count, total)."""
    rows = conn.execute(_ITEMS_SQL + " ORDER BY a.position", (campaign, rater)).fetchall()
    done = sum(r["verdict"] is not None for r in rows)
    pending = next((r for r in rows if r["verdict"] is None), None)
    return (None if pending is None else _view(pending)), done, len(rows)


def record_rating(conn: sqlite3.Connection, campaign: str, rater: str, item_id: str, verdict: str,
                  failure_kind: str | None = None, *, source: str = "web", created_at: str | None = None) -> bool:
    """Store one answer in its own transaction; False when this rater had already rated the item."""
    with transaction(conn):
        return insert_rating(conn, campaign, rater, item_id, verdict, failure_kind, source, created_at)


def insert_rating(conn: sqlite3.Connection, campaign: str, rater: str, item_id: str, verdict: str,
                  failure_kind: str | None, source: str, created_at: str | None) -> bool:
    """The insert behind `record_rating`, inside the caller's transaction."""
    row = conn.execute(
        "SELECT a.position, i.generation_key, i.task FROM rating_assignments a JOIN rating_items i "
        "ON i.campaign = a.campaign AND i.item_id = a.item_id WHERE a.campaign=? AND a.rater=? AND a.item_id=?",
        (campaign, rater, item_id)).fetchone()
    if row is None:
        raise CampaignError(f"item {item_id!r} is not one of rater {rater!r}'s items")
    check_answer(row["task"], verdict, failure_kind)
    cur = conn.execute(
        "INSERT INTO ratings (campaign, rater, generation_key, verdict, position, created_at, failure_kind, source) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (campaign, rater, generation_key) DO NOTHING",
        (campaign, rater, row["generation_key"], verdict, row["position"], created_at or utc_now(), failure_kind,
         source))
    return cur.rowcount == 1


def undo_last(conn: sqlite3.Connection, campaign: str, rater: str) -> str | None:
    """Delete this rater's most recent rating; returns its item id (None when there is nothing to undo)."""
    with transaction(conn):
        row = conn.execute(
            "SELECT r.id, i.item_id FROM ratings r JOIN rating_items i ON i.campaign = r.campaign "
            "AND i.generation_key = r.generation_key WHERE r.campaign=? AND r.rater=? ORDER BY r.id DESC LIMIT 1",
            (campaign, rater)).fetchone()
        if row is None:
            return None
        conn.execute("DELETE FROM ratings WHERE id=?", (row["id"],))
    return row["item_id"]


def status_rows(conn: sqlite3.Connection, campaign: str) -> list[dict[str, Any]]:
    """Progress per rater and task; gold items are counted apart (gold accuracy per rater)."""
    rows = conn.execute(
        """
        SELECT a.rater, i.task, count(*) AS assigned, count(r.id) AS rated, max(r.created_at) AS last,
               i.gold_verdict IS NOT NULL AS gold,
               sum(r.id IS NOT NULL AND r.verdict = i.gold_verdict
                   AND coalesce(r.failure_kind, '') = coalesce(i.gold_failure_kind, r.failure_kind, '')) AS correct
        FROM rating_assignments a
        JOIN rating_items i ON i.campaign = a.campaign AND i.item_id = a.item_id
        LEFT JOIN ratings r ON r.campaign = a.campaign AND r.rater = a.rater AND r.generation_key = i.generation_key
        WHERE a.campaign = ?
        GROUP BY a.rater, i.task, gold ORDER BY a.rater, gold, i.task
        """, (campaign,))
    return [dict(r) for r in rows]
