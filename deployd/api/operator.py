"""The operator endpoints: the spec of a license's channel, or of one pinned release.

Two ways in, one answer. A fleet polls `GET /api/v1/operator/channel` over and over with licenses
this worker has already verified, for specs it has already rendered: `fast_spec` answers those
polls from memory on deployd.api.fastpath's plain-WSGI way in. Everything else goes to the Flask
view, which makes every check and renders every error: a license not verified yet, any failed
check, a rate limit that would refuse, a pinned release, a query the fast path does not read.
Both share the steps that pick the spec (`_channel_to_serve`, `_find_spec`) and its headers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, Response, request
from werkzeug.http import parse_etags

from deployd.api.auth import license_from_authorization, license_from_request
from deployd.api.fastpath import Answer, content_length
from deployd.customers.layering import (
    chosen_release,
    default_channel,
    may_read,
    may_replace_selection,
)
from deployd.errors import LicenseError, NotFoundError
from deployd.fleet.instances import Caller
from deployd.licensing.tokens import VerifiedLicense
from deployd.protocol import CURRENT_VERSION_HEADER, PINNED_SPEC_PATH, SIGNATURE_HEADER, SPEC_PATH
from deployd.server.services import Services, services
from deployd.specs.rendering import RenderedSpec

bp = Blueprint("operator", __name__)

SPEC_CACHE_CONTROL = "private, no-cache"
SPEC_VARY = f"Authorization, {CURRENT_VERSION_HEADER}"
_CURRENT_VERSION_ENVIRON = "HTTP_" + CURRENT_VERSION_HEADER.upper().replace("-", "_")
# The only query the fast path reads itself; anything else is parsed by Flask.
_CHANNEL_QUERY = re.compile(r"channel=([a-z0-9][a-z0-9-]{0,62})")


@bp.route(SPEC_PATH, methods=["GET", "POST"])
def channel_spec() -> Response:
    # POST is what older W&B operators send (with their active spec as body, which is ignored).
    return _serve_spec(pinned=None)


@bp.get(PINNED_SPEC_PATH)
def pinned_spec(release_id: str) -> Response:
    return _serve_spec(pinned=release_id)


def _serve_spec(*, pinned: str | None) -> Response:
    deployd = services()
    deployd.limit_address(request.remote_addr)
    asked = request.args.get("channel") or None
    unverified_license = license_from_request(request)
    license = None
    if unverified_license is not None:
        license = deployd.verify_license(unverified_license)
        deployd.limit_license(license)
    name, customer = _channel_to_serve(deployd, license, asked)
    instance = _identify(deployd, request.environ, license)
    spec = _find_spec(
        deployd,
        name,
        customer,
        pinned=pinned,
        current_version=_current_version(
            deployd, request.headers.get(CURRENT_VERSION_HEADER) or None, instance
        ),
    )
    _check_in(deployd, instance, license, name, spec)
    headers = spec_headers(spec)
    if request.if_none_match.contains_weak(spec.etag.strip('"')):
        _count_spec(deployd, name, spec, not_modified=True)
        return Response(status=304, headers=headers)
    _count_spec(deployd, name, spec, not_modified=False)
    return Response(spec.body, status=200, headers=headers, content_type="application/json")


def _channel_to_serve(
    deployd: Services, license: VerifiedLicense | None, asked: str | None
) -> tuple[str, str | None]:
    """(channel name, customer) for this caller; LicenseError when not allowed.

    The customer's record, when there is one, is layered over the license's claims
    (deployd.customers.layering): it may assign the default channel and add readable ones.

    The customer (the license's `sub`, None without a license) is what rollout cohorts and the
    per-caller cache of release choices are keyed on, on the fast path and in the Flask view
    alike: a renewed license (new `jti`, same `sub`) gets the same release as the one it renews.
    """
    if license is None:
        anonymous = deployd.settings.anonymous_channel
        if anonymous is None or asked not in (None, anonymous):
            raise LicenseError(
                "missing",
                "a license is required: send HTTP Basic auth with user 'license' and the license"
                " as password, or 'Authorization: Bearer <license>'",
            )
        return anonymous, None
    # The customer record (deployd.customers.layering) may assign a channel or add some.
    record = deployd.customer_record(license.customer)
    name = asked or default_channel(record, license)
    if not may_read(record, license, name):
        raise LicenseError("channel_not_allowed", f"this license may not read channel {name!r}")
    return name, license.customer


def _identify(
    deployd: Services, environ: Mapping[str, Any], license: VerifiedLicense | None
) -> tuple[str, Caller] | None:
    """The caller's instance (key and headers), None without a license or fleet recording.
    BadRequestError for a malformed instance header; InstanceLimitError for a new instance
    past the license's maxInstances."""
    if deployd.fleet is None or license is None:
        return None
    return deployd.fleet.identify(environ, license)


def _current_version(
    deployd: Services, header: str | None, instance: tuple[str, Caller] | None
) -> str | None:
    """The release the caller runs: what it says (Deployd-Current-Version), else what the server
    knows of its instance (the release it reported running, else the one last served to it)."""
    if header is not None or instance is None or deployd.fleet is None:
        return header
    return deployd.fleet.current_release(instance[0])


def _check_in(
    deployd: Services,
    instance: tuple[str, Caller] | None,
    license: VerifiedLicense | None,
    channel: str,
    spec: RenderedSpec,
) -> None:
    if instance is not None and license is not None and deployd.fleet is not None:
        key, caller = instance
        deployd.fleet.check_in(key, license, caller, channel=channel, served=spec.release)


def _find_spec(
    deployd: Services,
    name: str,
    customer: str | None,
    *,
    pinned: str | None,
    current_version: str | None,
) -> RenderedSpec:
    """The rendered spec of the pinned release, or of the one selected for this caller: the
    customer record's pin or hold (deployd.customers.layering), else the channel's selection."""
    now = time.time()
    record = deployd.customer_record(customer) if pinned is None else None
    if pinned is None and not may_replace_selection(record, current_version):
        # A repeat poll: the spec this caller was given at the channel's newest sequence, from
        # memory, without the compiled channel (which a large store does not keep for every
        # channel, deployd.server.view).
        sequence = deployd.state.sequence(name)
        if sequence is not None:
            spec = deployd.specs.remembered(
                name,
                sequence=sequence,
                customer=customer,
                current_version=current_version,
                now=now,
                halted=deployd.state.halted(name),
            )
            if spec is not None:
                return spec
    found = deployd.state.channel(name)
    if found is None:
        raise NotFoundError(f"no channel named {name!r}", code="unknown_channel")
    sequence, channel = found
    if pinned is None:
        # A record's pin or hold replaces the selection, so it never enters the choices cache.
        chosen = chosen_release(record, channel, current_version)
        if chosen is not None:
            return deployd.specs.get(channel, chosen, sequence=sequence, now=now)
        return deployd.specs.select(
            channel,
            sequence=sequence,
            customer=customer,
            current_version=current_version,
            now=now,
            halted=deployd.state.halted(name),
        )
    release = channel.release(pinned)
    if release is None:
        raise NotFoundError(f"channel {name!r} has no release {pinned!r}", code="unknown_release")
    return deployd.specs.get(channel, release, sequence=sequence, now=now)


def _count_spec(deployd: Services, channel: str, spec: RenderedSpec, *, not_modified: bool) -> None:
    """Count the spec answered (deployd.metrics; nothing while metrics are off)."""
    counter = deployd.spec_counter
    if counter is None:
        return
    if not_modified:
        counter.not_modified(channel)
    else:
        counter.served(channel, spec.release)


def spec_headers(spec: RenderedSpec) -> list[tuple[str, str]]:
    """The headers of a spec answer, 200 or 304 (besides Content-Type and Content-Length)."""
    return [
        ("ETag", spec.etag),
        ("Cache-Control", SPEC_CACHE_CONTROL),
        ("Vary", SPEC_VARY),
        (SIGNATURE_HEADER, spec.signature),
    ]


def fast_spec(deployd: Services, environ: dict[str, Any]) -> Answer | None:
    """The fast path's answer to a repeat poll of the spec endpoint (see deployd.api.fastpath):
    a 200 or 304 from memory, or None when the Flask view must answer."""
    if environ.get("REQUEST_METHOD") not in ("GET", "POST"):
        return None
    length = content_length(environ)
    if length is None or length > deployd.settings.max_body_bytes:
        return None
    query = environ.get("QUERY_STRING")
    asked = None
    if query:
        match = _CHANNEL_QUERY.fullmatch(query)
        if match is None:
            return None
        asked = match.group(1)
    address = environ.get("REMOTE_ADDR")
    if not deployd.address_allowed(address):
        return None
    unverified_license = license_from_authorization(environ.get("HTTP_AUTHORIZATION"))
    license = None
    if unverified_license is not None:
        license = deployd.verifier.lookup(unverified_license)
        if license is None or not deployd.license_allowed(license):
            return None
    name, customer = _channel_to_serve(deployd, license, asked)
    instance = _identify(deployd, environ, license)
    spec = _find_spec(
        deployd,
        name,
        customer,
        pinned=None,
        current_version=_current_version(
            deployd, environ.get(_CURRENT_VERSION_ENVIRON) or None, instance
        ),
    )
    # The answer is decided; counting it and noting the check-in are the only changes the fast
    # path makes (both in memory).
    deployd.count_request(address, license)
    _check_in(deployd, instance, license, name, spec)
    headers = spec_headers(spec)
    if _not_modified(environ.get("HTTP_IF_NONE_MATCH"), spec.etag):
        _count_spec(deployd, name, spec, not_modified=True)
        return Answer("304 NOT MODIFIED", headers, b"")
    _count_spec(deployd, name, spec, not_modified=False)
    headers.append(("Content-Type", "application/json"))
    headers.append(("Content-Length", str(len(spec.body))))
    return Answer("200 OK", headers, spec.body)


def _not_modified(if_none_match: str | None, etag: str) -> bool:
    """What `request.if_none_match.contains_weak` says, without parsing the common exact echo."""
    if if_none_match is None:
        return False
    if if_none_match == etag:
        return True
    return parse_etags(if_none_match).contains_weak(etag.strip('"'))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
