"""Load on loopback: 20 raters at once, 100 ratings each, against the real server (waitress, 8 threads, SQLite WAL).

Each rater is a thread with its own keep-alive connection doing what a browser does: read the page, post the
answer for the item shown, follow the redirect to the next page. Every request must succeed, and the store
must then hold exactly 2000 ratings: each rater's 100 answers as sent, at positions 1..100, none lost and
none doubled.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import threading
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from harness.store import Store
from human_eval.campaign import CampaignSpec, create_campaign
from human_eval.testing import RatingServer, build_store

RATERS, ITEMS = 20, 100
KINDS = ("repetition", "fragment", "irrelevant", "other")


def choice_for(rater: str, item: str, failure: bool) -> str:
    h = int(hashlib.sha256(f"{rater}:{item}".encode()).hexdigest(), 16)
    if h % 2 == 0:
        return "yes"
    return f"no:{KINDS[h % 4]}" if failure else "no"


def rate_all(base: str, token: str, rater: str, sent: dict[str, str], errors: list[str]) -> None:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    try:
        conn.request("GET", f"/r/{token}")
        response = conn.getresponse()
        html = response.read().decode()
        csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
        while (found := re.search(r'name="item_id" value="([^"]+)"', html)) is not None:
            item = found.group(1)
            choice = choice_for(rater, item, 'value="no:repetition"' in html)
            body = urlencode({"csrf": csrf, "item_id": item, "choice": choice})
            conn.request("POST", f"/r/{token}/rate", body=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
            response = conn.getresponse()
            response.read()
            if response.status != 303:
                errors.append(f"{rater}: POST -> {response.status}")
                return
            sent[item] = choice
            conn.request("GET", response.getheader("Location"))
            response = conn.getresponse()
            html = response.read().decode()
            if response.status != 200:
                errors.append(f"{rater}: GET -> {response.status}")
                return
        if f"{ITEMS} of {ITEMS} rated" not in html:
            errors.append(f"{rater}: finished page does not say {ITEMS} of {ITEMS}")
    except Exception as exc:  # reported by the test, with the rater
        errors.append(f"{rater}: {exc!r}")
    finally:
        conn.close()


def test_twenty_concurrent_raters_lose_no_rating(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    build_store(path, tmp_path / "images", samples=25, tasks=("advanced_meme", "failure_caption"))
    raters = tuple(f"rater-{i:02d}" for i in range(RATERS))
    with Store(path) as store:
        created = create_campaign(store, CampaignSpec(name="load", tasks=("advanced_meme", "failure_caption"),
                                                      models=("model-a", "model-b"), raters=raters))
    assert created.items == ITEMS
    sent: dict[str, dict[str, str]] = {r: {} for r in raters}
    errors: list[str] = []
    with RatingServer(path, "load", threads=8) as server:
        threads = [threading.Thread(target=rate_all, args=(server.base, created.links[r], r, sent[r], errors))
                   for r in raters]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        elapsed = time.perf_counter() - start
    assert not errors, errors[:5]
    assert all(not t.is_alive() for t in threads)
    with Store(path) as store:
        rows = store.conn.execute(
            "SELECT r.rater, i.item_id, r.verdict, r.failure_kind, r.position FROM ratings r JOIN rating_items i "
            "ON i.campaign = r.campaign AND i.generation_key = r.generation_key WHERE r.campaign='load'").fetchall()
    assert len(rows) == RATERS * ITEMS, f"{len(rows)} ratings stored after {elapsed:.1f} s"
    for rater in raters:
        mine = [r for r in rows if r["rater"] == rater]
        got = {r["item_id"]: r["verdict"] + (f":{r['failure_kind']}" if r["failure_kind"] else "") for r in mine}
        assert got == sent[rater] and len(got) == ITEMS
        assert sorted(r["position"] for r in mine) == list(range(1, ITEMS + 1))
    print(f"{RATERS * ITEMS} ratings from {RATERS} concurrent raters in {elapsed:.1f} s")
