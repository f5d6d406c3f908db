"""The release console: server-rendered pages at /console for release engineers, signed in
with a publisher token (docs/consoles.md). Pages read and change through the same domain
functions as the JSON API; the shared template, stylesheet, charts and CSRF tokens are in
deployd.web."""

from __future__ import annotations

from flask import Flask

from deployd.console import actions, pages  # noqa: F401  (their routes are on the blueprint)
from deployd.console.context import EXTENSION, ConsoleState, bp
from deployd.console.sessions import SessionCookies, SignInThrottle, console_secrets
from deployd.protocol import CONSOLE_PATH
from deployd.publishers import PublisherAuthenticator
from deployd.web import assets_blueprint
from deployd.web.csrf import CsrfTokens


def init_app(app: Flask, authenticator: PublisherAuthenticator) -> None:
    """Serve the console on `app`, signing sessions with a key derived from its signing key."""
    session_key, csrf_key = console_secrets(app.extensions["deployd"].signer.private_key)
    app.extensions[EXTENSION] = ConsoleState(
        cookies=SessionCookies(session_key),
        csrf=CsrfTokens(csrf_key),
        throttle=SignInThrottle(),
        authenticator=authenticator,
    )
    app.register_blueprint(bp)
    app.register_blueprint(assets_blueprint(CONSOLE_PATH))
