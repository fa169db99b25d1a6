"""`mgbench rate ...` commands (through human_eval.cli.main, which the main CLI wires in unchanged).

What is checked: create prints one working link per rater and honours --per-item/--samples/--gold; status
shows progress per rater and task; links replaces a link; export + import round-trip; results prints k/n,
agreement and writes JSON; mistakes (no store, unknown task or campaign) exit 2 with a message; and
add_parser plugs into another argparse parser as the `rate` command.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from harness.store import Store
from human_eval.campaign import rater_for_token
from human_eval.cli import add_parser, cmd_rate, main
from human_eval.offline import form_signature, saved_file
from human_eval.ratings import rater_items, record_rating
from human_eval.testing import build_store


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "s.sqlite"
    build_store(path, tmp_path / "images", samples=4)
    return path


def links(output: str) -> dict[str, str]:
    return dict(re.findall(r"^\s+(\S+)\thttp://127\.0\.0\.1:8000/r/(\S+)$", output, re.MULTILINE))


def test_create_status_links_results(store_path: Path, tmp_path: Path, capsys) -> None:
    with Store(store_path) as store:
        gold_key = next(store.generations(model="model-a", task="advanced_meme")).key
    (tmp_path / "gold.jsonl").write_text(json.dumps({"generation_key": gold_key, "verdict": "no"}) + "\n")
    assert main(["create", "--store", str(store_path), "--tasks", "advanced_meme,failure_caption", "--models",
                 "model-a,model-b", "--raters", "3", "--per-item", "2", "--samples", "3", "--seed", "4",
                 "--gold", str(tmp_path / "gold.jsonl"), "--name", "pilot"]) == 0
    out = capsys.readouterr().out
    assert "campaign 'pilot': 11 item(s), 2 rater(s) per item, 1 gold item(s)" in out
    tokens = links(out)
    assert sorted(tokens) == ["rater-01", "rater-02", "rater-03"]
    with Store(store_path) as store:
        assert all(rater_for_token(store.conn, "pilot", t) == r for r, t in tokens.items())
        for view in rater_items(store.conn, "pilot", "rater-01")[:3]:
            record_rating(store.conn, "pilot", "rater-01", view.item_id, "no", "other" if view.failure_task else None)
    assert main(["status", "--store", str(store_path)]) == 0
    status = capsys.readouterr().out
    assert "rater-01" in status and "advanced_meme" in status and "gold (hidden)" in status
    assert re.search(r"campaign 'pilot': 3/\d+ ratings", status)
    assert main(["links", "--store", str(store_path), "--rater", "rater-02", "--base-url", "http://h:9/"]) == 0
    new = re.search(r"rater-02\thttp://h:9/r/(\S+)", capsys.readouterr().out).group(1)
    with Store(store_path) as store:
        assert rater_for_token(store.conn, "pilot", new) == "rater-02"
        assert rater_for_token(store.conn, "pilot", tokens["rater-02"]) is None
    assert main(["results", "--store", str(store_path), "--resamples", "50", "--json",
                 str(tmp_path / "res.json")]) == 0
    printed = capsys.readouterr().out
    assert "request_met_human" in printed and "krippendorff_alpha" in printed
    saved = json.loads((tmp_path / "res.json").read_text())
    assert saved["campaign"] == "pilot" and saved["items"] == 11


def test_export_and_import_through_the_cli(store_path: Path, tmp_path: Path, capsys) -> None:
    assert main(["create", "--store", str(store_path), "--tasks", "advanced_meme", "--models", "model-a",
                 "--rater-names", "ann,bob"]) == 0
    assert main(["export", "--store", str(store_path), "--out", str(tmp_path / "forms"), "--rater", "bob"]) == 0
    assert "campaign-1__bob.html" in capsys.readouterr().out
    assert [p.name for p in (tmp_path / "forms").iterdir()] == ["campaign-1__bob.html"]
    with Store(store_path) as store:
        from human_eval.campaign import campaign_info

        secret = campaign_info(store.conn, "campaign-1")["secret"]
        answers = [{"item_id": v.item_id, "verdict": "yes", "position": v.position,
                    "rated_at": "2024-01-01T00:00:00+00:00"} for v in rater_items(store.conn, "campaign-1", "bob")]
    answer_file = tmp_path / "bob.json"
    answer_file.write_text(json.dumps(saved_file("campaign-1", "bob", form_signature(secret, "campaign-1", "bob"),
                                                 answers)))
    assert main(["import", "--store", str(store_path), str(answer_file)]) == 0
    assert "bob: 4 rating(s) imported" in capsys.readouterr().out
    assert main(["import", "--store", str(store_path), str(answer_file)]) == 2
    assert "import refused" in capsys.readouterr().err


def test_mistakes_exit_2_with_a_message(store_path: Path, tmp_path: Path, capsys) -> None:
    assert main(["status", "--store", str(tmp_path / "missing.sqlite")]) == 2
    assert "no such store" in capsys.readouterr().err
    assert main(["create", "--store", str(store_path), "--tasks", "no_such_task", "--models", "m",
                 "--raters", "2"]) == 2
    assert "no_such_task" in capsys.readouterr().err
    assert main(["create", "--store", str(store_path), "--tasks", "advanced_meme", "--models", "m"]) == 2
    assert "--raters" in capsys.readouterr().err
    assert main(["status", "--store", str(store_path), "--campaign", "nope"]) == 2
    assert "no campaign 'nope'" in capsys.readouterr().err


def test_add_parser_plugs_into_another_cli(store_path: Path, capsys) -> None:
    parser = argparse.ArgumentParser(prog="mgbench")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    argv = ["rate", "create", "--store", str(store_path), "--tasks", "failure_caption", "--models", "model-b",
            "--raters", "1"]
    args = parser.parse_args(argv)
    assert (args.command, args.rate_command) == ("rate", "create")
    assert cmd_rate(args, argv) == 0
    assert "campaign 'campaign-1': 4 item(s)" in capsys.readouterr().out
    serve = parser.parse_args(["rate", "serve", "--store", "x", "--port", "0", "--threads", "2"])
    assert (serve.host, serve.port, serve.threads) == ("127.0.0.1", 0, 2)
