from tests.store.backends import store  # noqa: F401  (fixture)
