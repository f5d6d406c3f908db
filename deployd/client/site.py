"""What `deployd verify` checks: the site's settings as the agent would read them, loaded on
first use with the agent's own loaders, and what the checks found so far (`Checkup`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from deployd.client.config import expected_channel, load_trusted_keys
from deployd.client.inputs import (
    CustomResource,
    load_custom_resource,
    load_values_file,
)
from deployd.client.licensing import LicenseChoice, find_license
from deployd.client.trust import CATrust, load_ca_trust
from deployd.client.verify import VerifiedSpec
from deployd.offline.manifest import Manifest


@dataclass(frozen=True)
class SiteOptions:
    """The agent options `deployd verify` takes (the same names as `deployd agent`'s)."""

    server: str | None = None
    bundle: Path | None = None
    license_file: str | None = None
    trust_keys: tuple[str, ...] = ()
    ca_bundles: tuple[str, ...] = ()
    cr: str | None = None
    cr_values: str | None = None
    user_values: str | None = None
    channel: str | None = None
    release: str | None = None
    command: str | None = None
    write: str | None = None
    instance_id: str | None = None
    cache_dir: Path | None = None


class Site:
    """The options' files, each loaded (and cached) when a check first asks for it; a file that
    cannot be used raises the agent's own error, naming it."""

    def __init__(self, options: SiteOptions, environ: dict[str, str] | None = None) -> None:
        self.options = options
        self.environ = dict(os.environ if environ is None else environ)

    @cached_property
    def custom_resource(self) -> CustomResource | None:
        if self.options.cr:
            return load_custom_resource(self.options.cr)
        if self.options.cr_values:
            return CustomResource.from_values(load_values_file(self.options.cr_values))
        return None

    @cached_property
    def user_values(self) -> dict[str, Any] | None:
        return load_values_file(self.options.user_values) if self.options.user_values else None

    @cached_property
    def license(self) -> LicenseChoice | None:
        cr = self.custom_resource
        return find_license(
            license_file=self.options.license_file,
            environ=self.environ,
            cr_values=cr.values if cr else None,
            user_values=self.user_values,
        )

    @cached_property
    def trusted_keys(self) -> dict[str, Ed25519PublicKey]:
        return load_trusted_keys(self.options.trust_keys)

    @cached_property
    def ca_trust(self) -> CATrust | None:
        cr = self.custom_resource
        return load_ca_trust(self.options.ca_bundles, cr.values if cr else None)

    @property
    def expected_channel(self) -> str:
        license = self.license
        return expected_channel(self.options.channel, license.value if license else None)


@dataclass
class Checkup:
    """The site being checked and what the checks have found (filled in as they run)."""

    site: Site
    addresses: list[tuple[str, int]] = field(default_factory=list)
    spec: VerifiedSpec | None = None
    # An offline bundle's bytes, its members and its verified manifest (`--bundle`).
    bundle: bytes | None = field(default=None, repr=False)
    members: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    manifest: Manifest | None = None
