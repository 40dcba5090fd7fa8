"""The store's schema: sqlite-utils migration steps, applied in order by schema.open_db.

Tables (built by MIGRATIONS; the step count is mirrored in ``PRAGMA user_version``):

    audio         sha256 PK, size, duration, original rate/channels/format, first and
                  last seen; the original bytes live in ``<store dir>/audio/<sha256>``
                  (named by the hash, never by an uploaded name)
    filenames     (sha256, filename) PK: every name the audio was uploaded under
    predictions   key PK = core.store.keys.VerdictKey.key; per-window results, file score,
                  label, seconds, created, the mean window embedding (schema 4)
    explanations  key PK = core.store.keys.ExplanationKey.key; meta JSON, arrays as
                  np.savez_compressed (loaded with allow_pickle=False), quality JSON
    claims        key PK: who is computing a missing result right now (single flight)
    batches, batch_files   corpus runs of core.corpus.batch: per file done/failed, sha256

A new step is one more ``@MIGRATIONS()`` function at the end; never edit an applied one.
"""

from __future__ import annotations

from sqlite_utils import Database, Migrations

MIGRATIONS = Migrations("deepfake-store")


@MIGRATIONS()
def m001_initial(db: Database) -> None:
    db.table("audio").create(
        {
            "sha256": str,
            "n_bytes": int,
            "duration": float,  # seconds at 16 kHz
            "orig_sample_rate": int,
            "orig_channels": int,
            "orig_format": str,
            "rms_dbfs": float,
            "near_silent": int,
            "first_seen": str,  # ISO 8601 UTC
            "last_seen": str,
        },
        pk="sha256",
    )
    db.table("filenames").create(
        {"sha256": str, "filename": str, "first_seen": str, "last_seen": str},
        pk=("sha256", "filename"),
    )
    db.table("predictions").create(
        {
            "key": str,
            "audio_sha256": str,
            "model": str,
            "weights_sha256": str,
            "params": str,  # canonical JSON
            "p_spoof": float,
            "label": str,
            "max_p_spoof": float,
            "max_window": int,
            "windows": str,  # JSON [{start, end, p_spoof}]
            "seconds": float,
            "created": str,
        },
        pk="key",
    )
    db.table("predictions").create_index(["audio_sha256", "model"])
    db.table("explanations").create(
        {
            "key": str,
            "audio_sha256": str,
            "model": str,
            "weights_sha256": str,
            "method": str,
            "method_version": str,
            "params": str,  # canonical JSON
            "window": int,
            "target": int,
            "target_label": str,
            "meta": str,  # JSON: the Explanation's non-array fields
            "arrays": bytes,  # np.savez_compressed
            "quality": str,  # JSON
            "seconds": float,
            "created": str,
        },
        pk="key",
    )
    db.table("explanations").create_index(["audio_sha256", "model", "method"])
    db.table("claims").create(
        {
            "key": str,
            "kind": str,
            "owner": str,
            "host": str,
            "pid": int,
            "claimed_at": float,  # unix time
            "heartbeat": float,
        },
        pk="key",
    )


@MIGRATIONS()
def m002_batches(db: Database) -> None:
    # corpus runs (core.corpus.batch): which files of a protocol are done, failed, and why
    db.table("batches").create(
        {
            "name": str,
            "protocol": str,
            "audio_dir": str,
            "models": str,  # JSON list
            "methods": str,  # JSON list
            "created": str,
            "updated": str,
        },
        pk="name",
    )
    db.table("batch_files").create(
        {
            "batch": str,
            "file_id": str,
            "system": str,  # attack id, "-" for bona fide (ASVspoof protocol)
            "key": str,  # "bonafide" | "spoof"
            "sha256": str,  # NULL when the file could not be read
            "status": str,  # "done" | "failed"
            "error": str,
            "updated": str,
        },
        pk=("batch", "file_id"),
    )
    db.table("batch_files").create_index(["sha256"])


@MIGRATIONS()
def m003_audio_quality(db: Database) -> None:
    # input-quality measurements of the signal (core.audio.quality.InputQuality JSON), so a
    # stored analysis shows its warnings without decoding the audio again
    db.table("audio").add_column("quality", str)


@MIGRATIONS()
def m004_embeddings(db: Database) -> None:
    # each verdict's mean window embedding (JSON list; NULL for older rows), from which the
    # judgement measures how unfamiliar the audio is to the model (core.judgement.familiarity)
    db.table("predictions").add_column("embedding", str)


SCHEMA_VERSION = len(MIGRATIONS._migrations)  # mirrored in PRAGMA user_version
