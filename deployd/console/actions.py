"""What the release console changes: signing in and out, and each channel and license action,
each after a confirmation page. Every action calls the same domain function as its JSON API
endpoint, after the same scope check (`require_scope`), so a button a publisher may not use is
refused here even when a form is forged. Bad input is a message on the page; nothing changes."""

from __future__ import annotations

import copy
import secrets
from dataclasses import dataclass

from flask import Response, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from deployd.api.licenses import license_verdict
from deployd.channels import channel_from_document
from deployd.console.context import (
    PRE_SESSION_COOKIE,
    bp,
    check_csrf,
    console_state,
    page,
    publisher,
)
from deployd.console.pages import channel_page
from deployd.console.sessions import COOKIE_NAME
from deployd.errors import BadRequestError, DeploydError, NotFoundError, PublisherAuthError
from deployd.licensing.revocation import revoke_license
from deployd.protocol import CONSOLE_PATH
from deployd.publishers import PROMOTE, PUBLISH, REVOKE, ROLLBACK, ROLLOUT, require_scope
from deployd.publishers.tokens import token_hash
from deployd.publishing import PublishResult, promote_release, publish_channel, rollback_channel
from deployd.publishing.sources import document_source
from deployd.server.services import services

MAX_TEXT = 16_384  # a pasted license or token
MAX_REASON = 1000
HALT, RESUME, SET_ROLLOUT, ROLL_BACK, PROMOTE_RELEASE = (
    "halt",
    "resume",
    "rollout",
    "rollback",
    "promote",
)
SCOPE_OF = {
    HALT: ROLLOUT,
    RESUME: ROLLOUT,
    SET_ROLLOUT: PUBLISH,
    ROLL_BACK: ROLLBACK,
    PROMOTE_RELEASE: PROMOTE,
}


# --- signing in and out ---


@bp.get("/sign-in")
def sign_in_form() -> Response:
    # The form's CSRF token is bound to a cookie of its own until there is a session.
    pre = _pre_session() or secrets.token_urlsafe(18)
    response = page("console/sign_in.html", "Sign in", csrf_session=pre)
    _set_cookie(response, PRE_SESSION_COOKIE, pre, max_age=3600)
    return response


def _pre_session() -> str:
    value = request.cookies.get(PRE_SESSION_COOKIE, "")
    return value if 0 < len(value) <= 64 else ""


@bp.post("/sign-in")
def sign_in() -> BaseResponse:
    state = console_state()
    address = request.remote_addr or "unknown"
    pre = _pre_session()
    check_csrf(pre)
    if not state.throttle.allows(address):
        return page(
            "console/sign_in.html",
            "Sign in",
            status=429,
            csrf_session=pre,
            error="Too many failed sign-ins from your address: wait a minute.",
        )
    token = request.form.get("token", "").strip()
    try:
        if len(token) > MAX_TEXT:
            raise PublisherAuthError("that is not a publisher token")
        state.authenticator.authenticate(token)
    except PublisherAuthError as e:
        state.throttle.failed(address)
        return page(
            "console/sign_in.html",
            "Sign in",
            status=401,
            csrf_session=pre,
            error=f"Not signed in: {e.message}.",
        )
    cookie, _ = state.cookies.open(token_hash(token))
    response = redirect(url_for("console.channels"), code=303)
    _set_cookie(response, COOKIE_NAME, cookie, max_age=state.cookies.lifetime)
    response.delete_cookie(PRE_SESSION_COOKIE, path=CONSOLE_PATH)
    return response


@bp.post("/sign-out")
def sign_out() -> BaseResponse:
    response = redirect(url_for("console.sign_in_form"), code=303)
    response.delete_cookie(COOKIE_NAME, path=CONSOLE_PATH)
    return response


def _set_cookie(response: BaseResponse, name: str, value: str, *, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=CONSOLE_PATH,
        httponly=True,
        secure=_served_over_tls(),
        samesite="Strict",
    )


def _served_over_tls() -> bool:
    if request.is_secure:
        return True
    # Behind trusted proxies (DEPLOYD_TRUSTED_PROXIES), the proxy says how it was reached.
    trusted = services().settings.trusted_proxies
    return bool(trusted) and request.headers.get("X-Forwarded-Proto", "") == "https"


# --- channel actions ---


@dataclass(frozen=True)
class ChannelAction:
    action: str
    release: str = ""
    rollout: int | None = None
    sequence: int | None = None
    source: str = ""
    reason: str = ""

    def describe(self, channel: str) -> str:
        if self.action == HALT:
            return f"Halt release {self.release} of {channel}: it stops reaching new clusters."
        if self.action == RESUME:
            return f"Resume release {self.release} of {channel}: it reaches clusters again."
        if self.action == SET_ROLLOUT:
            return f"Publish {channel} with release {self.release} at {self.rollout}% rollout."
        if self.action == ROLL_BACK:
            return f"Publish sequence {self.sequence} of {channel} again, as a new sequence."
        rollout = "" if self.rollout is None else f" at {self.rollout}% rollout"
        return f"Promote release {self.release} from {self.source} to {channel}{rollout}."


def parse_action(channel: str, form: dict[str, str]) -> ChannelAction:
    """The action a form asks for; BadRequestError with a readable message when it is wrong."""
    action = form.get("action", "")
    if action not in SCOPE_OF:
        raise BadRequestError("Unknown action.")
    release = form.get("release", "").strip()
    if action in (HALT, RESUME, SET_ROLLOUT, PROMOTE_RELEASE) and not release:
        raise BadRequestError("Name the release.")
    reason = form.get("reason", "")
    if len(reason) > MAX_REASON:
        raise BadRequestError(f"The reason is longer than {MAX_REASON} characters.")
    return ChannelAction(
        action,
        release=release[:200],
        rollout=_rollout(form.get("rollout", ""), required=action == SET_ROLLOUT),
        sequence=_sequence(form.get("sequence", "")) if action == ROLL_BACK else None,
        source=_source(channel, form.get("from", "")) if action == PROMOTE_RELEASE else "",
        reason=reason,
    )


def _rollout(text: str, *, required: bool) -> int | None:
    text = text.strip()
    if not text and not required:
        return None
    if not text.isdigit() or not 0 <= int(text) <= 100:
        raise BadRequestError("The rollout must be a whole number from 0 to 100.")
    return int(text)


def _sequence(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise BadRequestError("Name the sequence to roll back to (a whole number from 1).")
    return int(text)


def _source(channel: str, source: str) -> str:
    if source == channel or services().state.channel(source) is None:
        raise BadRequestError("Pick the channel to promote from (another existing channel).")
    return source


@bp.get("/channels/<name>/confirm")
def confirm(name: str) -> Response:
    try:
        action = parse_action(name, dict(request.args))
        require_scope(publisher(), SCOPE_OF[action.action], name)
    except BadRequestError as e:
        return channel_page(name, status=400, error=f"Nothing was changed: {e.message}")
    return page(
        "console/confirm.html", "Confirm", name=name, action=action, what=action.describe(name)
    )


@bp.post("/channels/<name>/act")
def act(name: str) -> Response:
    try:
        action = parse_action(name, dict(request.form))
        require_scope(publisher(), SCOPE_OF[action.action], name)
        done = _run(name, action)
    except (BadRequestError, NotFoundError) as e:
        return channel_page(name, status=e.status, error=f"Nothing was changed: {e.message}")
    except DeploydError as e:
        if e.status >= 500 or e.status in (401, 403):
            raise
        return channel_page(name, status=e.status, error=f"Nothing was changed: {e.message}")
    return channel_page(name, notice=done)


def _run(name: str, action: ChannelAction) -> str:
    deployd = services()
    by = publisher().name
    if action.action in (HALT, RESUME):
        rollouts = deployd.rollouts
        assert rollouts is not None
        change = rollouts.halt if action.action == HALT else rollouts.resume
        changed = change(name, action.release, by=by, reason=action.reason)
        deployd.state.refresh(force=True)
        verb = "halted" if action.action == HALT else "resumed"
        return f"Release {action.release} {verb}." if changed else f"Already {verb}."
    if action.action == SET_ROLLOUT:
        assert action.rollout is not None
        result = _publish_rollout(name, action.release, action.rollout, by)
    elif action.action == ROLL_BACK:
        assert action.sequence is not None
        result = rollback_channel(deployd.store, name, action.sequence, publisher=by)
    else:
        result = promote_release(
            deployd.store,
            source=action.source,
            target=name,
            version=action.release,
            publisher=by,
            rollout=action.rollout,
        ).result
    deployd.state.refresh(force=True)
    if not result.changed:
        return "Nothing to change: the channel already says that."
    return f"Published sequence {result.record.sequence}: {result.record.summary}"


def _publish_rollout(name: str, version: str, rollout: int, by: str) -> PublishResult:
    store = services().store
    record = store.get_channel(name)
    if record is None:
        raise NotFoundError(f"There is no channel named {name!r}.")
    document = copy.deepcopy(record.document)
    matches = [r for r in document.get("releases", ()) if r.get("version") == version]
    if not matches:
        raise NotFoundError(f"Channel {name!r} has no release {version!r}.")
    matches[0]["rollout"] = rollout
    channel = channel_from_document(document, filename=f"{name}.yaml", expected_name=name)
    return publish_channel(
        store,
        channel,
        source=document_source(document),
        publisher=by,
        expected_sequence=record.sequence,
    )


# --- licenses ---


@bp.get("/licenses")
def licenses() -> Response:
    return page("console/licenses.html", "Licenses", verdict=None)


@bp.post("/licenses")
def inspect_license() -> Response:
    text = request.form.get("license", "").strip()
    if not text or len(text) > MAX_TEXT:
        return page(
            "console/licenses.html",
            "Licenses",
            status=400,
            verdict=None,
            error="Paste a license (a JWT, at most 16 KB).",
        )
    return page("console/licenses.html", "Licenses", verdict=license_verdict(services(), text))


def _licenses_refusal(error: BadRequestError) -> Response:
    """The licenses page again, saying why nothing was changed."""
    return page(
        "console/licenses.html",
        "Licenses",
        status=400,
        verdict=None,
        error=f"Nothing was changed: {error.message}",
    )


@bp.get("/licenses/revoke")
def confirm_revoke() -> Response:
    jti = request.args.get("jti", "")
    try:
        require_scope(publisher(), REVOKE)
        _check_jti(jti)
    except BadRequestError as e:
        return _licenses_refusal(e)
    return page("console/confirm_revoke.html", "Confirm", jti=jti)


@bp.post("/licenses/revoke")
def revoke() -> Response:
    jti = request.form.get("jti", "")
    reason = request.form.get("reason", "")
    try:
        require_scope(publisher(), REVOKE)
        _check_jti(jti)
        if len(reason) > MAX_REASON:
            raise BadRequestError(f"The reason is longer than {MAX_REASON} characters.")
    except BadRequestError as e:
        return _licenses_refusal(e)
    deployd = services()
    newly = revoke_license(deployd.store, jti, reason=reason, by=publisher().name)
    deployd.state.refresh(force=True)
    notice = f"License {jti} revoked." if newly else f"License {jti} was already revoked."
    return page("console/licenses.html", "Licenses", verdict=None, notice=notice)


def _check_jti(jti: str) -> None:
    if not jti or len(jti) > 128 or not jti.isprintable():
        raise BadRequestError("That is not a license id (the license's jti claim).")
