import pytest

from tests.support.backends import BACKENDS, open_backend


@pytest.fixture(params=BACKENDS)
def store(request):
    """An empty store of each kind in turn."""
    yield from open_backend(request)


@pytest.fixture(params=BACKENDS)
def uninitialized_store(request):
    """An empty store of each kind that was never initialised (no epoch)."""
    yield from open_backend(request, initialized=False)
