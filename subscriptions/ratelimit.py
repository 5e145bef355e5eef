"""Fixed-window rate limits kept in Django's cache (Redis when configured)."""

from __future__ import annotations

import hashlib
import time

from django.core.cache import cache


def allow(scope: str, key: str, limit: int, window_seconds: int) -> bool:
    """Count one hit for ``key`` in ``scope``; False once more than ``limit`` hits fell in the
    current window. Keys are hashed so addresses never sit in the cache in clear."""
    window = int(time.time() // window_seconds)
    digest = hashlib.sha256(f"{scope}:{key.lower()}".encode()).hexdigest()[:32]
    name = f"rl:{scope}:{window}:{digest}"
    cache.add(name, 0, timeout=window_seconds + 5)
    try:
        count = cache.incr(name)
    except ValueError:  # expired between add and incr
        cache.set(name, 1, timeout=window_seconds + 5)
        count = 1
    return count <= limit
