"""The rating web app's rules, through Flask's test client (the browser and load tests use the real server).

What is checked, and why each check can fail:
- every form is refused without the right CSRF token (missing, another rater's, or posted from another site);
- a rater can neither rate, see the image of, nor undo another rater's items or ratings; an unknown link is 404;
- model outputs are escaped in the page, and the page forbids inline scripts by CSP;
- a rating is stored once (a double submit is a no-op) with its time and the position it was shown at;
- failure tasks need a failure kind with "no"; undo removes the last rating and the page shows that item again.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.store import Store
from human_eval.app import create_app
from human_eval.campaign import CampaignSpec, create_campaign
from human_eval.testing import build_store

PAYLOAD = '<script>alert(1)</script><img src=x onerror="alert(2)"><a href="javascript:alert(3)">x</a>'


@pytest.fixture
def campaign(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "store.sqlite"
    build_store(path, tmp_path / "images", samples=3, text=lambda model, task, i: f"{PAYLOAD} #{i}")
    with Store(path) as store:
        created = create_campaign(store, CampaignSpec(
            name="c1", tasks=("advanced_meme", "failure_caption"), models=("model-a", "model-b"),
            raters=("alice", "bob", "carol"), per_item=1, seed=3))
    return path, created.links


def form(html: str) -> dict[str, str]:
    found = dict(re.findall(r'name="(csrf|item_id)" value="([^"]+)"', html))
    found["failure"] = "1" if 'value="no:repetition"' in html else ""
    return found


def items_of(path: Path, rater: str) -> list[str]:
    with Store(path) as store:
        return [r[0] for r in store.conn.execute(
            "SELECT item_id FROM rating_assignments WHERE rater=? ORDER BY position", (rater,))]


def ratings(path: Path) -> list[dict]:
    with Store(path) as store:
        return [dict(r) for r in store.conn.execute("SELECT * FROM ratings ORDER BY id")]


def test_forms_need_the_raters_csrf_token(campaign) -> None:
    path, links = campaign
    client = create_app(str(path), "c1").test_client()
    alice, bob = form(client.get(f"/r/{links['alice']}").text), form(client.get(f"/r/{links['bob']}").text)
    url = f"/r/{links['alice']}/rate"
    assert client.post(url, data={"item_id": alice["item_id"], "choice": "yes"}).status_code == 403
    assert client.post(url, data={"csrf": bob["csrf"], "item_id": alice["item_id"], "choice": "yes"}).status_code == 403
    cross = {"Origin": "https://evil.example"}
    data = {"csrf": alice["csrf"], "item_id": alice["item_id"], "choice": "yes"}
    assert client.post(url, data=data, headers=cross).status_code == 403
    assert client.post(url, data=data, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert client.post(f"/r/{links['alice']}/undo", data={}).status_code == 403
    assert ratings(path) == []
    assert client.post(url, data=data, headers={"Origin": "http://localhost"}).status_code == 303
    assert len(ratings(path)) == 1


def test_a_rater_cannot_touch_another_raters_items_or_ratings(campaign) -> None:
    path, links = campaign
    client = create_app(str(path), "c1").test_client()
    bob_item = items_of(path, "bob")[0]
    assert bob_item not in items_of(path, "alice")  # per_item=1: nobody shares an item
    alice = form(client.get(f"/r/{links['alice']}").text)
    bob = form(client.get(f"/r/{links['bob']}").text)
    refused = client.post(f"/r/{links['alice']}/rate", data={"csrf": alice["csrf"], "item_id": bob_item,
                                                              "choice": "yes"})
    assert refused.status_code == 400 and ratings(path) == []
    assert client.get(f"/r/{links['alice']}/image/{bob_item}").status_code == 404
    assert client.get(f"/r/{links['bob']}/image/{bob_item}").status_code == 200
    choice = "no:other" if bob["failure"] else "no"
    client.post(f"/r/{links['bob']}/rate", data={"csrf": bob["csrf"], "item_id": bob["item_id"], "choice": choice})
    client.post(f"/r/{links['alice']}/undo", data={"csrf": alice["csrf"]})  # alice has nothing to undo
    assert [(r["rater"], r["verdict"]) for r in ratings(path)] == [("bob", "no")]
    alice_total = len(items_of(path, "alice"))
    assert f"0 of {alice_total} rated" in client.get(f"/r/{links['alice']}").text  # bob's rating is not hers
    assert client.get("/r/not-a-token").status_code == 404
    assert client.get("/r/not-a-token/image/" + bob_item).status_code == 404


def test_outputs_are_escaped_and_inline_scripts_forbidden(campaign) -> None:
    path, links = campaign
    response = create_app(str(path), "c1").test_client().get(f"/r/{links['alice']}")
    html = response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert "<img src=x" not in html and 'href="javascript:' not in html
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "model-a" not in html and "model-b" not in html


def test_ratings_store_time_and_position_once_and_undo_reopens_the_item(campaign) -> None:
    path, links = campaign
    client = create_app(str(path), "c1").test_client()
    base = f"/r/{links['carol']}"
    order = items_of(path, "carol")
    for expected_position in (1, 2):
        f = form(client.get(base).text)
        assert f["item_id"] == order[expected_position - 1]  # always the first unrated item, in order
        choice = "no:fragment" if f["failure"] else "yes"
        data = {"csrf": f["csrf"], "item_id": f["item_id"], "choice": choice}
        assert client.post(f"{base}/rate", data=data).status_code == 303
        assert client.post(f"{base}/rate", data=data).status_code == 303  # double submit: no second row
    rows = ratings(path)
    assert [r["position"] for r in rows] == [1, 2] and all(r["created_at"] and r["source"] == "web" for r in rows)
    assert f"2 of {len(order)} rated" in client.get(base).text
    client.post(f"{base}/undo", data={"csrf": f["csrf"]})
    assert [r["position"] for r in ratings(path)] == [1]
    assert form(client.get(base).text)["item_id"] == order[1]


def test_answers_must_fit_the_task(campaign) -> None:
    path, links = campaign
    client = create_app(str(path), "c1").test_client()
    with Store(path) as store:
        rows = store.conn.execute("SELECT a.rater, a.item_id, i.task FROM rating_assignments a JOIN rating_items i "
                                  "USING (campaign, item_id)").fetchall()
    failure = next(r for r in rows if r["task"] == "failure_caption")
    plain = next(r for r in rows if r["task"] == "advanced_meme")
    for row, bad, good in ((failure, ["no", "yes:other", "no:typo", "maybe"], "no:irrelevant"),
                           (plain, ["no:other", "maybe", ""], "no")):
        base = f"/r/{links[row['rater']]}"
        csrf = form(client.get(base).text)["csrf"]
        for choice in bad:
            data = {"csrf": csrf, "item_id": row["item_id"], "choice": choice}
            assert client.post(f"{base}/rate", data=data).status_code == 400, choice
        data = {"csrf": csrf, "item_id": row["item_id"], "choice": good}
        assert client.post(f"{base}/rate", data=data).status_code == 303
    assert sorted((r["verdict"], r["failure_kind"] or "") for r in ratings(path)) == [("no", ""), ("no", "irrelevant")]
