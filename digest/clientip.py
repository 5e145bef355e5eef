"""The address a request came from, for rate limits and the admin-login lockout.

Directly exposed, that is ``REMOTE_ADDR``. Behind ``TRUSTED_PROXY_COUNT`` reverse proxies,
``REMOTE_ADDR`` is the nearest proxy's address, and each proxy appends the address it saw to
``X-Forwarded-For``: the client's is the N-th entry from the right. Entries further left come
from the client itself and can be forged, so they are never used.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The client's address, or None when the request has none (e.g. a test's forced login)."""
    remote = str(request.META.get("REMOTE_ADDR") or "") or None
    count = settings.TRUSTED_PROXY_COUNT
    if count <= 0:
        return remote
    header = str(request.META.get("HTTP_X_FORWARDED_FOR", ""))
    hops = [hop.strip() for hop in header.split(",") if hop.strip()]
    if len(hops) < count:
        return remote  # not through the expected proxies (e.g. a health check from inside)
    candidate = hops[-count]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote


def client_network(request: HttpRequest) -> str:
    """What a rate limit counts: the client's IPv4 address, or the /64 network of an IPv6
    one (a single subscriber line gets a whole /64, so counting addresses would let one
    client use billions of them); "unknown" when the request has none."""
    ip = client_ip(request)
    if ip is None:
        return "unknown"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # an IPv4 client on an IPv6 socket
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
