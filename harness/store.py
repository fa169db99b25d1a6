"""The results store: one SQLite file (WAL mode) holding runs, generations, judgments, metrics and ratings.

Rules it keeps:
- Schema changes are named, ordered migrations; applied names are recorded in `schema_migrations` and
  their count in `PRAGMA user_version`. The file is stamped with `PRAGMA application_id` so a store is
  recognisable.
- A file that is not an mgbench store (not SQLite, or SQLite with someone else's tables) or that was
  written by a newer mgbench is refused with a message naming it, and never written to.
- Every batch of generations is written in one transaction: after a crash a batch is either all there
  or not there at all, and a rerun redoes exactly the missing batches.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

APPLICATION_ID = 0x4D474231  # "MGB1"
SQLITE_MAGIC = b"SQLite format 3\x00"

# Named, ordered migrations. Append only: never edit or reorder one that has shipped.
MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_initial",
        """
        CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            started_at TEXT NOT NULL,
            ended_at TEXT,
            status TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed', 'interrupted')),
            git_sha TEXT,
            package_version TEXT NOT NULL,
            config_hash TEXT NOT NULL,
            config_json TEXT NOT NULL,
            seed INTEGER NOT NULL,
            host TEXT NOT NULL,
            argv TEXT NOT NULL,
            world_size INTEGER NOT NULL DEFAULT 1
        );
        -- Which samples a run selected (e.g. the seeded subset drawn by --limit).
        CREATE TABLE run_samples (
            run_id TEXT NOT NULL REFERENCES runs(run_id),
            task TEXT NOT NULL,
            sample_id TEXT NOT NULL,
            PRIMARY KEY (run_id, task, sample_id)
        );
        CREATE TABLE generations (
            key TEXT PRIMARY KEY,
            model TEXT NOT NULL,
            model_fingerprint TEXT NOT NULL,
            task TEXT NOT NULL,
            sample_id TEXT NOT NULL,
            request_json TEXT NOT NULL,
            text TEXT NOT NULL,
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            latency_s REAL NOT NULL,
            choice_logprobs TEXT,
            error TEXT,
            run_id TEXT NOT NULL REFERENCES runs(run_id),
            rank INTEGER NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX generations_by_model_task ON generations (model, task, sample_id);
        CREATE TABLE judgments (
            key TEXT PRIMARY KEY,
            generation_key TEXT REFERENCES generations(key),
            judge TEXT NOT NULL,
            judge_version TEXT NOT NULL,
            prompt TEXT NOT NULL,
            raw_text TEXT,
            verdict TEXT NOT NULL,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            run_id TEXT REFERENCES runs(run_id),
            created_at TEXT NOT NULL
        );
        CREATE TABLE metrics (
            run_id TEXT NOT NULL REFERENCES runs(run_id),
            model TEXT NOT NULL,
            task TEXT NOT NULL,
            metric TEXT NOT NULL,
            value REAL,
            n INTEGER NOT NULL,
            ci_low REAL,
            ci_high REAL,
            higher_is_better INTEGER NOT NULL,
            details_json TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            PRIMARY KEY (run_id, model, task, metric)
        );
        CREATE TABLE ratings (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            campaign TEXT NOT NULL,
            rater TEXT NOT NULL,
            generation_key TEXT NOT NULL REFERENCES generations(key),
            verdict TEXT NOT NULL,
            position INTEGER,
            created_at TEXT NOT NULL,
            UNIQUE (campaign, rater, generation_key)
        );
        """,
    ),
    (
        # Human rating campaigns (human_eval): the items a campaign shows, who rates what in which order, and
        # the failure kind / origin of each rating. Model identity stays behind `generation_key`.
        "0002_rating_campaigns",
        """
        CREATE TABLE rating_campaigns (
            campaign TEXT PRIMARY KEY,
            created_at TEXT NOT NULL,
            seed INTEGER NOT NULL,
            raters_per_item INTEGER NOT NULL,
            secret TEXT NOT NULL,
            config_json TEXT NOT NULL
        );
        CREATE TABLE rating_items (
            campaign TEXT NOT NULL REFERENCES rating_campaigns(campaign),
            item_id TEXT NOT NULL,
            generation_key TEXT NOT NULL REFERENCES generations(key),
            task TEXT NOT NULL,
            gold_verdict TEXT,
            gold_failure_kind TEXT,
            PRIMARY KEY (campaign, item_id),
            UNIQUE (campaign, generation_key)
        );
        CREATE TABLE rating_raters (
            campaign TEXT NOT NULL REFERENCES rating_campaigns(campaign),
            rater TEXT NOT NULL,
            token_sha256 TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            PRIMARY KEY (campaign, rater)
        );
        CREATE TABLE rating_assignments (
            campaign TEXT NOT NULL,
            rater TEXT NOT NULL,
            item_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            PRIMARY KEY (campaign, rater, item_id),
            UNIQUE (campaign, rater, position),
            FOREIGN KEY (campaign, rater) REFERENCES rating_raters(campaign, rater),
            FOREIGN KEY (campaign, item_id) REFERENCES rating_items(campaign, item_id)
        );
        ALTER TABLE ratings ADD COLUMN failure_kind TEXT;
        ALTER TABLE ratings ADD COLUMN source TEXT NOT NULL DEFAULT 'web';
        CREATE INDEX ratings_by_campaign ON ratings (campaign, generation_key);
        """,
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(RuntimeError):
    """A store file that cannot be used; the message names the file and the reason."""


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class GenerationRow:
    key: str
    model: str
    model_fingerprint: str
    task: str
    sample_id: str
    request_json: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    choice_logprobs: list[float] | None
    error: str | None
    run_id: str
    rank: int
    created_at: str = ""


def _check_existing_file(path: Path) -> None:
    """Refuse, before SQLite touches it, a non-empty file that is not an SQLite database."""
    if not path.exists() or path.stat().st_size == 0:
        return
    if path.is_dir():
        raise StoreError(f"{path}: is a directory, not an mgbench store file")
    with path.open("rb") as fh:
        header = fh.read(len(SQLITE_MAGIC))
    if header != SQLITE_MAGIC:
        raise StoreError(
            f"{path}: not an mgbench store (not an SQLite database); refusing to open or overwrite it"
        )


class Store:
    """An open results store. Use as a context manager or call close()."""

    def __init__(self, path: str | Path, *, timeout_s: float = 60.0):
        self.path = Path(path)
        self.timeout_s = timeout_s
        _check_existing_file(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves so each batch is exactly one transaction.
        self.conn = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        try:
            self._verify_and_migrate()
        except Exception:
            self.conn.close()
            raise

    # ----- opening -----------------------------------------------------------------------------------
    def _verify_and_migrate(self) -> None:
        conn = self.conn
        try:
            # One read transaction, so the three facts come from one snapshot even while another
            # process is creating the store.
            conn.execute("BEGIN")
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            n_tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"{self.path}: not an mgbench store ({exc}); refusing to use it") from exc
        if app_id != APPLICATION_ID and (app_id != 0 or n_tables > 0):
            raise StoreError(
                f"{self.path}: an SQLite database but not an mgbench store (application_id={app_id:#x}, "
                f"{n_tables} tables); refusing to modify it"
            )
        self._check_version(version)
        self._enable_wal()
        # WAL + NORMAL: a committed batch survives any crash of the process; a power cut may lose the last
        # few batches (never corrupting the file), which a rerun simply regenerates.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        # BEGIN IMMEDIATE serialises concurrent openers (e.g. two ranks) so migrations run once.
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            self._check_version(version)
            if version > 0:
                applied = [r[0] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY seq")]
                expected = [name for name, _ in MIGRATIONS[: len(applied)]]
                if applied != expected:
                    raise StoreError(
                        f"{self.path}: its applied migrations {applied} do not match this mgbench's "
                        f"{expected}; refusing to use it"
                    )
            else:
                conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
                conn.execute(
                    "CREATE TABLE schema_migrations (seq INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, "
                    "applied_at TEXT NOT NULL)"
                )
            for seq in range(version, SCHEMA_VERSION):
                name, sql = MIGRATIONS[seq]
                for statement in _split_sql(sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (seq, name, applied_at) VALUES (?, ?, ?)",
                    (seq + 1, name, utc_now()),
                )
                conn.execute(f"PRAGMA user_version={seq + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _enable_wal(self) -> None:
        """Switch to WAL; the switch can report "locked" at once while another opener holds the file."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                self.conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: written by a newer mgbench (schema version {version}, this mgbench knows "
                f"up to {SCHEMA_VERSION}); upgrade mgbench to read it. The file was not modified."
            )

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self.conn)

    # ----- runs --------------------------------------------------------------------------------------
    def start_run(
        self,
        *,
        config: dict[str, Any],
        config_hash: str,
        seed: int,
        argv: Sequence[str],
        provenance: dict[str, Any],
        world_size: int = 1,
        run_id: str | None = None,
    ) -> str:
        run_id = run_id or uuid.uuid4().hex[:16]
        with self._transaction():
            self.conn.execute(
                "INSERT INTO runs (run_id, started_at, status, git_sha, package_version, config_hash, "
                "config_json, seed, host, argv, world_size) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    utc_now(),
                    provenance.get("git_sha"),
                    provenance["package_version"],
                    config_hash,
                    json.dumps(config, sort_keys=True),
                    seed,
                    provenance["host"],
                    json.dumps(list(argv)),
                    world_size,
                ),
            )
        return run_id

    def finish_run(self, run_id: str, status: str = "finished") -> None:
        with self._transaction():
            self.conn.execute(
                "UPDATE runs SET ended_at=?, status=? WHERE run_id=?", (utc_now(), status, run_id)
            )

    def runs(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute("SELECT * FROM runs ORDER BY started_at")]

    def run_config(self, run_id: str) -> dict[str, Any]:
        row = self.conn.execute("SELECT config_json FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return {} if row is None else json.loads(row[0])

    def record_run_samples(self, run_id: str, task: str, sample_ids: Iterable[str]) -> None:
        with self._transaction():
            self.conn.executemany(
                "INSERT OR IGNORE INTO run_samples (run_id, task, sample_id) VALUES (?, ?, ?)",
                ((run_id, task, sid) for sid in sample_ids),
            )

    def run_samples(self, run_id: str, task: str) -> list[str]:
        rows = self.conn.execute(
            "SELECT sample_id FROM run_samples WHERE run_id=? AND task=? ORDER BY sample_id", (run_id, task)
        )
        return [r[0] for r in rows]

    # ----- generations -------------------------------------------------------------------------------
    def existing_keys(self, keys: Iterable[str]) -> set[str]:
        """The subset of `keys` already stored (successes and per-sample errors alike)."""
        return self._keys_where(keys, "1")

    def _keys_where(self, keys: Iterable[str], condition: str) -> set[str]:
        keys = list(keys)
        found: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT key FROM generations WHERE key IN ({marks}) AND {condition}"
            found.update(r[0] for r in self.conn.execute(sql, chunk))
        return found

    def error_keys(self, keys: Iterable[str]) -> set[str]:
        """The subset of `keys` stored with a per-sample error."""
        return self._keys_where(keys, "error IS NOT NULL")

    def write_generations(self, rows: Sequence[GenerationRow]) -> int:
        """Write one batch in one transaction; returns how many rows were new."""
        now = utc_now()
        with self._transaction():
            before = self.conn.total_changes
            self.conn.executemany(
                "INSERT INTO generations (key, model, model_fingerprint, task, sample_id, request_json, "
                "text, prompt_tokens, completion_tokens, latency_s, choice_logprobs, error, run_id, rank, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                # A stored success is never replaced; a stored error is (retry_errors reruns those).
                "ON CONFLICT (key) DO UPDATE SET text=excluded.text, prompt_tokens=excluded.prompt_tokens, "
                "completion_tokens=excluded.completion_tokens, latency_s=excluded.latency_s, "
                "choice_logprobs=excluded.choice_logprobs, error=excluded.error, run_id=excluded.run_id, "
                "rank=excluded.rank, created_at=excluded.created_at WHERE generations.error IS NOT NULL",
                [
                    (
                        r.key, r.model, r.model_fingerprint, r.task, r.sample_id, r.request_json, r.text,
                        r.prompt_tokens, r.completion_tokens, r.latency_s,
                        None if r.choice_logprobs is None else json.dumps(r.choice_logprobs),
                        r.error, r.run_id, r.rank, r.created_at or now,
                    )
                    for r in rows
                ],
            )
            return self.conn.total_changes - before

    def generations(self, *, model: str | None = None, task: str | None = None,
                    keys: Iterable[str] | None = None) -> Iterator[GenerationRow]:
        where, params = [], []
        if model is not None:
            where.append("model=?")
            params.append(model)
        if task is not None:
            where.append("task=?")
            params.append(task)
        sql = "SELECT * FROM generations"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY model, task, sample_id, key"
        wanted = set(keys) if keys is not None else None
        for r in self.conn.execute(sql, params):
            if wanted is not None and r["key"] not in wanted:
                continue
            yield _row_to_generation(r)

    def count_generations(self) -> int:
        return self.conn.execute("SELECT count(*) FROM generations").fetchone()[0]

    # ----- metrics -----------------------------------------------------------------------------------
    def write_metrics(self, run_id: str, model: str, task: str, values: Sequence[Any]) -> None:
        """Replace this run's metrics for (model, task) with `values` (harness.metrics.MetricValue)."""
        now = utc_now()
        with self._transaction():
            self.conn.execute(
                "DELETE FROM metrics WHERE run_id=? AND model=? AND task=?", (run_id, model, task)
            )
            self.conn.executemany(
                "INSERT INTO metrics (run_id, model, task, metric, value, n, ci_low, ci_high, "
                "higher_is_better, details_json, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (run_id, model, task, v.name, v.value, v.n, v.ci_low, v.ci_high,
                     int(v.higher_is_better), json.dumps(v.details, sort_keys=True), now)
                    for v in values
                ],
            )

    def metrics(self, run_id: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM metrics"
        params: tuple[Any, ...] = ()
        if run_id is not None:
            sql += " WHERE run_id=?"
            params = (run_id,)
        sql += " ORDER BY created_at, task, model, metric"
        return [dict(r) for r in self.conn.execute(sql, params)]

    def latest_metrics(self) -> list[dict[str, Any]]:
        """For each (model, task, metric), the value from the most recent run that computed it."""
        sql = """
            SELECT m.* FROM metrics m
            JOIN (SELECT model, task, metric, max(created_at) AS last FROM metrics
                  GROUP BY model, task, metric) l
              ON m.model=l.model AND m.task=l.task AND m.metric=l.metric AND m.created_at=l.last
            ORDER BY m.task, m.model, m.metric
        """
        return [dict(r) for r in self.conn.execute(sql)]


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error (including KeyboardInterrupt)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")


def _row_to_generation(r: sqlite3.Row) -> GenerationRow:
    return GenerationRow(
        key=r["key"], model=r["model"], model_fingerprint=r["model_fingerprint"], task=r["task"],
        sample_id=r["sample_id"], request_json=r["request_json"], text=r["text"],
        prompt_tokens=r["prompt_tokens"], completion_tokens=r["completion_tokens"],
        latency_s=r["latency_s"],
        choice_logprobs=None if r["choice_logprobs"] is None else json.loads(r["choice_logprobs"]),
        error=r["error"], run_id=r["run_id"], rank=r["rank"], created_at=r["created_at"],
    )


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements (ours never put ';' inside strings)."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
