"""The checks of `deployd verify --server URL`: the way to the server (URL, DNS, TCP, TLS, clock),
the license with the server, and the channel spec it serves, fetched and verified with the
agent's own client code; then the local checks (`deployd.client.local_checks`)."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import SplitResult, urlencode, urlsplit

import certifi
from cryptography import x509

from deployd import __version__
from deployd.client import local_checks
from deployd.client.checkup import Check, Outcome, failed, passed, register_check_source, skipped
from deployd.client.config import check_server_url
from deployd.client.errors import SpecRefusedError
from deployd.client.fetch import HttpFetcher, HttpResponse
from deployd.client.poller import error_details
from deployd.client.site import Checkup
from deployd.client.trust import trusting_session
from deployd.client.verify import BAD_SIGNATURE, UNKNOWN_KEY, WRONG_CHANNEL, verify_spec
from deployd.protocol import (
    HEALTH_PATH,
    INSTANCE_ID_HEADER,
    JWKS_PATH,
    SIGNATURE_HEADER,
    SPEC_PATH,
    VALIDATE_PATH,
    pinned_spec_path,
    rfc3339,
)

USER_AGENT = f"deployd-verify/{__version__}"
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0
# Beyond this, expiry times in specs and licenses are judged wrongly by one side.
MAX_CLOCK_SKEW_SECONDS = 60.0
LOOPBACK = ("127.0.0.1", "::1", "localhost")

TLS_HINT = (
    "trust the CA that signed the server's certificate: --ca-bundle FILE or DIR (a mounted"
    " ConfigMap of *.crt), or customCACerts in the custom-resource values"
)


def _parts(checkup: Checkup) -> SplitResult:
    assert checkup.site.options.server is not None
    return urlsplit(checkup.site.options.server)


def _port(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


def _fetcher(checkup: Checkup) -> HttpFetcher:
    return HttpFetcher(
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        total_timeout=2 * READ_TIMEOUT,
        max_body_bytes=4 * 1024 * 1024,
        ca_trust=checkup.site.ca_trust,
    )


def _base(checkup: Checkup) -> str:
    assert checkup.site.options.server is not None
    return checkup.site.options.server.rstrip("/")


def check_url(checkup: Checkup) -> Outcome:
    server = checkup.site.options.server
    assert server is not None
    check_server_url(server)
    return passed(f"{server} is the base URL of a server", url=server)


def check_dns(checkup: Checkup) -> Outcome:
    parts = _parts(checkup)
    host = parts.hostname or ""
    try:
        found = socket.getaddrinfo(host, _port(parts), type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        return failed(
            f"cannot resolve {host}: {e.strerror}",
            "check the host name, and that the cluster's DNS (or /etc/hosts) knows it",
        )
    addresses = list(dict.fromkeys((str(info[4][0]), int(info[4][1])) for info in found))
    checkup.addresses = addresses
    shown = ", ".join(address for address, _ in addresses)
    return passed(f"{host} resolves to {shown}", addresses=[address for address, _ in addresses])


def check_tcp(checkup: Checkup) -> Outcome:
    parts = _parts(checkup)
    errors = []
    for address in checkup.addresses:
        try:
            with socket.create_connection(address, timeout=CONNECT_TIMEOUT):
                return passed(f"connected to {address[0]} port {address[1]}", address=address[0])
        except OSError as e:
            errors.append(f"{address[0]}: {e.strerror or e}")
    return failed(
        f"cannot connect to {parts.hostname} port {_port(parts)} ({'; '.join(errors)})",
        "check that the server runs and listens there, and that no firewall, proxy or"
        " NetworkPolicy blocks the way from the cluster",
    )


def check_tls(checkup: Checkup) -> Outcome:
    parts = _parts(checkup)
    if parts.scheme == "http":
        if parts.hostname in LOOPBACK:
            return passed(f"plain http to {parts.hostname}: no TLS needed on this machine")
        return failed(
            "plain http: the license would cross the network unencrypted",
            "serve deployd over https and give --server https://...",
        )
    trust = checkup.site.ca_trust
    context = trust.ssl_context() if trust else ssl.create_default_context(cafile=certifi.where())
    host = parts.hostname or ""
    try:
        der = _handshake(context, host, _port(parts))
    except ssl.SSLCertVerificationError as e:
        return _untrusted(checkup, e)
    except (ssl.SSLError, OSError) as e:
        return failed(f"TLS handshake failed: {e}", "check that the port serves https")
    certificate = x509.load_der_x509_certificate(der)
    expires = certificate.not_valid_after_utc
    days = (expires - datetime.now(UTC)).days
    trusted_by = "the public CAs" + (f" and {', '.join(trust.sources)}" if trust else "")
    return passed(
        f"certificate of {host} issued by {certificate.issuer.rfc4514_string()}, trusted by"
        f" {trusted_by}, expires {rfc3339(expires.timestamp())} (in {days} days)",
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        expires=rfc3339(expires.timestamp()),
        days_left=days,
    )


def _handshake(context: ssl.SSLContext, host: str, port: int) -> bytes:
    with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def _untrusted(checkup: Checkup, error: ssl.SSLCertVerificationError) -> Outcome:
    """Why the certificate was refused; its expiry read without trusting it, to tell."""
    parts = _parts(checkup)
    unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    try:
        certificate = x509.load_der_x509_certificate(
            _handshake(unverified, parts.hostname or "", _port(parts))
        )
    except (ssl.SSLError, OSError, ValueError):
        certificate = None
    reason = f"the server's certificate is not trusted: {error.verify_message}"
    if certificate is None:
        return failed(reason, TLS_HINT)
    expires = certificate.not_valid_after_utc
    details = {
        "subject": certificate.subject.rfc4514_string(),
        "issuer": certificate.issuer.rfc4514_string(),
        "expires": rfc3339(expires.timestamp()),
    }
    if expires <= datetime.now(UTC):
        return failed(
            f"the server's certificate expired at {details['expires']}",
            "renew the server's certificate",
            **details,
        )
    return failed(f"{reason} (issued by {details['issuer']})", TLS_HINT, **details)


def check_clock(checkup: Checkup) -> Outcome:
    fetcher = _fetcher(checkup)
    try:
        before = time.time()
        response = fetcher.get(
            _base(checkup) + HEALTH_PATH, headers={"User-Agent": USER_AGENT}, license=None
        )
        now = (before + time.time()) / 2
    finally:
        fetcher.close()
    date = response.headers.get("date")
    if not date:
        return failed("the server sent no Date header", "check what answers at this URL")
    try:
        server_time = parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return failed(f"the server's Date {date!r} is not an HTTP date", "check the server")
    skew = now - server_time
    details = {"server_date": date, "skew_seconds": round(skew, 1)}
    if abs(skew) > MAX_CLOCK_SKEW_SECONDS:
        direction = "ahead of" if skew > 0 else "behind"
        return failed(
            f"this machine's clock is {abs(skew):.0f}s {direction} the server's ({date})",
            "synchronise the clocks (NTP): specs and licenses expire at set times",
            **details,
        )
    return passed(f"within {abs(skew):.0f}s of the server's clock", **details)


def check_license_with_server(checkup: Checkup) -> Outcome:
    license = checkup.site.license
    if license is None:
        return skipped("no license to ask about")
    session = trusting_session(checkup.site.ca_trust)
    try:
        response = session.post(
            _base(checkup) + VALIDATE_PATH,
            json={"license": license.value},
            headers={"User-Agent": USER_AGENT},
            timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
            allow_redirects=False,
        )
        verdict = response.json() if response.status_code == 200 else None
    except ValueError:
        verdict = None
    except Exception as e:  # requests' errors: the server could not be asked
        return failed(f"cannot ask the server: {type(e).__name__}", "see the checks above")
    finally:
        session.close()
    if not isinstance(verdict, dict) or not isinstance(verdict.get("valid"), bool):
        return failed(
            f"the server answered {response.status_code}, not a license verdict",
            "check that --server is a deployd server",
        )
    code, message = str(verdict.get("code", "")), str(verdict.get("message", ""))
    if not verdict["valid"]:
        return failed(
            f"the server refuses the license ({code}): {message}",
            "ask the vendor for a valid license, or for this server's URL",
            code=code,
        )
    return passed(f"the server accepts the license ({code})", code=code)


def check_channel_spec(checkup: Checkup) -> Outcome:
    site = checkup.site
    channel = site.expected_channel
    trusted_keys = site.trusted_keys
    response = _fetch_spec(checkup, channel if site.options.channel else None)
    if response.status != 200:
        code, text = error_details(response)
        return failed(
            f"the server answered {response.status}" + (f" ({code})" if code else "") + f": {text}",
            _http_hint(response.status),
            status=response.status,
        )
    try:
        spec = verify_spec(
            response.body,
            response.headers.get(SIGNATURE_HEADER.lower()),
            trusted_keys=trusted_keys,
            now=time.time(),
            expected_channel=channel,
            pinned_release=site.options.release,
        )
    except SpecRefusedError as e:
        return failed(f"refused the spec: {e.message}", _refusal_hint(e.reason), refusal=e.reason)
    checkup.spec = spec
    return passed(
        f"channel {spec.channel}, release {spec.release}, sequence {spec.sequence}, signed by"
        f" trusted key {spec.key_id}, expires {spec.metadata['expires']}",
        channel=spec.channel,
        release=spec.release,
        sequence=spec.sequence,
        key_id=spec.key_id,
        expires=spec.metadata["expires"],
    )


def _fetch_spec(checkup: Checkup, channel: str | None) -> HttpResponse:
    release = checkup.site.options.release
    url = _base(checkup) + (pinned_spec_path(release) if release else SPEC_PATH)
    if channel:
        url += "?" + urlencode({"channel": channel})
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if checkup.site.options.instance_id:
        headers[INSTANCE_ID_HEADER] = checkup.site.options.instance_id
    license_value = checkup.site.license.value if checkup.site.license else None
    fetcher = _fetcher(checkup)
    try:
        return fetcher.get(url, headers=headers, license=license_value)
    finally:
        fetcher.close()


def _http_hint(status: int) -> str:
    if status in (401, 403):
        return "the server refuses this license for this channel: see the license checks"
    if status == 404:
        return "the channel (or pinned release) is not on this server: check --channel/--release"
    return "the server is not serving specs right now: check its logs and /readyz"


def _refusal_hint(reason: str) -> str:
    if reason in (UNKNOWN_KEY, BAD_SIGNATURE):
        return (
            "trust the vendor's spec-signing key: --trust-key FILE (PEM, or the JWKS the server"
            f" publishes at {JWKS_PATH}, checked out of band)"
        )
    if reason == WRONG_CHANNEL:
        return "follow the channel the server serves to this license: --channel, or the license's"
    return "the server's answer is not a valid spec: tell the vendor"


def server_checks(checkup: Checkup) -> Sequence[Check]:
    """The checklist against a server, in order."""
    del checkup  # the same list for every site
    return [
        Check("url", check_url, "give the base URL, e.g. https://deployd.example.com"),
        Check("dns", check_dns, "", needs=("url",)),
        Check("tcp", check_tcp, "", needs=("dns",)),
        Check("tls", check_tls, TLS_HINT, needs=("tcp",)),
        Check("clock", check_clock, "see the connection checks", needs=("tls",)),
        local_checks.license_check(),
        Check(
            "license-server",
            check_license_with_server,
            "check the license",
            needs=("tls",),
        ),
        Check(
            "channel-spec",
            check_channel_spec,
            "check the trusted keys, the license and the channel",
            needs=("tls",),
        ),
        *local_checks.after_spec_checks("channel-spec"),
    ]


register_check_source("server", server_checks)
