"""gunicorn settings for deployd (checked in; `Procfile` and docs/operating.md use it)."""

import multiprocessing
import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
# gevent workers: a connection costs a greenlet, not a worker, so clients that send their request
# slowly (slowloris) cannot hold every worker while pollers wait; sync and gthread workers can be
# held (docs/operating.md, "Slow clients"). gunicorn monkey-patches each worker before it loads
# the app, so redis-py and deployd's threads cooperate: never set preload_app, and start threads
# or import deployd in hooks that run after the app is loaded (post_worker_init), not in the
# master.
worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
# Connections a worker serves at once; past that it stops accepting until one closes.
worker_connections = 1000
timeout = 30
graceful_timeout = 20
# With gevent workers this is also the deadline for a whole request head (line and headers), on
# every request of a connection: a client that has not sent one within it is disconnected. Keep it
# above 0 (0 would remove that deadline).
keepalive = 5
# Let oversize Authorization headers reach the app, which answers 431 in JSON.
limit_request_field_size = 65536
limit_request_line = 8190
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(L)ss'
errorlog = "-"


def on_starting(server):
    """Check deployd's configuration once, before any worker starts: a mistake is one
    `deployd: configuration error: ...` line and exit status 3, not a traceback per worker.

    The check runs in a child process (`deployd config check`): importing deployd here would
    import redis-py and ssl into the master before gevent patches the workers. The check keeps
    its metrics to itself (no PROMETHEUS_MULTIPROC_DIR), and the workers' metrics directory is
    made after it (see "Metrics" below)."""
    if getattr(server.app, "app_uri", None) == "deployd.wsgi:app":
        import subprocess
        import sys

        check = [sys.executable, "-m", "deployd.cli.main", "config", "check", "--quiet"]
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        if subprocess.run(check, check=False, env=env).returncode != 0:
            raise SystemExit(server.WORKER_BOOT_ERROR)
    _prepare_metrics_directory()


# --- Background refresh and graceful shutdown
# (deployd/server/refresher.py, deployd/server/draining.py)
# On SIGTERM, /readyz answers 503 for this many seconds while requests are still served; then
# gunicorn's graceful stop (graceful_timeout) begins. 0 stops at once.
drain_seconds = float(os.environ.get("DEPLOYD_DRAIN_SECONDS", "5"))
# Every worker shares the rate limits; tell each how many processes share them (times replicas:
# set DEPLOYD_RATE_LIMIT_PROCESSES yourself when several replicas share one Redis).
os.environ.setdefault("DEPLOYD_RATE_LIMIT_PROCESSES", str(workers))


def when_ready(server):
    from deployd.server import draining

    draining.install(server, drain_seconds)
    _serve_metrics_port(server)


# --- Metrics (deployd/metrics; docs/operating.md, "Metrics")
# prometheus-client's multiprocess mode: every worker writes its values to files in one fresh
# directory, and a scrape reads them all. Made here, in the master, before any worker starts (the
# workers inherit PROMETHEUS_MULTIPROC_DIR); a dead worker's live gauges are dropped
# (child_exit); the directory goes when the master exits (on_exit). deployd.metrics.multiproc
# imports prometheus-client only, never redis-py or Flask.
_metrics_dir = None
_metrics_server = None


def _prepare_metrics_directory():
    global _metrics_dir
    from deployd.metrics import multiproc

    _metrics_dir = multiproc.prepare_directory()


def _serve_metrics_port(server):
    """With DEPLOYD_METRICS_PORT set, the master serves the metrics on that port (only)."""
    global _metrics_server
    from deployd.metrics.access import metrics_enabled
    from deployd.metrics.standalone import MetricsServer
    from deployd.server.settings import settings_from_env

    settings = settings_from_env()
    if settings.metrics_port is not None and metrics_enabled(settings):
        host = os.environ.get("HOST", "0.0.0.0")
        _metrics_server = MetricsServer(host, settings.metrics_port, settings.metrics_token)
        _metrics_server.start()
        server.log.info("serving metrics on %s:%d/metrics", host, settings.metrics_port)


def child_exit(server, worker):
    from deployd.metrics import multiproc

    multiproc.worker_exited(worker.pid)


def on_exit(server):
    from deployd.metrics import multiproc

    if _metrics_server is not None:
        _metrics_server.stop()
    if _metrics_dir is not None:
        multiproc.remove_directory(*_metrics_dir)


def post_worker_init(worker):
    # Refresh the worker's view in the background from the start, not from its first request.
    deployd = getattr(worker.wsgi, "extensions", {}).get("deployd")
    if deployd is not None and deployd.refresher is not None:
        deployd.refresher.ensure_running()


def worker_exit(server, worker):
    from deployd.metrics import tally
    from deployd.server import refresher

    refresher.stop_all()
    tally.flush()  # the counts since the worker's last round (deployd.metrics.tally)
