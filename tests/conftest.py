import os

import pytest
from hypothesis import settings

from tests.support.redis_ha import (  # noqa: F401  (fixtures)
    real_cluster,
    redis_cluster,
    sentinels,
)
from tests.support.redis_server import real_redis, redis_server  # noqa: F401  (fixtures)

_ran_on_real_redis = 0

# Property tests: a quick look while developing, a thorough one in CI (HYPOTHESIS_PROFILE picks
# either; CI=true picks "ci"). Tests that must stay small (schemathesis against the app) set
# their own max_examples. No deadline: Hypothesis' default (200 ms an example) fails a property
# test on a busy machine, which says nothing about the property (a merge test did, under load).
# Speed is measured in bench/, never asserted in a test.
settings.register_profile("dev", max_examples=30, deadline=None)
settings.register_profile("ci", max_examples=300, deadline=None)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    global _ran_on_real_redis
    if report.when == "call" and report.passed and "redis_server" in report.keywords:
        _ran_on_real_redis += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # In CI the real-Redis tests must run, not skip: a run where none passed fails.
    if os.environ.get("CI") and session.testscollected and not _ran_on_real_redis:
        if not session.config.option.keyword and not session.config.option.markexpr:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            print("\nCI: no test ran against a real redis-server")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "redis_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.redis_server)
