"""Client addresses as rate-limit and backoff buckets. An IPv6 host usually owns a whole /64
(2^64 addresses), so per-address limits would be no limits: IPv6 is bucketed by prefix."""

from __future__ import annotations

from ipaddress import IPv6Address, ip_address, ip_network

DEFAULT_IPV6_PREFIX = 64


def source_bucket(addr: str, ipv6_prefix: int = DEFAULT_IPV6_PREFIX) -> str:
    """IPv4 as is, IPv6 as its network of `ipv6_prefix` bits (IPv4-mapped IPv6 as IPv4);
    anything unparseable as "-" (one shared bucket, never a free pass)."""
    try:
        ip = ip_address(addr.strip())
    except ValueError:
        return "-"
    if isinstance(ip, IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ip_network(f"{ip}/{ipv6_prefix}", strict=False))
    return str(ip)
