"""Fixtures every offline-bundle test module uses: the vendor's side and a license file from it."""

from __future__ import annotations

import pytest

from tests.support.offline import Vendor


@pytest.fixture
def vendor(tmp_path):
    """The vendor: a server's world and its exports (tests/support/offline.py)."""
    return Vendor(tmp_path / "vendor")


@pytest.fixture
def license_file(tmp_path, vendor):
    """A license of the vendor's, in a file as the site keeps it."""
    path = tmp_path / "license.jwt"
    path.write_text(vendor.world.license() + "\n")
    return path
