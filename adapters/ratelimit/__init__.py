"""Rate limiter implementations on the `limits` library (in process, or Redis)."""

from .limiter import LimitsRateLimiter, MemoryDenials, RedisDenials, memory_rate_limiter, redis_rate_limiter

__all__ = ["LimitsRateLimiter", "MemoryDenials", "RedisDenials", "memory_rate_limiter",
           "redis_rate_limiter"]


def build_ratelimiter(redis_url: str | None = None, clock=None, prefix: str = "jitgate"):
    """In process by default; Redis-backed (shared by every replica) when `redis_url` is set."""
    if redis_url:
        return redis_rate_limiter(redis_url, clock=clock, prefix=prefix)
    return memory_rate_limiter(clock=clock)


__all__ += ["build_ratelimiter"]
