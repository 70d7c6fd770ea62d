"""`sweep list` of an SQLite storage, read with the standard library: each sweep's name,
definition, trial count and best value without importing Optuna or SQLAlchemy, which cost more
than the listing. Only the storage schema these queries know is read this way; for any other
(or a server) the caller reads through Optuna (`ssltui.core.sweep.report.list_sweeps`)."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

DEFINITION_ATTR = "ssltui"  # the study user attribute that holds the SweepDefinition
CREATING_ATTR = "ssltui-creating"  # set first when a sweep is created; the definition is set last
SCHEMA = "v3.2.0.a"  # Optuna's storage schema (alembic revision) that the queries below read
SQLITE = "sqlite:///"
T = TypeVar("T")


def storage_url(option: str | None, sweeps_dir: Path) -> str:
    """--storage, else $SSLTUI_SWEEP_STORAGE, else an SQLite file in the run store."""
    return option or os.environ.get("SSLTUI_SWEEP_STORAGE") or f"{SQLITE}{sweeps_dir / 'optuna.db'}"


def sqlite_file(url: str) -> Path | None:
    """The file of a plain `sqlite:///PATH` URL (no driver, no query); None for anything else."""
    if not url.startswith(SQLITE) or "?" in url:
        return None
    path = url[len(SQLITE) :]
    return Path(path) if path and path != ":memory:" else None


def _started(values: list[str | None]) -> float | None:
    stamps = [datetime.fromisoformat(v) for v in values if v]
    return min(stamps).timestamp() if stamps else None


def _read_sqlite(url: str, read: Callable[[sqlite3.Connection], T]) -> T | None:
    """`read(db)` on the SQLite file of `url`, opened read-only; None where this reader cannot
    answer (not a plain SQLite URL, another storage schema, something it does not recognise), so
    the caller reads through Optuna. A file that does not exist is the caller's `read` of nothing."""
    path = sqlite_file(url)
    if path is None or not path.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
    except sqlite3.Error:
        return None
    try:
        if db.execute("SELECT version_num FROM alembic_version").fetchall() != [(SCHEMA,)]:
            return None
        return read(db)
    except (sqlite3.Error, ValueError, KeyError, TypeError):  # ValueError: JSON or a date it does not know
        return None
    finally:
        db.close()


def list_sqlite(url: str) -> list[dict[str, Any]] | None:
    """The sweeps in the SQLite storage at `url`, as `list_sweeps` gives them; [] for a file that
    does not exist; None where this reader cannot answer, so the caller reads through Optuna."""
    path = sqlite_file(url)
    if path is not None and not path.exists():
        return []

    def read(db: sqlite3.Connection) -> list[dict[str, Any]]:
        studies = db.execute(
            "SELECT s.study_id, s.study_name, a.value_json FROM studies s JOIN "
            'study_user_attributes a ON a.study_id = s.study_id AND a."key" = ?',
            (DEFINITION_ATTR,),
        ).fetchall()
        out = []
        for study_id, name, value_json in studies:
            defn = json.loads(value_json)
            starts = [row[0] for row in db.execute("SELECT datetime_start FROM trials WHERE study_id = ?", (study_id,))]
            (best,) = db.execute(
                "SELECT MAX(v.value) FROM trials t JOIN trial_values v ON v.trial_id = t.trial_id "
                "WHERE t.study_id = ? AND t.state = 'COMPLETE' AND v.objective = 0 "
                "AND v.value_type = 'FINITE'",
                (study_id,),
            ).fetchone()
            out.append(
                {
                    "name": name,
                    "preset": defn["preset"],
                    "metric": defn["metric"],
                    "sampler": defn["sampler"],
                    "params": list(defn["params"]),
                    "trials": len(starts),
                    "planned": defn["trials"],
                    "best": best,
                    "started": _started(starts),
                }
            )
        return sorted(out, key=lambda d: -(d["started"] or 0))

    return _read_sqlite(url, read)


def unfinished_sqlite(url: str) -> list[str] | None:
    """Names of the sweeps being created or left half-made in the SQLite storage at `url` (their
    creation mark without a definition); None where this reader cannot answer."""
    path = sqlite_file(url)
    if path is not None and not path.exists():
        return []

    def read(db: sqlite3.Connection) -> list[str]:
        rows = db.execute(
            "SELECT s.study_name FROM studies s WHERE EXISTS (SELECT 1 FROM study_user_attributes a "
            'WHERE a.study_id = s.study_id AND a."key" = ?) AND NOT EXISTS (SELECT 1 FROM '
            'study_user_attributes a WHERE a.study_id = s.study_id AND a."key" = ?)',
            (CREATING_ATTR, DEFINITION_ATTR),
        ).fetchall()
        return sorted(name for (name,) in rows)

    return _read_sqlite(url, read)
