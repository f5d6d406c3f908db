"""Charts the W&B operator can install, checked before a channel is accepted.

The operator reads a spec's `chart` as the first of three kinds whose rules it passes: a local
path, an OCI chart (a `url` starting with ``oci://``) or a Helm repository (any other `url`, with
a `name`). When none passes, it gets *no chart* and says nothing (the poll succeeded), so a
channel with such a chart would be served and never installed. The rules here are the operator's
(its `pkg/wandb/spec/charts`), and those of the Go libraries it hands the chart to: Go's
`net/url` parser, the `url` rule of go-playground/validator, ORAS's references and Helm's
versions. They are written out in deployd's own terms, and are a little stricter where the
operator would accept a chart that cannot work anyway (a port over 65535, a digest of an
algorithm nothing supports, a chart version that is a range).

    - path: any non-empty string (checked in deployd.channels);
    - oci://REGISTRY/REPOSITORY[:TAG][@DIGEST]: a version, or a tag or digest in the URL; a tag
      and a version must agree (Helm reads a '+' in a tag as '_');
    - http(s)://HOST[:PORT]/...: a URL Go parses, with a host; and a `name` (and in deployd, a
      `version`).

Chart versions are versions as Helm reads them (1.2.3, v1.2, 1.2.3-rc.1+build), never ranges.
"""

from __future__ import annotations

import ipaddress
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OCI_PREFIX = "oci://"
REPOSITORY_PREFIXES = ("https://", "http://")

# Helm's version syntax (Masterminds semver, as Helm configures it: leading zeros tolerated).
_HELM_VERSION = re.compile(
    r"v?(?P<major>[0-9]+)(?:\.(?P<minor>[0-9]+))?(?:\.(?P<patch>[0-9]+))?"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?",
    re.ASCII,
)
_UINT64_MAX = 2**64 - 1
# What an OCI reference is made of (the OCI distribution spec, as ORAS checks it).
# (Written with '-+' where the spec has '-*': the same names, without the nested quantifiers that
# make Python's backtracking matcher take exponential time on a long name that fails.)
_REPOSITORY = re.compile(
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*", re.ASCII
)
_TAG = re.compile(r"\w[\w.-]{0,127}", re.ASCII)
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
# Characters Go's URL parser takes as they are in a host name, in userinfo.
_HOST_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-_.~!$&'()*+,;=<>\"")
_USERINFO_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-._:~!$&'()*+,;=%@")
_HEX = frozenset(string.hexdigits)


class ChartError(ValueError):
    """Why a chart is not one the operator can install; `key` is the chart key it is about."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.key = key


def is_oci(url: str) -> bool:
    """Whether the operator reads `url` as an OCI chart (its prefix test is case-sensitive)."""
    return url.startswith(OCI_PREFIX)


def url_problem(url: str) -> str | None:
    """Why `url` is no chart url the operator can use (either kind), or None when it is one."""
    if any(character.isspace() for character in url):
        return f"{url!r} has whitespace in it"
    try:
        if is_oci(url):
            parse_oci_reference(url.removeprefix(OCI_PREFIX))
        elif url.startswith(REPOSITORY_PREFIXES):
            _check_repository_url(url)
        else:
            return f"{url!r} is neither an http(s) Helm repository URL nor oci://..."
    except ChartError as e:
        return f"{url!r} is no chart url the W&B operator can use: {e.message}"
    return None


def version_problem(version: str) -> str | None:
    """Why `version` is not one chart version as Helm reads it, or None."""
    match = _HELM_VERSION.fullmatch(version)
    if match is None:
        return (
            f"{version!r} is not a chart version like 1.2.3 (Helm's semver; ranges and tags "
            "like 'latest' are not versions)"
        )
    numbers = (match.group(part) or "0" for part in ("major", "minor", "patch"))
    if any(len(n.lstrip("0")) > 20 or int(n) > _UINT64_MAX for n in numbers):
        return f"{version!r} has a number too large for Helm"
    pre = match.group("pre")
    if pre is not None and any(
        p.isdigit() and p.startswith("0") and p != "0" for p in pre.split(".")
    ):
        return f"{version!r} has a numeric pre-release part with a leading zero"
    return None


def installable_problems(chart: Mapping[str, Any]) -> list[ChartError]:
    """What keeps a merged chart with a `url` (and no `path`) from being installed.

    The url itself is checked where it is written (`url_problem`); this is about the keys
    together: what each kind needs, and a tag that disagrees with the version.
    """
    url = chart["url"]
    version = chart.get("version")
    if not is_oci(url):
        return [
            ChartError("missing: a Helm repository chart needs a " + key, key)
            for key in ("name", "version")
            if chart.get(key) is None
        ]
    try:
        reference = parse_oci_reference(url.removeprefix(OCI_PREFIX))
    except ChartError:
        return []  # reported at the url
    return _oci_problems(reference, version)


@dataclass(frozen=True)
class OCIReference:
    """REGISTRY/REPOSITORY[:TAG][@DIGEST], the tag as written (Helm turns '+' into '_')."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def helm_tag(self) -> str | None:
        return None if self.tag is None else self.tag.replace("+", "_")


def parse_oci_reference(text: str) -> OCIReference:
    """An OCI reference (what follows oci://), checked as ORAS and Helm check it; ChartError."""
    registry, slash, path = text.partition("/")
    if not registry:
        raise ChartError("no registry after oci://")
    _check_registry(registry)
    name, at, digest = path.partition("@")
    if not name:
        raise ChartError(f"no repository after the registry {registry!r}")
    repository, colon, tag = name.partition(":")
    if not _REPOSITORY.fullmatch(repository):
        raise ChartError(
            f"{repository!r} is not an OCI repository name (lowercase letters and digits, "
            "separated by '.', '_', '__', '-' or '/')"
        )
    if colon and not _TAG.fullmatch(tag.replace("+", "_")):
        raise ChartError(f"{tag!r} is not an OCI tag (letters, digits, '_', '.', '-'; <= 128)")
    if at:
        _check_digest(digest)
    return OCIReference(registry, repository, tag if colon else None, digest if at else None)


def _oci_problems(reference: OCIReference, version: str | None) -> list[ChartError]:
    tag = reference.helm_tag
    if reference.digest is None and reference.tag is not None and "+" in reference.tag:
        message = (
            f"the tag {reference.tag!r} has a '+', which Helm reads as '_' (so no chart version "
            "matches it); use the url without the tag and a version, or a digest"
        )
        return [ChartError(message, "url")]
    if version is None and tag is None and reference.digest is None:
        message = "missing: an oci:// chart needs a version, or a tag or digest in its url"
        return [ChartError(message, "version")]
    if version is not None and tag is not None and version != tag:
        message = f"{version!r} disagrees with the tag {tag!r} in the url (drop one of them)"
        return [ChartError(message, "version")]
    if version is None and tag is not None and reference.digest is None:
        # Without a version, Helm takes the tag for the chart version.
        problem = version_problem(tag)
        if problem is not None:
            return [ChartError(f"the tag in the url is the chart version: {problem}", "url")]
    return []


def _check_digest(digest: str) -> None:
    algorithm, colon, encoded = digest.partition(":")
    length = _DIGEST_HEX_LENGTHS.get(algorithm)
    if not colon or length is None:
        raise ChartError(f"{digest!r} is not a digest like sha256:<64 hex digits>")
    if len(encoded) != length or not set(encoded) <= set("0123456789abcdef"):
        raise ChartError(f"a {algorithm} digest is {length} lowercase hex digits")


def _check_registry(registry: str) -> None:
    if "%" in registry:
        raise ChartError(f"the registry {registry!r} has a '%' (write the host as it is)")
    _split_host(registry, "registry")


# --- Go's URL parser, the parts a chart URL goes through


def _check_repository_url(url: str) -> None:
    """A Helm repository url as Go parses it (and the operator then needs a host name)."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise ChartError("a control character in the url")
    before_fragment, hash_sign, fragment = url.partition("#")
    rest = before_fragment.partition("://")[2]
    if rest.endswith("?") and rest.count("?") == 1:
        rest = rest[:-1]
    else:
        rest = rest.partition("?")[0]
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not at:
        host = authority
    hostname = _split_host(host, "host")
    if at:
        _check_userinfo(userinfo)
    _check_escapes(slash + path, "the path")
    if hash_sign:
        _check_escapes(fragment, "the fragment")
    if not hostname:
        raise ChartError("no host name: the operator names the repository after its host")
    if at:
        raise ChartError("credentials in a chart url would reach every customer; leave them out")


def _split_host(host: str, what: str) -> str:
    """The host name of HOST[:PORT] (brackets kept off an IPv6 literal); ChartError if bad."""
    if host.startswith("["):
        close = host.rfind("]")
        if close < 0:
            raise ChartError(f"a '[' without ']' in the {what}")
        _check_port(host[close + 1 :], what)
        literal = host[1:close]
        try:
            ipaddress.IPv6Address(literal)
        except ValueError as e:
            raise ChartError(f"{literal!r} in brackets is not an IPv6 address") from e
        return literal
    if "[" in host or "]" in host:
        raise ChartError(f"'[' or ']' in the {what} outside an IPv6 literal")
    name, colon, port = host.rpartition(":")
    if not colon:
        name = host
    else:
        _check_port(colon + port, what)
    if ":" in name:
        raise ChartError(f"more than one ':' in the {what} (an IPv6 address goes in brackets)")
    _check_host_name(name, what)
    return name


def _check_port(colon_port: str, what: str) -> None:
    if not colon_port:
        return
    digits = colon_port[1:]
    if colon_port[0] != ":" or not all("0" <= c <= "9" for c in digits):
        raise ChartError(f"the port {digits!r} after the {what} is not a number")
    if len(digits.lstrip("0")) > 5 or digits and int(digits) > 65535:
        raise ChartError(f"the port {digits} is over 65535")


def _check_host_name(name: str, what: str) -> None:
    for index, character in enumerate(name):
        if character == "%":
            escape = name[index : index + 3]
            _check_escape(escape, f"the {what}")
            if escape != "%25" and int(escape[1], 16) < 8:
                raise ChartError(f"{escape!r} in the {what}: write ASCII characters as they are")
        elif character.isascii() and character not in _HOST_CHARACTERS:
            raise ChartError(f"the character {character!r} is not allowed in the {what}")


def _check_userinfo(userinfo: str) -> None:
    for character in userinfo:
        if character.isascii() and character not in _USERINFO_CHARACTERS:
            raise ChartError(f"the character {character!r} is not allowed before '@'")
    _check_escapes(userinfo, "the user name or password")


def _check_escapes(text: str, where: str) -> None:
    start = text.find("%")
    while start >= 0:
        _check_escape(text[start : start + 3], where)
        start = text.find("%", start + 3)


def _check_escape(escape: str, where: str) -> None:
    if len(escape) < 3 or not set(escape[1:]) <= _HEX:
        raise ChartError(f"{escape!r} in {where} is not a percent-escape (% and two hex digits)")
