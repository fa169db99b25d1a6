"""`mgbench rate ...`: build rating campaigns, serve the rating app, export/import offline forms, show results.

Wire into harness/cli.py with `add_parser(sub)` and `COMMANDS["rate"] = cmd_rate`; `python -m human_eval.cli`
runs the same commands on their own.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.cli import _ci, _fmt, format_table
from harness.provenance import redact_argv
from harness.registry import TASKS, UnknownNameError, parse_names
from harness.store import Store, StoreError
from human_eval.campaign import (
    CampaignSpec,
    campaign_info,
    create_campaign,
    issue_link,
    read_gold_file,
    resolve_campaign,
)

DEFAULT_BASE_URL = "http://127.0.0.1:8000"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    rate = subparsers.add_parser(
        "rate", help="human rating campaigns (Tables 1 and 3): create, serve, status, export/import, results",
        description="People rate stored generations: does the response meet the request? (and, for the failure "
        "tasks, the failure kind). Ratings go into the same store.")
    sub = rate.add_subparsers(dest="rate_command", required=True, metavar="RATE_COMMAND")

    create = sub.add_parser("create", help="build a campaign from stored generations and print each rater's link")
    create.add_argument("--store", required=True)
    create.add_argument("--tasks", required=True, help="comma-separated tasks, e.g. advanced_meme,failure_poem")
    create.add_argument("--models", required=True, help="comma-separated model names as stored")
    create.add_argument("--raters", type=int, help="number of raters (named rater-01, rater-02, ...)")
    create.add_argument("--rater-names", help="comma-separated rater names (instead of --raters)")
    create.add_argument("--per-item", type=int, help="raters per item (default: every rater rates every item)")
    create.add_argument("--samples", type=int, help="seeded draw of N samples per task, shared by all models")
    create.add_argument("--seed", type=int, default=0, help="seed for the draw, assignment and orders (default 0)")
    create.add_argument("--gold", help="JSONL of hidden gold items {generation_key, verdict, failure_kind}")
    create.add_argument("--name", help="campaign name (default: campaign-<n>)")
    create.add_argument("--base-url", default=DEFAULT_BASE_URL, help=f"where `rate serve` will listen "
                        f"(for the printed links; default {DEFAULT_BASE_URL})")

    serve = sub.add_parser("serve", help="serve the rating web app (waitress) over the store")
    _store_campaign(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    serve.add_argument("--threads", type=int, default=8, help="worker threads (default 8)")

    status = sub.add_parser("status", help="progress per rater and task (and gold accuracy)")
    _store_campaign(status)

    links = sub.add_parser("links", help="issue a new secret link for a rater (the old one stops working)")
    _store_campaign(links)
    links.add_argument("--rater", required=True)
    links.add_argument("--base-url", default=DEFAULT_BASE_URL)

    export = sub.add_parser("export", help="write one self-contained offline HTML form per rater")
    _store_campaign(export)
    export.add_argument("--out", required=True, help="output folder")
    export.add_argument("--rater", action="append", help="only this rater (repeatable)")

    imp = sub.add_parser("import", help="merge answer files saved by offline forms (all or nothing)")
    _store_campaign(imp)
    imp.add_argument("files", nargs="+", help="JSON files saved by the forms")

    results = sub.add_parser("results", help="majority verdicts, k/n with Wilson intervals, agreement")
    _store_campaign(results)
    results.add_argument("--json", help="also write the full results as JSON to this file")
    results.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    results.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    return rate


def _store_campaign(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True)
    parser.add_argument("--campaign", help="campaign name (may be left out when the store has only one)")


def _open(path: str) -> Store:
    if not Path(path).exists():
        raise StoreError(f"{path}: no such store")
    return Store(path)


def cmd_rate(args: argparse.Namespace, argv: Sequence[str]) -> int:
    with _open(args.store) as store:
        if args.rate_command == "create":
            return _create(store, args, argv)
        campaign = resolve_campaign(store.conn, args.campaign)
        if args.rate_command == "serve":
            from human_eval.app import serve

            store.close()  # the server opens its own connections
            serve(args.store, campaign, host=args.host, port=args.port, threads=args.threads,
                  announce=lambda line: print(line, flush=True))
            return 0
        return {"status": _status, "links": _links, "export": _export, "import": _import,
                "results": _results}[args.rate_command](store, campaign, args)


def _create(store: Store, args: argparse.Namespace, argv: Sequence[str]) -> int:
    if args.rater_names:
        raters = tuple(n.strip() for n in args.rater_names.split(",") if n.strip())
    elif args.raters:
        raters = tuple(f"rater-{i:02d}" for i in range(1, args.raters + 1))
    else:
        raise ValueError("give --raters N or --rater-names A,B,...")
    tasks = tuple(parse_names(args.tasks, TASKS))
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    name = args.name or f"campaign-{len(store.conn.execute('SELECT 1 FROM rating_campaigns').fetchall()) + 1}"
    spec = CampaignSpec(name=name, tasks=tasks, models=models, raters=raters, per_item=args.per_item,
                        seed=args.seed, samples=args.samples, gold=read_gold_file(args.gold) if args.gold else (),
                        extra={"argv": redact_argv(["mgbench", *argv])})
    created = create_campaign(store, spec)
    per_item = campaign_info(store.conn, name)["raters_per_item"]
    print(f"campaign {name!r}: {created.items} item(s), {per_item} rater(s) per item, {created.gold} gold item(s); "
          f"left out: {created.skipped}")
    print("secret links (shown once; `mgbench rate links` issues a new one):")
    for rater, token in created.links.items():
        print(f"  {rater}\t{args.base_url.rstrip('/')}/r/{token}")
    return 0


def _status(store: Store, campaign: str, args: argparse.Namespace) -> int:
    from human_eval.ratings import status_rows

    rows = status_rows(store.conn, campaign)
    table = [[r["rater"], "gold (hidden)" if r["gold"] else r["task"], f"{r['rated']}/{r['assigned']}",
              f"{r['correct']}/{r['rated']}" if r["gold"] else "-", (r["last"] or "-")[:19]] for r in rows]
    done = sum(r["rated"] for r in rows)
    total = sum(r["assigned"] for r in rows)
    print(f"campaign {campaign!r}: {done}/{total} ratings")
    print(format_table(["rater", "task", "rated", "gold correct", "last rating (UTC)"], table))
    return 0


def _links(store: Store, campaign: str, args: argparse.Namespace) -> int:
    token = issue_link(store, campaign, args.rater)
    print(f"{args.rater}\t{args.base_url.rstrip('/')}/r/{token}")
    return 0


def _export(store: Store, campaign: str, args: argparse.Namespace) -> int:
    from human_eval.offline import export_forms

    for e in export_forms(store, campaign, args.out, only=args.rater):
        print(f"{e.path}\t{e.rater}: {e.items} item(s) ({e.already_rated} already rated, left out)")
    return 0


def _import(store: Store, campaign: str, args: argparse.Namespace) -> int:
    from human_eval.offline import import_files

    counts = import_files(store, campaign, args.files)
    for rater, n in sorted(counts.items()):
        print(f"{rater}: {n} rating(s) imported")
    return 0


def _results(store: Store, campaign: str, args: argparse.Namespace) -> int:
    from human_eval.results import campaign_results

    res = campaign_results(store, campaign, resamples=args.resamples, seed=args.seed)
    print(f"campaign {campaign!r}: {res['items']} item(s), {res['raters_per_item']} rater(s) per item\n")
    print(format_table(["task", "model", "metric", "k/n", "value", "95% CI (Wilson)", "ties", "unrated"], [
        [m["task"], m["model"], m["metric"], f"{m['k']}/{m['n']}", _fmt(m["value"]), _ci(m["ci_low"], m["ci_high"]),
         str(m["details"]["ties"]), str(m["details"]["unrated"])] for m in res["per_model"]]))
    print()
    print(format_table(["task", "labels", "statistic", "value", "95% CI (bootstrap)", "items", "note"], [
        [a["task"], a["labels"], a["statistic"], _fmt(a["value"]), _ci(a["ci_low"], a["ci_high"]), str(a["n_items"]),
         a["note"] or "-"] for a in res["agreement"]]))
    print()
    print(format_table(["task", "judge", "n", "agreement", "95% CI", "Cohen kappa", "95% CI"], [
        [j["task"], j["judge"], str(j["n"]), _fmt(j["agreement"]), _ci(*j["agreement_ci"]), _fmt(j["cohen_kappa"]),
         _ci(*j["cohen_kappa_ci"])] for j in res["judge_vs_people"]]))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, sort_keys=True, default=str), encoding="utf-8")
        print(f"\nresults: {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m human_eval.cli SUBCOMMAND ...`: the `rate` commands without the main CLI."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="mgbench")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["rate", *argv])
    try:
        return cmd_rate(args, ["rate", *argv])
    except (StoreError, ValueError, UnknownNameError) as exc:
        print(f"mgbench rate: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
