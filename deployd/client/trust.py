"""The CA certificates the client trusts for TLS to the server, from every place a site gives them.

A site behind a corporate proxy or with a private CA gives its CA certificates as

- a PEM file (``--ca-bundle FILE``);
- a directory of ``*.crt`` files (``--ca-bundle DIR``): what a ConfigMap mounted as a volume
  looks like (the guide's ``caCertsConfigMap``, each key a file);
- ``customCACerts`` in the custom-resource values: a list of PEM strings, as the guide puts them
  inline.

All of them are added to the usual public CAs (those `requests` trusts) in one `ssl.SSLContext`,
so a CA list meant for the site's own services never stops the client reaching a server with a
public certificate. Each certificate is checked when loaded; a bad one is an error naming where it
came from (the file, or ``customCACerts[2]``), never a TLS failure later.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import certifi
import requests
from cryptography import x509
from requests.adapters import HTTPAdapter

from deployd.errors import ConfigError

# The key in the custom-resource values that holds inline CA certificates (the guide's name).
CUSTOM_CA_CERTS_KEY = "customCACerts"
CA_FILE_SUFFIX = ".crt"
MAX_CA_FILE_BYTES = 1_048_576
_PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----\s.*?-----END CERTIFICATE-----", re.DOTALL)


@dataclass(frozen=True)
class CATrust:
    """The extra CA certificates the client trusts, as PEM, and where each came from."""

    pem: str = field(repr=False)
    sources: tuple[str, ...]

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting the public CAs and these certificates."""
        context = ssl.create_default_context(cafile=certifi.where())
        context.load_verify_locations(cadata=self.pem)
        return context

    def session(self) -> requests.Session:
        """A `requests` session whose HTTPS connections use `ssl_context()`."""
        return trusting_session(self)


class _TrustAdapter(HTTPAdapter):
    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["ssl_context"] = self._context
        return super().proxy_manager_for(*args, **kwargs)


def trusting_session(trust: CATrust | None) -> requests.Session:
    """A `requests` session trusting `trust` as well as the public CAs (just them for None)."""
    session = requests.Session()
    if trust is not None:
        session.mount("https://", _TrustAdapter(trust.ssl_context()))
    return session


def load_ca_trust(
    paths: Iterable[str | os.PathLike[str]] = (),
    cr_values: Mapping[str, Any] | None = None,
) -> CATrust | None:
    """The CA certificates in `paths` (PEM files or directories of ``*.crt``) and in
    ``customCACerts`` of `cr_values`; None when none is given. Raises ConfigError naming the
    file or list entry that is unreadable or not a PEM certificate, and for a directory with
    no ``*.crt`` file."""
    blocks: list[str] = []
    sources: list[str] = []
    for raw_path in paths:
        path = Path(raw_path)
        files = _ca_directory_files(path) if path.is_dir() else [path]
        for file in files:
            blocks.extend(_certificates(_read_ca_file(file), source=str(file)))
            sources.append(str(file))
    for index, text in enumerate(_custom_ca_certs(cr_values)):
        source = f"{CUSTOM_CA_CERTS_KEY}[{index}]"
        blocks.extend(_certificates(text, source=source))
        sources.append(source)
    if not blocks:
        return None
    return CATrust("\n".join(blocks) + "\n", tuple(sources))


def _ca_directory_files(directory: Path) -> list[Path]:
    files = sorted(p for p in directory.iterdir() if p.name.endswith(CA_FILE_SUFFIX))
    if not files:
        raise ConfigError(
            f"CA directory {str(directory)!r} holds no *{CA_FILE_SUFFIX} file (a mounted"
            f" ConfigMap's keys must end in {CA_FILE_SUFFIX})"
        )
    return files


def _read_ca_file(path: Path) -> str:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_CA_FILE_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"CA certificates {str(path)!r}: cannot read: {e.strerror}") from e
    if len(data) > MAX_CA_FILE_BYTES:
        raise ConfigError(f"CA certificates {str(path)!r}: larger than {MAX_CA_FILE_BYTES} bytes")
    return data.decode("ascii", "replace")


def _custom_ca_certs(cr_values: Mapping[str, Any] | None) -> Sequence[str]:
    found = (cr_values or {}).get(CUSTOM_CA_CERTS_KEY)
    if found is None:
        return []
    if not isinstance(found, list) or not all(isinstance(item, str) for item in found):
        raise ConfigError(f"{CUSTOM_CA_CERTS_KEY} must be a list of PEM certificate strings")
    return found


def _certificates(text: str, *, source: str) -> list[str]:
    """The PEM certificate blocks in `text`, each checked; ConfigError naming `source`."""
    blocks = _PEM_BLOCK.findall(text)
    if not blocks:
        raise ConfigError(f"CA certificates {source}: no PEM certificate (BEGIN CERTIFICATE)")
    for number, block in enumerate(blocks, start=1):
        where = source if len(blocks) == 1 else f"{source} (certificate {number})"
        try:
            x509.load_pem_x509_certificate(block.encode("ascii"))
        except ValueError as e:
            raise ConfigError(f"CA certificates {where}: not a valid certificate: {e}") from e
    return blocks
