"""Rating campaigns (human_eval.campaign): items, assignment, seeded orders, hidden models, gold, links, schema.

What is checked, and why each check can fail:
- every item goes to exactly `per_item` distinct raters and loads are even (a wrong modulo breaks both);
- a rater's order is stored and seeded: the same on return, the same for the same seed, another for another;
- item ids and pages carry neither model names, fingerprints nor generation keys;
- `--samples` draws the same sample ids for every model; errored and older duplicate generations are left out;
- gold items go to every rater, hidden among the others, and are checked when the campaign is built;
- a new link replaces the old one; the 0002 migration upgrades a version-1 store without losing ratings.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

import harness.store as store_mod
from harness.store import GenerationRow, Store
from human_eval.campaign import (
    CampaignError,
    CampaignSpec,
    Gold,
    create_campaign,
    issue_link,
    rater_for_token,
    read_gold_file,
    resolve_campaign,
)
from human_eval.ratings import rater_items, record_rating, status_rows
from human_eval.testing import build_store

RATERS = tuple(f"r{i}" for i in range(5))


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "store.sqlite"
    build_store(path, tmp_path / "images", samples=5, text=lambda model, task, i: f"an answer about image {i}")
    return path


def spec(**changes) -> CampaignSpec:
    base = dict(name="c1", tasks=("advanced_meme", "failure_caption"), models=("model-a", "model-b"), raters=RATERS)
    return CampaignSpec(**{**base, **changes})


def order_keys(store: Store, campaign: str, rater: str) -> list[str]:
    rows = store.conn.execute(
        "SELECT i.generation_key FROM rating_assignments a JOIN rating_items i USING (campaign, item_id) "
        "WHERE a.campaign=? AND a.rater=? ORDER BY a.position", (campaign, rater))
    return [r[0] for r in rows]


def test_each_item_goes_to_per_item_distinct_raters_with_even_loads(store_path: Path) -> None:
    with Store(store_path) as store:
        created = create_campaign(store, spec(per_item=3))
        assert created.items == 2 * 2 * 5
        rows = store.conn.execute("SELECT item_id, rater FROM rating_assignments WHERE campaign='c1'").fetchall()
    by_item = Counter(r["item_id"] for r in rows)
    assert set(by_item.values()) == {3} and len(by_item) == 20
    assert len(set(rows)) == len(rows)  # distinct (item, rater) pairs
    assert Counter(r["rater"] for r in rows) == {r: 12 for r in RATERS}  # 20 items x 3 / 5 raters


def test_orders_are_stored_seeded_and_per_rater(store_path: Path) -> None:
    with Store(store_path) as store:
        create_campaign(store, spec(name="a", seed=7))
        create_campaign(store, spec(name="b", seed=7))
        create_campaign(store, spec(name="c", seed=8))
        first = order_keys(store, "a", "r0")
        assert [i.position for i in rater_items(store.conn, "a", "r0")] == list(range(1, 21))
        assert order_keys(store, "a", "r0") == first  # a returning rater: same order
        assert order_keys(store, "b", "r0") == first  # same seed, same order
        assert order_keys(store, "c", "r0") != first  # another seed shuffles again
        assert order_keys(store, "a", "r1") != first  # each rater has an own order
        assert sorted(order_keys(store, "a", "r1")) == sorted(first)


def test_model_identity_is_hidden_behind_opaque_ids(store_path: Path) -> None:
    with Store(store_path) as store:
        create_campaign(store, spec())
        items = store.conn.execute("SELECT item_id, generation_key FROM rating_items").fetchall()
        views = rater_items(store.conn, "c1", "r0")
    keys = {r["generation_key"] for r in items}
    for item_id, _ in items:
        assert len(item_id) == 16 and item_id not in "".join(keys)
    for view in views:
        shown = json.dumps(view.__dict__)
        assert "model-" not in shown and "fp-" not in shown and not any(k in shown for k in keys)


def test_samples_are_drawn_once_per_task_for_all_models(store_path: Path) -> None:
    with Store(store_path) as store:
        created = create_campaign(store, spec(samples=2))
        rows = store.conn.execute("SELECT g.model, g.task, g.sample_id FROM rating_items i "
                                  "JOIN generations g ON g.key = i.generation_key").fetchall()
    assert created.items == 8 and created.skipped["not_drawn"] == 12
    for task in ("advanced_meme", "failure_caption"):
        a = {r["sample_id"] for r in rows if r["task"] == task and r["model"] == "model-a"}
        b = {r["sample_id"] for r in rows if r["task"] == task and r["model"] == "model-b"}
        assert a == b and len(a) == 2


def test_errors_and_older_duplicates_are_left_out(store_path: Path) -> None:
    with Store(store_path) as store:
        run_id = store.runs()[0]["run_id"]
        old = next(store.generations(model="model-a", task="advanced_meme"))
        store.write_generations([
            GenerationRow(**{**old.__dict__, "key": "newer", "model_fingerprint": "fp2", "text": "newer",
                             "created_at": "2999-01-01T00:00:00+00:00"}),
            GenerationRow(**{**old.__dict__, "key": "broken", "sample_id": "img999", "text": "", "error": "boom",
                             "run_id": run_id}),
        ])
        created = create_campaign(store, spec())
        keys = {r[0] for r in store.conn.execute("SELECT generation_key FROM rating_items")}
    assert created.skipped["errors"] == 1 and created.skipped["older_duplicates"] == 1
    assert "newer" in keys and old.key not in keys and "broken" not in keys


def test_gold_items_go_to_every_rater_and_are_validated(store_path: Path, tmp_path: Path) -> None:
    with Store(store_path) as store:
        meme = next(store.generations(model="model-a", task="advanced_meme")).key
        fail = next(store.generations(model="model-b", task="failure_caption")).key
        gold_file = tmp_path / "gold.jsonl"
        gold_file.write_text(json.dumps({"generation_key": meme, "verdict": "yes"}) + "\n\n" + json.dumps(
            {"generation_key": fail, "verdict": "no", "failure_kind": "repetition"}) + "\n")
        gold = read_gold_file(gold_file)
        created = create_campaign(store, spec(per_item=2, gold=gold))
        assert created.gold == 2 and created.items == 18 and created.skipped["gold"] == 2
        for rater in RATERS:
            views = {v.item_id: v for v in rater_items(store.conn, "c1", rater)}
            golds = store.conn.execute("SELECT item_id FROM rating_items WHERE gold_verdict IS NOT NULL").fetchall()
            assert {g[0] for g in golds} <= set(views)
        gold_item = store.conn.execute("SELECT item_id FROM rating_items WHERE generation_key=?", (fail,)).fetchone()[0]
        record_rating(store.conn, "c1", "r0", gold_item, "no", "repetition")
        gold_row = next(r for r in status_rows(store.conn, "c1") if r["rater"] == "r0" and r["gold"]
                        and r["task"] == "failure_caption")
        assert (gold_row["rated"], gold_row["correct"]) == (1, 1)
        with pytest.raises(CampaignError, match="no such generation"):
            create_campaign(store, spec(name="c2", gold=(Gold("nope", "yes"),)))
        with pytest.raises(CampaignError, match="failure kind"):
            create_campaign(store, spec(name="c3", gold=(Gold(fail, "no"),)))
        with pytest.raises(CampaignError, match="listed twice"):
            create_campaign(store, spec(name="c4", gold=(Gold(meme, "yes"), Gold(meme, "no"))))


def test_bad_campaigns_are_refused(store_path: Path) -> None:
    with Store(store_path) as store:
        with pytest.raises(CampaignError, match="between 1 and 5"):
            create_campaign(store, spec(per_item=6))
        with pytest.raises(CampaignError, match="no stored generations"):
            create_campaign(store, spec(models=("nobody",)))
        with pytest.raises(CampaignError, match="each named once"):
            create_campaign(store, spec(raters=("x", "x")))
        create_campaign(store, spec())
        with pytest.raises(CampaignError, match="already exists"):
            create_campaign(store, spec())
        assert resolve_campaign(store.conn, None) == "c1"
        create_campaign(store, spec(name="c2"))
        with pytest.raises(CampaignError, match="--campaign"):
            resolve_campaign(store.conn, None)
        with pytest.raises(CampaignError, match="no campaign 'zz'"):
            resolve_campaign(store.conn, "zz")


def test_a_new_link_replaces_the_old_one(store_path: Path) -> None:
    with Store(store_path) as store:
        created = create_campaign(store, spec())
        old = created.links["r2"]
        assert rater_for_token(store.conn, "c1", old) == "r2"
        new = issue_link(store, "c1", "r2")
        assert rater_for_token(store.conn, "c1", old) is None and rater_for_token(store.conn, "c1", new) == "r2"
        stored = [r[0] for r in store.conn.execute("SELECT token_sha256 FROM rating_raters")]
        assert new not in stored and old not in stored  # only hashes are kept
        with pytest.raises(CampaignError, match="no rater"):
            issue_link(store, "c1", "ghost")


def test_migration_upgrades_a_version_1_store_keeping_ratings(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "old.sqlite"
    monkeypatch.setattr(store_mod, "MIGRATIONS", store_mod.MIGRATIONS[:1])
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", 1)
    build_store(path, tmp_path / "images", samples=1)
    with Store(path) as store:
        key = next(store.generations()).key
        store.conn.execute("INSERT INTO ratings (campaign, rater, generation_key, verdict, position, created_at) "
                           "VALUES ('old', 'x', ?, 'yes', 1, 't')", (key,))
    monkeypatch.undo()
    with Store(path) as store:
        names = [r[0] for r in store.conn.execute("SELECT name FROM schema_migrations ORDER BY seq")]
        assert names == ["0001_initial", "0002_rating_campaigns"]
        row = store.conn.execute("SELECT verdict, failure_kind, source FROM ratings").fetchone()
        assert tuple(row) == ("yes", None, "web")
    with closing(sqlite3.connect(path)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"rating_campaigns", "rating_items", "rating_raters", "rating_assignments"} <= tables
