"""WSGI entry point for gunicorn: `gunicorn -c gunicorn.conf.py deployd.wsgi:app`.

The master has checked the configuration already (the `on_starting` hook in gunicorn.conf.py). A
worker that still meets a configuration error prints its one line and exits with gunicorn's
boot-error status, on which the master stops instead of forking new workers.
"""

from flask import Flask
from gunicorn.arbiter import Arbiter

from deployd.logs import configure_logging
from deployd.server.app import create_app
from deployd.server.settings import exit_on_config_error, settings_from_env


def _create_app() -> Flask:
    with exit_on_config_error(Arbiter.WORKER_BOOT_ERROR):
        settings = settings_from_env()
        configure_logging(settings.log_level)
        return create_app(settings)


app = _create_app()
