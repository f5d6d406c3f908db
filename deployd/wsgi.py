"""WSGI entry point for gunicorn: `gunicorn -c gunicorn.conf.py deployd.wsgi:app`."""

from deployd.app import create_app
from deployd.config import settings_from_env
from deployd.logs import configure_logging

settings = settings_from_env()
configure_logging(settings.log_level)
app = create_app(settings)
