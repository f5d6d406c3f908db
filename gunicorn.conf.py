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


def on_starting(server):
    """Check deployd's configuration once, in the master, before any worker starts: a mistake is
    one `deployd: configuration error: ...` line and exit status 3, not a traceback per worker."""
    if getattr(server.app, "app_uri", None) == "deployd.wsgi:app":
        from deployd.services import check_configuration_from_env

        check_configuration_from_env(exit_code=server.WORKER_BOOT_ERROR)
