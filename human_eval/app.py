"""The rating web app (`mgbench rate serve`): Flask under waitress, over the same SQLite store.

- A rater's secret link `/r/<token>` is their only credential; every route looks the rater up from it and
  reads or writes only that rater's assignments and ratings.
- Every form carries a CSRF token (an HMAC of the rater under the campaign's secret) and is refused without
  it; a request whose Origin is another site is refused as well.
- Pages are server-rendered with autoescaping; the Content-Security-Policy allows scripts and styles only
  from /static, so even a model output that slipped past escaping could not run a script.
- POST, then redirect: a reload never re-sends a rating, and the page always shows the first unrated item
  in the rater's fixed order, so closing the tab and coming back resumes where the rater left off.
"""

from __future__ import annotations

import hmac
import sqlite3
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

from flask import Flask, Response, abort, redirect, request

from harness.store import Store
from human_eval.campaign import FAILURE_KINDS, CampaignError, campaign_info, rater_for_token, sign
from human_eval.ratings import next_item, rater_item, record_rating, undo_last
from human_eval.render import STATIC, image_payload, render

CSP = ("default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")


def create_app(store_path: str, campaign: str) -> Flask:
    """The WSGI app for one campaign of one store (one SQLite connection per server thread)."""
    with Store(store_path) as store:  # opens (and migrates) once, and checks the campaign exists
        secret = campaign_info(store.conn, campaign)["secret"]
    local = threading.local()

    def conn() -> sqlite3.Connection:
        if getattr(local, "store", None) is None:
            local.store = Store(store_path)
        return local.store.conn

    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024  # a rating form is a few hundred bytes

    def rater_of(token: str) -> str:
        rater = rater_for_token(conn(), campaign, token)
        if rater is None:
            abort(404)
        return rater

    def csrf_for(rater: str) -> str:
        return sign(secret, "csrf", campaign, rater)

    def check_form(rater: str) -> None:
        origin = request.headers.get("Origin")
        if origin and origin != "null" and urlsplit(origin).netloc != request.host:
            abort(403, "cross-site form submission refused")
        if request.headers.get("Sec-Fetch-Site") == "cross-site":
            abort(403, "cross-site form submission refused")
        if not hmac.compare_digest(request.form.get("csrf", ""), csrf_for(rater)):
            abort(403, "missing or wrong CSRF token")

    @app.get("/")
    def index() -> Response:
        return Response("mgbench rating server: open the personal link you were given.\n", mimetype="text/plain")

    @app.get("/r/<token>")
    def page(token: str) -> Response:
        rater = rater_of(token)
        item, done, total = next_item(conn(), campaign, rater)
        html = render("rate.html.j2", item=item, done=done, total=total, base=f"/r/{token}", csrf=csrf_for(rater),
                      kinds=FAILURE_KINDS)
        return Response(html, mimetype="text/html")

    @app.post("/r/<token>/rate")
    def rate(token: str) -> Response:
        rater = rater_of(token)
        check_form(rater)
        verdict, _, kind = request.form.get("choice", "").partition(":")
        try:
            record_rating(conn(), campaign, rater, request.form.get("item_id", ""), verdict, kind or None)
        except CampaignError as exc:
            abort(400, str(exc))
        return redirect(f"/r/{token}", code=303)

    @app.post("/r/<token>/undo")
    def undo(token: str) -> Response:
        rater = rater_of(token)
        check_form(rater)
        undo_last(conn(), campaign, rater)
        return redirect(f"/r/{token}", code=303)

    @app.get("/r/<token>/image/<item_id>")
    def image(token: str, item_id: str) -> Response:
        item = rater_item(conn(), campaign, rater_of(token), item_id)
        payload = None if item is None else image_payload(item.image_path)
        if payload is None:
            abort(404)
        return Response(payload[0], mimetype=payload[1], headers={"Cache-Control": "private, max-age=3600"})

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"  # the link is the credential: never leak it
        response.headers["X-Frame-Options"] = "DENY"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app


def serve(store_path: str, campaign: str, *, host: str = "127.0.0.1", port: int = 8000, threads: int = 8,
          announce: Callable[[str], None] = print) -> None:
    """Serve until interrupted (Ctrl-C / SIGINT)."""
    import waitress

    app = create_app(store_path, campaign)
    server = waitress.create_server(app, host=host, port=port, threads=threads, ident="mgbench-rate")
    announce(f"serving campaign {campaign!r} on http://{host}:{server.effective_port}/  "
             "(raters open their personal links /r/<token>; Ctrl-C stops)")
    if host not in ("127.0.0.1", "localhost", "::1"):
        announce("note: plain HTTP; beyond this machine put it behind an HTTPS proxy, the links are credentials")
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
