"""The catalog's tables. A scene's ``id`` is its sort key (``rows.scene_key``): search
walks it downwards, so "newest job first, then scene order" is an index range scan, and so
are the ``job`` and ``from``/``to`` filters. A job's ``id`` is its scene keys' top bits
(``rows.job_base(...) >> SCENE_BITS``)."""

from __future__ import annotations

SCHEMA_VERSION = 1

DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL UNIQUE,
    state TEXT, stage TEXT, origin TEXT, file_name TEXT,
    created_at TEXT, created_ms INTEGER NOT NULL, updated_at TEXT, finished_at TEXT,
    duration_s REAL, percent REAL NOT NULL DEFAULT 0, error_code TEXT, duplicate_of TEXT,
    scenes INTEGER NOT NULL DEFAULT 0, people INTEGER NOT NULL DEFAULT 0,
    has_results INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, id);
CREATE INDEX IF NOT EXISTS jobs_origin ON jobs(origin, id);
CREATE TABLE IF NOT EXISTS scenes (
    id INTEGER PRIMARY KEY,
    job INTEGER NOT NULL,
    scene INTEGER NOT NULL,
    start_s REAL NOT NULL, end_s REAL NOT NULL,
    keyframe INTEGER, thumbnail TEXT,
    labels TEXT NOT NULL,
    people TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS scene_labels (
    label TEXT NOT NULL, id INTEGER NOT NULL, PRIMARY KEY (label, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS scene_people (
    person_id TEXT NOT NULL, id INTEGER NOT NULL, PRIMARY KEY (person_id, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS people (
    job INTEGER NOT NULL, person INTEGER NOT NULL,
    person_id TEXT NOT NULL, library_id TEXT, name TEXT,
    thumbnail TEXT, first_s REAL, last_s REAL,
    PRIMARY KEY (job, person)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS people_by_id ON people(person_id);
CREATE TABLE IF NOT EXISTS label_segments (
    job INTEGER NOT NULL, label TEXT NOT NULL, scene INTEGER NOT NULL,
    start_s REAL NOT NULL, end_s REAL, samples INTEGER NOT NULL, max_confidence REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS label_segments_job ON label_segments(job);
CREATE VIRTUAL TABLE IF NOT EXISTS scene_text USING fts5(text, tokenize='unicode61');
CREATE VIRTUAL TABLE IF NOT EXISTS job_text USING fts5(text, tokenize='unicode61');
"""
