from tests.support.services import PG_DSN, REDIS_URL, service_missing  # noqa: F401  (re-exported)
