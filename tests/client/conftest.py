from __future__ import annotations

import pytest

from tests.client.specs import SpecKey


@pytest.fixture(scope="session")
def signer() -> SpecKey:
    return SpecKey.generate("test-spec")


@pytest.fixture(scope="session")
def other_signer() -> SpecKey:
    return SpecKey.generate("other-spec")
