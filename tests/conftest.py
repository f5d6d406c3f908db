from tests.redis_server import real_redis, redis_server  # noqa: F401  (fixtures)
