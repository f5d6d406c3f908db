"""The system console's Flask app: status, the three layers and their merge, the channel's
releases, and the controls (apply now, pause, resume, pin), behind a password.

Every page but sign-in needs a session; every POST needs the session's CSRF token and, when the
browser sends one, an ``Origin`` of this console. A bad form input re-renders its page with a
readable message (status 400) and changes nothing.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, g, jsonify, redirect, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from deployd import __version__
from deployd.agentconsole.control import AgentControl
from deployd.agentconsole.password import PasswordFile
from deployd.agentconsole.sessions import LoginLimiter, Session, SessionStore
from deployd.agentconsole.uservalues import UserValuesFile, with_pin
from deployd.agentconsole.views import (
    ReleaseCatalog,
    as_yaml,
    license_info,
    preview,
    when,
)
from deployd.client.errors import FetchError, InputError
from deployd.client.hierarchy import RELEASE_PIN_KEY
from deployd.errors import ConfigError
from deployd.web import assets_blueprint
from deployd.web.csrf import FORM_FIELD, CsrfTokens

logger = logging.getLogger(__name__)

SESSION_COOKIE = "deployd_console"
MAX_FORM_BYTES = 2 * 1024 * 1024
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: Chromium then sends `Origin: null` with same-site forms.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_PUBLIC_ENDPOINTS = {"login", "sign_in", "web.static"}
CONSOLE_NAME = "deployd system console"
PAUSED_WARNING = (
    "Updates are paused: the agent polls but applies nothing until you resume or apply now."
)
_NAV = (("/", "Status"), ("/values", "Values"), ("/releases", "Releases"))


@dataclass
class ConsoleContext:
    """What the console works on; one per agent."""

    control: AgentControl
    values_file: UserValuesFile
    passwords: PasswordFile
    sessions: SessionStore = field(default_factory=SessionStore)
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    clock: Callable[[], float] = time.time
    catalog: ReleaseCatalog | None = None
    csrf: CsrfTokens = field(default_factory=lambda: CsrfTokens(secrets.token_bytes(32)))
    # Host names the console answers to (None: any). A loopback console answers only to
    # loopback names, so a site that rebinds its own name to 127.0.0.1 reaches nothing.
    allowed_hosts: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if self.catalog is None:
            self.catalog = ReleaseCatalog(self.control.poller)

    @property
    def secrets(self) -> tuple[str, ...]:
        license = self.control.poller.config.license
        return (license,) if license else ()


def create_console_app(context: ConsoleContext) -> Flask:
    app = Flask(__name__, static_folder=None)  # the shared assets blueprint serves /static
    app.config["MAX_CONTENT_LENGTH"] = MAX_FORM_BYTES
    app.extensions["deployd_console"] = context
    app.register_blueprint(assets_blueprint())

    @app.before_request
    def authenticate() -> BaseResponse | None:
        g.session = None
        _check_host(context.allowed_hosts)
        g.session = _current_session(context)
        if request.method == "POST":
            _check_origin()
            if request.endpoint != "sign_in":
                _check_csrf(context, g.session)
        if g.session is None and request.endpoint not in _PUBLIC_ENDPOINTS:
            return redirect("/login", code=303)
        return None

    @app.after_request
    def secure(response: Response) -> Response:
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response | str, int]:
        status = error.code or 500
        code = getattr(error, "console_code", None) or (error.name or "error").lower().replace(
            " ", "_"
        )
        message = error.description or error.name or "error"
        if request.accept_mimetypes.accept_html:
            g.session = None  # an error page offers no forms
            page = _page("error.html", context, status, title=f"{status}: {code}", error=message)
            return page, status
        return jsonify({"error": {"code": code, "message": message}}), status

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> tuple[Response | str, int]:
        logger.exception("the system console failed on %s %s", request.method, request.path)
        return http_error(ConsoleRefusal(500, "internal_error", "the console failed; see the log"))

    _routes(app, context)
    return app


class ConsoleRefusal(HTTPException):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.code = status
        self.console_code = code


def _current_session(context: ConsoleContext) -> Session | None:
    stored = context.passwords.load()
    if stored is None:
        return None
    return context.sessions.get(request.cookies.get(SESSION_COOKIE), stored.stamp)


def _check_host(allowed: frozenset[str] | None) -> None:
    if allowed is not None and (urlsplit(f"//{request.host}").hostname or "") not in allowed:
        raise ConsoleRefusal(421, "unknown_host", "this console does not answer to that host name")


def _check_origin() -> None:
    origin = request.headers.get("Origin")
    if origin is None:
        return
    if urlsplit(origin).netloc != request.host:
        raise ConsoleRefusal(403, "cross_origin", "this form was sent from another site")


def _check_csrf(context: ConsoleContext, session: Session | None) -> None:
    if session is None:
        raise ConsoleRefusal(403, "signed_out", "sign in again: your session has ended")
    if not context.csrf.check(session.id, request.form.get(FORM_FIELD)):
        raise ConsoleRefusal(
            403, "csrf_failed", "the form is out of date or was not sent by this console"
        )


def _page(
    template: str,
    context: ConsoleContext,
    status: int = 200,
    *,
    title: str,
    error: str | None = None,
    notice: str | None = None,
    warning: str | None = None,
    **values: Any,
) -> Response:
    session: Session | None = g.get("session")
    shown = (("error", error), ("warn", warning), ("ok", notice))
    messages = [{"kind": kind, "text": text} for kind, text in shown if text]
    body = render_template(
        f"agentconsole/{template}",
        page_title=title,
        console_name=CONSOLE_NAME,
        deployd_version=__version__,
        nav=[
            {"href": href, "label": label, "current": request.path == href} for href, label in _NAV
        ]
        if session
        else [],
        signed_in_as="administrator" if session else None,
        sign_out_url="/logout",
        csrf_token=context.csrf.issue(session.id) if session else "",
        messages=messages,
        status=context.control.status,
        paused=context.control.status.paused,
        **values,
    )
    return Response(body, status=status, mimetype="text/html")


def _routes(app: Flask, context: ConsoleContext) -> None:
    control = context.control
    poller = control.poller

    @app.get("/login")
    def login() -> BaseResponse:
        return _page("login.html", context, title="Sign in")

    @app.post("/login")
    def sign_in() -> BaseResponse:
        wait = context.limiter.retry_after()
        if wait > 0:
            message = f"Too many failed sign-ins: try again in {math.ceil(wait)} seconds."
            limited = _page("login.html", context, 429, title="Sign in", error=message)
            limited.headers["Retry-After"] = str(math.ceil(wait))
            return limited
        stored = context.passwords.load()
        if stored is None or not stored.matches(request.form.get("password", "")):
            context.limiter.failed()
            logger.warning("a sign-in to the system console failed")
            return _page(
                "login.html", context, 401, title="Sign in", error="That password is not right."
            )
        session = context.sessions.create(stored.stamp)
        logger.info("signed in to the system console")
        response: BaseResponse = redirect("/", code=303)
        response.set_cookie(
            SESSION_COOKIE,
            session.id,
            max_age=int(context.sessions.ttl),
            httponly=True,
            secure=request.is_secure,
            samesite="Strict",
            path="/",
        )
        return response

    @app.post("/logout")
    def sign_out() -> BaseResponse:
        context.sessions.drop(request.cookies.get(SESSION_COOKIE))
        response = redirect("/login", code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Strict")
        return response

    @app.get("/")
    def status() -> BaseResponse:
        spec = poller.held_spec
        applied = poller.applied
        return _page(
            "status.html",
            context,
            title="Status",
            warning=PAUSED_WARNING if control.status.paused else None,
            channel=poller.expected_channel,
            held_release=spec.release if spec else None,
            running=applied.release if applied else None,
            applied_at=applied.applied_at if applied else None,
            pinned=control.pinned_release,
            license=license_info(poller.config.license, context.clock()),
            when=when,
        )

    @app.post("/control/<action>")
    def act(action: str) -> BaseResponse:
        actions = {"apply": control.apply_now, "pause": control.pause, "resume": control.resume}
        if action not in actions:
            raise ConsoleRefusal(404, "not_found", f"no control named {action!r}")
        actions[action]()
        return redirect("/", code=303)

    def values_page(text: str, status: int = 200, **extra: Any) -> Response:
        return _page(
            "values.html",
            context,
            status,
            title="Values",
            text=text,
            values_path=str(context.values_file.path),
            channel_yaml=_channel_layer(),
            cr_yaml=_cr_layer(),
            **extra,
        )

    def _channel_layer() -> str:
        spec = poller.held_spec
        if spec is None:
            return "# no channel spec held yet\n"
        layer = {"chart": dict(spec.chart), "values": dict(spec.values)}
        return as_yaml(layer, secrets=context.secrets)

    def _cr_layer() -> str:
        cr = poller.custom_resource
        if cr is None:
            return "# no custom resource\n"
        return as_yaml({"chart": cr.chart, "values": dict(cr.values)}, secrets=context.secrets)

    @app.get("/values")
    def values() -> BaseResponse:
        text = context.values_file.text()
        shown = preview(poller, poller.user_values, secrets=context.secrets)
        return values_page(text, preview=shown)

    @app.post("/values")
    def change_values() -> BaseResponse:
        text = request.form.get("values", "")
        try:
            parsed = context.values_file.parse(text)
            shown = preview(poller, parsed, secrets=context.secrets)
            if request.form.get("action") != "save":
                return values_page(text, preview=shown, previewing=True)
            poller_check(parsed)
            context.values_file.save(text)
        except (InputError, ConfigError) as e:
            return values_page(text, 400, error=e.message)
        control.set_user_values(parsed)
        logger.info("user values saved in the system console to %s", context.values_file.path)
        notice = f"Saved to {context.values_file.path}; the agent applies the result now"
        notice += " (updates are paused: on resume)." if control.status.paused else "."
        return values_page(context.values_file.text(), preview=shown, notice=notice)

    def poller_check(values: dict[str, Any]) -> None:
        pin = values.get(RELEASE_PIN_KEY)
        if pin is not None and poller.config.release and pin.strip() != poller.config.release:
            raise InputError(
                f"the agent was started with --release {poller.config.release}, which overrides"
                f" {RELEASE_PIN_KEY} in the user values"
            )

    @app.get("/releases")
    def releases() -> BaseResponse:
        assert context.catalog is not None
        try:
            offered, problem = context.catalog.releases(), None
        except FetchError as e:
            offered, problem = [], e.message
        return _page(
            "releases.html",
            context,
            title="Releases",
            releases=offered,
            error=problem,
            pinned=control.pinned_release,
            held_release=poller.held_spec.release if poller.held_spec else None,
        )

    @app.post("/releases/pin")
    def pin() -> BaseResponse:
        release = request.form.get("release", "").strip() or None
        if release is not None and (len(release) > 128 or not release.isprintable()):
            return _pin_refused("That is not a release id.")
        try:
            text = with_pin(context.values_file.text(), release)
            parsed = context.values_file.parse(text)
            poller_check(parsed)
            context.values_file.save(text)
        except (InputError, ConfigError) as e:
            return _pin_refused(e.message)
        control.set_user_values(parsed)
        logger.info("release pin set to %s in the system console", release or "none")
        return redirect("/releases", code=303)

    def _pin_refused(message: str) -> Response:
        return _page(
            "releases.html",
            context,
            400,
            title="Releases",
            releases=[],
            error=message,
            pinned=control.pinned_release,
            held_release=poller.held_spec.release if poller.held_spec else None,
        )
