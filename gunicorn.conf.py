"""gunicorn settings for deployd (checked in; `Procfile` and the README use it)."""

import multiprocessing
import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
# Sync workers: every request is short and CPU-bound, and sync workers spread load evenly.
worker_class = "sync"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
timeout = 30
graceful_timeout = 20
keepalive = 2
# Let oversize Authorization headers reach the app, which answers 431 in JSON.
limit_request_field_size = 65536
limit_request_line = 8190
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss'
errorlog = "-"

# --- Background refresh and graceful shutdown (deployd/refresher.py, deployd/draining.py)
# On SIGTERM, /readyz answers 503 for this many seconds while requests are still served; then
# gunicorn's graceful stop (graceful_timeout) begins. 0 stops at once.
drain_seconds = float(os.environ.get("DEPLOYD_DRAIN_SECONDS", "5"))
# Every worker shares the rate limits; tell each how many processes share them (times replicas:
# set DEPLOYD_RATE_LIMIT_PROCESSES yourself when several replicas share one Redis).
os.environ.setdefault("DEPLOYD_RATE_LIMIT_PROCESSES", str(workers))


def when_ready(server):
    from deployd import draining

    draining.install(server, drain_seconds)


def post_worker_init(worker):
    # Refresh the worker's view in the background from the start, not from its first request.
    deployd = getattr(worker.wsgi, "extensions", {}).get("deployd")
    if deployd is not None and deployd.refresher is not None:
        deployd.refresher.ensure_running()


def worker_exit(server, worker):
    from deployd import refresher

    refresher.stop_all()
