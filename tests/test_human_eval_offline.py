"""Offline forms without a browser (the browser test drives a form for real): export content and import rules.

What is checked, and why each check can fail:
- one form per rater, holding that rater's unrated items only, with outputs escaped, no model names, images
  inlined as data: URIs, and a CSP whose hashes match exactly the inline script and style;
- import merges answers with their position and time, all or nothing, and refuses: the same answers twice,
  two files answering the same item, a file from another campaign (same name, other store: wrong signature),
  a file edited to claim another rater, items that are not the rater's, answers that do not fit the task.
"""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

import pytest

from harness.store import Store
from human_eval.campaign import CampaignSpec, campaign_info, create_campaign
from human_eval.offline import ImportRefused, export_forms, form_signature, import_files, saved_file
from human_eval.ratings import rater_items, record_rating
from human_eval.render import csp_hash, static_text
from human_eval.testing import build_store

PAYLOAD = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def make(tmp_path: Path, name: str = "c1") -> Path:
    path = tmp_path / name / "store.sqlite"
    build_store(path, tmp_path / name / "images", samples=2, text=lambda m, t, i: f"{PAYLOAD} {i}")
    with Store(path) as store:
        create_campaign(store, CampaignSpec(name="c1", tasks=("advanced_meme", "failure_caption"),
                                            models=("model-a", "model-b"), raters=("ann", "ben")))
    return path


def answers_for(store: Store, rater: str, n: int | None = None) -> list[dict]:
    out = []
    for view in rater_items(store.conn, "c1", rater)[:n]:
        kind = "repetition" if view.failure_task else None
        out.append({"item_id": view.item_id, "verdict": "no", "failure_kind": kind, "position": view.position,
                    "rated_at": "2024-05-01T10:00:00.000Z"})
    return out


def write(path: Path, store: Store, rater: str, answers: list[dict], *, claim: str | None = None) -> Path:
    secret = campaign_info(store.conn, "c1")["secret"]
    data = saved_file("c1", claim or rater, form_signature(secret, "c1", rater), answers)
    path.write_text(json.dumps(data))
    return path


def count(store: Store) -> int:
    return store.conn.execute("SELECT count(*) FROM ratings").fetchone()[0]


def test_export_writes_one_safe_self_contained_form_per_rater(tmp_path: Path) -> None:
    path = make(tmp_path)
    with Store(path) as store:
        first = rater_items(store.conn, "c1", "ann")[0]
        record_rating(store.conn, "c1", "ann", first.item_id, "yes" if not first.failure_task else "no",
                      "other" if first.failure_task else None)
        written = export_forms(store, "c1", tmp_path / "forms")
    assert [(e.rater, e.items, e.already_rated) for e in written] == [("ann", 7, 1), ("ben", 8, 0)]
    html = written[0].path.read_text()
    assert f'data-item="{first.item_id}"' not in html  # already rated on the web: left out
    assert html.count('class="item"') == 7 and html.count("data:image/png;base64,") == 7
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert "<img src=x" not in html and "model-a" not in html and "http://" not in html
    csp = unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1))
    script = re.search(r"<script>(.*?)</script>", html, re.DOTALL).group(1)
    style = re.search(r"<style>(.*?)</style>", html, re.DOTALL).group(1)
    assert script == static_text("form.js") and style == static_text("rate.css")
    assert f"script-src {csp_hash(script)}" in csp and f"style-src {csp_hash(style)}" in csp
    assert "unsafe-inline" not in csp and "form-action 'none'" in csp
    assert html.count("<script") == 1  # the form's own script, nothing else


def test_import_merges_answers_all_or_nothing(tmp_path: Path) -> None:
    path = make(tmp_path)
    with Store(path) as store:
        good = write(tmp_path / "ann.json", store, "ann", answers_for(store, "ann"))
        bad = write(tmp_path / "ben.json", store, "ben", answers_for(store, "ben"), claim="ann")
        with pytest.raises(ImportRefused, match="signature"):
            import_files(store, "c1", [good, bad])
        assert count(store) == 0
        assert import_files(store, "c1", [good]) == {"ann": 8}
        rows = store.conn.execute("SELECT * FROM ratings ORDER BY position").fetchall()
        assert [r["position"] for r in rows] == list(range(1, 9))
        assert {r["created_at"] for r in rows} == {"2024-05-01T10:00:00.000Z"}
        assert all(r["source"].startswith("offline:") for r in rows)
        with pytest.raises(ImportRefused, match="already has a stored rating"):
            import_files(store, "c1", [good])
        assert count(store) == 8


def test_import_refuses_overlaps_other_campaigns_and_foreign_items(tmp_path: Path) -> None:
    path, other = make(tmp_path), make(tmp_path, "other")
    with Store(path) as store, Store(other) as other_store:
        half = answers_for(store, "ben", 3)
        a = write(tmp_path / "a.json", store, "ben", half)
        b = write(tmp_path / "b.json", store, "ben", half[1:])
        with pytest.raises(ImportRefused, match="also answered in"):
            import_files(store, "c1", [a, b])
        foreign = write(tmp_path / "foreign.json", other_store, "ben", answers_for(other_store, "ben"))
        with pytest.raises(ImportRefused, match="signature does not match"):
            import_files(store, "c1", [foreign])
        renamed = json.loads(a.read_text())
        renamed["campaign"] = "c2"
        (tmp_path / "renamed.json").write_text(json.dumps(renamed))
        with pytest.raises(ImportRefused, match="another campaign"):
            import_files(store, "c1", [tmp_path / "renamed.json"])
        stolen = write(tmp_path / "stolen.json", store, "ben", [{**half[0], "item_id": "0" * 16}])
        with pytest.raises(ImportRefused, match="not one of rater 'ben'"):
            import_files(store, "c1", [stolen])
        bad_answer = write(tmp_path / "bad.json", store, "ben", [{**half[0], "verdict": "maybe"}])
        with pytest.raises(ImportRefused, match="verdict must be"):
            import_files(store, "c1", [bad_answer])
        twice = write(tmp_path / "twice.json", store, "ben", [half[0], half[0]])
        (tmp_path / "junk.json").write_text("{not json")
        with pytest.raises(ImportRefused) as refused:
            import_files(store, "c1", [twice, tmp_path / "junk.json"])
        assert len(refused.value.problems) == 2 and "answered twice" in str(refused.value)
        assert count(store) == 0
        assert import_files(store, "c1", [a]) == {"ben": 3}
