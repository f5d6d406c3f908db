"""What every release-console page shares: the blueprint, who is signed in, CSRF checks and
rendering a page (with its message) in the shared base template (deployd.web)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from deployd import __version__
from deployd.console.sessions import COOKIE_NAME, ConsoleSession, SessionCookies, SignInThrottle
from deployd.errors import DeploydError, PublisherAuthError
from deployd.protocol import CONSOLE_PATH
from deployd.publishers import Publisher, PublisherAuthenticator
from deployd.web.csrf import FORM_FIELD, CsrfTokens

bp = Blueprint("console", __name__, template_folder="templates", url_prefix=CONSOLE_PATH)

EXTENSION = "deployd.console"
CONSOLE_NAME = "deployd release console"
# Pages anyone may open: signing in needs no session.
OPEN_ENDPOINTS = frozenset({"console.sign_in", "console.sign_in_form"})
# A cookie held before signing in, so the sign-in form has a CSRF token too.
PRE_SESSION_COOKIE = "deployd_console_pre"
NAV = (
    ("console.channels", "Channels"),
    ("console.fleet", "Fleet"),
    ("console.customers", "Customers"),
    ("console.licenses", "Licenses"),
    ("console.events", "Events"),
)


@dataclass
class ConsoleState:
    cookies: SessionCookies
    csrf: CsrfTokens
    throttle: SignInThrottle
    authenticator: PublisherAuthenticator


class ConsoleRefusal(DeploydError):
    """A console request refused with a page (never JSON): a bad CSRF token, no session."""


def console_state() -> ConsoleState:
    found: ConsoleState = current_app.extensions[EXTENSION]
    return found


def publisher() -> Publisher:
    """The signed-in publisher (set for every page but sign-in)."""
    found: Publisher = g.console_publisher
    return found


def may(action: str, channel: str | None = None) -> bool:
    """Whether the signed-in publisher's scopes allow `action` (on `channel`)."""
    return publisher().scopes.allows(action, channel)


@bp.before_request
def require_session() -> BaseResponse | None:
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    state = console_state()
    session = state.cookies.read(request.cookies.get(COOKIE_NAME))
    if session is None:
        return _to_sign_in()
    try:
        g.console_publisher = state.authenticator.authenticate_hash(session.token_hash)
    except PublisherAuthError:
        response = _to_sign_in()
        response.delete_cookie(COOKIE_NAME, path=CONSOLE_PATH)
        return response
    g.console_session = session
    if request.method == "POST":
        check_csrf(session.session_id)
    return None


def _to_sign_in() -> BaseResponse:
    if request.method != "GET":
        # A form sent without a session (expired, signed out): say so, change nothing.
        raise ConsoleRefusal(
            "Your session has ended, so nothing was changed. Sign in again.",
            code="console_signed_out",
            status=401,
        )
    return redirect(url_for("console.sign_in_form"), code=303)


def check_csrf(session_id: str) -> None:
    if not console_state().csrf.check(session_id, request.form.get(FORM_FIELD)):
        raise ConsoleRefusal(
            "This form has expired or did not come from this console, so nothing was changed."
            " Reload the page and try again.",
            code="console_csrf",
            status=403,
        )


def csrf_token(pre_session: str | None = None) -> str:
    session: ConsoleSession | None = g.get("console_session")
    session_id = session.session_id if session else pre_session
    return console_state().csrf.issue(session_id) if session_id else ""


def page(
    template: str,
    title: str,
    *,
    status: int = 200,
    csrf_session: str | None = None,
    **context: Any,
) -> Response:
    """The page `template` titled `title`; `error`/`notice` become its message. Forms carry the
    session's CSRF token (before signing in, that of `csrf_session`, the pre-session cookie)."""
    messages = []
    if context.get("error"):
        messages.append({"kind": "error", "text": context["error"]})
    if context.get("notice"):
        messages.append({"kind": "ok", "text": context["notice"]})
    signed_in: Publisher | None = g.get("console_publisher")
    html = render_template(
        template,
        page_title=title,
        console_name=CONSOLE_NAME,
        nav=_nav() if signed_in else [],
        signed_in_as=signed_in.name if signed_in else None,
        sign_out_url=f"{CONSOLE_PATH}/sign-out",
        csrf_token=csrf_token(csrf_session),
        messages=messages,
        deployd_version=__version__,
        may=may if signed_in else (lambda *_: False),
        **context,
    )
    response = make_response(html, status)
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self';"
        " frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _nav() -> list[dict[str, Any]]:
    section = (request.endpoint or "").split("_")[0]
    return [
        {"href": url_for(endpoint), "label": label, "current": endpoint.startswith(section)}
        for endpoint, label in NAV
    ]


@bp.errorhandler(DeploydError)
def refused(error: DeploydError) -> Response:
    """Every refusal inside the console is a page with a readable message, never JSON."""
    return page("console/refused.html", "Not done", status=error.status, error=error.message)
