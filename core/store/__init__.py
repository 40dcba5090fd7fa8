"""The result store: SQLite (through sqlite-utils 4.x) keyed by the audio's SHA-256.

Every verdict and every explanation is computed once and then served from here, to any
session and any process that shares the store file. The package is the only code that
touches SQL; it knows rows and dicts, core.engine.results turns them into typed results and
core.engine.service decides what to compute.

    schema    location, connections (read-write or read-only), errors
    migrations  the tables, as sqlite-utils migration steps
    codecs    canonical JSON and numeric array blobs (no pickle)
    blobs     audio rows, upload names, the original bytes on disk
    flight    single flight: a missing result is computed once across processes
    results   verdict and explanation rows by core.store.keys key objects; one analysis
    queries   history (filter, sort, page), batches, delete, stats
    keys      the key objects (VerdictKey, ExplanationKey) and the hash that names a row

Layer 2: the only package that touches SQL. May import: core.audio, core.jsonsafe.
"""

from core.store.blobs import (
    audio_bytes,
    audio_row,
    check_sha,
    clean_filename,
    find_sha256,
    get_audio,
    record_audio,
    set_audio_quality,
)
from core.store.codecs import decode_arrays, dumps, encode_arrays
from core.store.queries import (
    HistoryPage,
    batch_files,
    delete_analysis,
    get_batch,
    list_batches,
    list_history,
    record_batch,
    record_batch_file,
    store_stats,
)
from core.store.results import (
    get_analysis,
    get_explanation,
    get_or_compute_explanation,
    get_or_compute_prediction,
    get_prediction,
)
from core.store.schema import (
    BUSY_TIMEOUT_S,
    CLAIM_STALE_S,
    DB_ENV,
    DEFAULT_DB,
    LABELS,
    MIGRATIONS,
    PROJECT_ROOT,
    READONLY_ENV,
    SCHEMA_VERSION,
    SHA256_RE,
    SORT_KEYS,
    NotStoredError,
    StoreError,
    audio_dir,
    is_read_only,
    open_db,
    resolve_db_path,
    schema_version,
    transaction,
)

__all__ = [
    "audio_bytes",
    "audio_dir",
    "audio_row",
    "batch_files",
    "BUSY_TIMEOUT_S",
    "check_sha",
    "CLAIM_STALE_S",
    "clean_filename",
    "DB_ENV",
    "decode_arrays",
    "DEFAULT_DB",
    "delete_analysis",
    "dumps",
    "encode_arrays",
    "find_sha256",
    "get_analysis",
    "get_audio",
    "get_batch",
    "get_explanation",
    "get_or_compute_explanation",
    "get_or_compute_prediction",
    "get_prediction",
    "HistoryPage",
    "is_read_only",
    "LABELS",
    "list_batches",
    "list_history",
    "MIGRATIONS",
    "PROJECT_ROOT",
    "NotStoredError",
    "READONLY_ENV",
    "open_db",
    "record_audio",
    "record_batch",
    "record_batch_file",
    "resolve_db_path",
    "SCHEMA_VERSION",
    "set_audio_quality",
    "schema_version",
    "SHA256_RE",
    "SORT_KEYS",
    "store_stats",
    "StoreError",
    "transaction",
]
