"""Every metric deployd exposes, defined in one place, all named ``deployd_*``.

prometheus-client chooses how values are kept when this module is imported: in files shared with
the scraping process when PROMETHEUS_MULTIPROC_DIR is set (gunicorn.conf.py sets it before any
worker starts: deployd.metrics.multiproc), in memory otherwise (``deployd serve`` with one worker,
the Flask test client). No label takes a license, subject, token or any value a caller chooses:
routes are Flask's rule templates, channels and releases those the store's compiled channels hold.

Gauges say how several workers' values combine (`multiprocess_mode`): the `live*` modes drop a
worker's value once gunicorn reports it dead (gunicorn.conf.py, `child_exit`).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Latency buckets (seconds) for requests: a poll answered from memory takes well under a
# millisecond, a publish a few store round trips.
REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

# --- HTTP ---
HTTP_REQUESTS = Counter(
    "deployd_http_requests_total",
    "HTTP requests answered, by route template and status code.",
    ["route", "status"],
)
HTTP_DURATION = Histogram(
    "deployd_http_request_duration_seconds",
    "Time to answer a request of the poll path or of publishing, by route template.",
    ["route"],
    buckets=REQUEST_BUCKETS,
)

# --- Specs and licenses ---
SPECS_SERVED = Counter(
    "deployd_specs_served_total",
    "Specs served with a body (200), by channel and release.",
    ["channel", "release"],
)
SPECS_NOT_MODIFIED = Counter(
    "deployd_specs_not_modified_total",
    "Spec polls answered 304 Not Modified, by channel.",
    ["channel"],
)
LICENSE_REFUSALS = Counter(
    "deployd_license_refusals_total",
    "Requests refused for their license, by license code (missing, expired, revoked, ...).",
    ["code"],
)
RATE_LIMITED = Counter(
    "deployd_rate_limited_total",
    "Requests refused with 429 by a rate limit.",
)

# --- Caches (counted by each worker's background round from the caches' own counters) ---
LICENSE_CACHE = Counter(
    "deployd_license_cache_lookups_total",
    "License checks answered from the verified-license cache (hit) or verified afresh (miss).",
    ["result"],
)
SPEC_CACHE = Counter(
    "deployd_spec_cache_lookups_total",
    "Specs found rendered in the spec cache (hit) or rendered and signed afresh (miss).",
    ["result"],
)
COMPILED_CHANNELS = Gauge(
    "deployd_compiled_channels",
    "Compiled channels held in memory by the fullest worker (bounded by"
    " DEPLOYD_CHANNEL_CACHE_SIZE).",
    # Each worker holds its own copies; the fullest one is what the cache size bounds.
    multiprocess_mode="livemax",
)
CACHE_BYTES = Gauge(
    "deployd_cache_bytes",
    "Memory the fullest worker's caches take, by cache (license, spec: the estimates their"
    " bounds DEPLOYD_LICENSE_CACHE_MB and DEPLOYD_SPEC_CACHE_MB apply to; channel_documents:"
    " every channel's compressed document).",
    ["cache"],
    multiprocess_mode="livemax",
)

# --- The store ---
STORE_DURATION = Histogram(
    "deployd_store_operation_duration_seconds",
    "Time of a store (Redis) operation, by operation.",
    ["operation"],
    buckets=STORE_BUCKETS,
)
STORE_ERRORS = Counter(
    "deployd_store_errors_total",
    "Store (Redis) operations that failed (unreachable, timed out, refused), by operation.",
    ["operation"],
)
VIEW_AGE = Gauge(
    "deployd_store_view_age_seconds",
    "Seconds since the store last answered the most out-of-date worker's background refresh.",
    # The oldest view among live workers is the one that can serve stale answers.
    multiprocess_mode="livemax",
)
REVOCATIONS_AGE = Gauge(
    "deployd_revocation_list_age_seconds",
    "Seconds since the most out-of-date worker last read the revocation list.",
    # As VIEW_AGE: the worker with the oldest list is the one that may accept a revoked license.
    multiprocess_mode="livemax",
)
REVOCATIONS_MAX_STALENESS = Gauge(
    "deployd_revocation_max_staleness_seconds",
    "DEPLOYD_REVOCATION_MAX_STALENESS: past this age license checks fail closed.",
    # A setting, the same in every worker: the most recent value, never a sum.
    multiprocess_mode="livemostrecent",
)
STORE_UNREACHABLE = Gauge(
    "deployd_store_unreachable_workers",
    "Workers whose last background refresh could not reach the store.",
    # Each live worker says 1 or 0: the sum counts them (a process that never refreshes, such as
    # a CLI command, adds nothing).
    multiprocess_mode="livesum",
)
STORE_RESETS = Counter(
    "deployd_store_resets_total",
    "Times a worker found the store replaced or gone back and reloaded everything.",
)

# --- Changes (the event types of deployd.events: publish, rollback, promote, revoke, ...) ---
CHANGES = Counter(
    "deployd_changes_total",
    "Changes recorded in the event log by this server, by type (publish, rollback, promote,"
    " halt, resume, revoke, customer, publisher, instance).",
    ["type"],
)

# --- The fleet and rollouts (read by the background round, the same in every worker) ---
FLEET_INSTANCES = Gauge(
    "deployd_fleet_instances",
    "Instances running each release of each channel (reported, else last served).",
    ["channel", "release"],
    # Every worker reads the same store: the most recent reading, never a sum over workers.
    multiprocess_mode="livemostrecent",
)
RELEASE_HALTED = Gauge(
    "deployd_release_halted",
    "1 while a release of a channel is halted (by its policy or by hand), 0 once resumed.",
    ["channel", "release"],
    # As FLEET_INSTANCES: the same in every worker.
    multiprocess_mode="livemostrecent",
)

# Every metric family name this module defines (what deploy/ dashboards and alerts may use).
ALL = (
    HTTP_REQUESTS,
    HTTP_DURATION,
    SPECS_SERVED,
    SPECS_NOT_MODIFIED,
    LICENSE_REFUSALS,
    RATE_LIMITED,
    LICENSE_CACHE,
    SPEC_CACHE,
    COMPILED_CHANNELS,
    CACHE_BYTES,
    STORE_DURATION,
    STORE_ERRORS,
    VIEW_AGE,
    REVOCATIONS_AGE,
    REVOCATIONS_MAX_STALENESS,
    STORE_UNREACHABLE,
    STORE_RESETS,
    CHANGES,
    FLEET_INSTANCES,
    RELEASE_HALTED,
)


def metric_names() -> frozenset[str]:
    """The exposed family names (counters with their ``_total``)."""
    names = set()
    for metric in ALL:
        for family in metric.describe():
            names.add(family.name + ("_total" if family.type == "counter" else ""))
    return frozenset(names)
