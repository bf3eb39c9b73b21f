"""Where notifications may go: an address policy checked after DNS resolution.

A channel URL is chosen by whoever holds an admin key, so without a policy the
alerter is a request forger into its own network (loopback admin ports, private
services, the cloud metadata endpoint). Every outbound request goes through
:class:`EgressTransport`, which resolves the host itself, checks every address
the name resolves to, and then connects to one of the checked addresses (the
URL is rewritten to the IP; ``Host`` and TLS SNI keep the name, so certificates
are still verified against it). A second DNS answer can therefore not swap in
another address between check and connect (DNS rebinding).

Redirects are never followed: the client is built with ``follow_redirects=False``
and a 3xx reply is a failed delivery. Were a redirect followed, its request would
pass through this transport again and be checked the same way.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import httpx

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

# Instance metadata services (AWS, GCP, Azure, OpenStack on IPv4; AWS Nitro on IPv6;
# Alibaba Cloud). Refused even when a broader allowed range covers them.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# How many of a name's checked addresses to try before giving up on a connection.
MAX_CONNECT_ADDRESSES = 3


class EgressRefused(Exception):
    """The request was not sent. ``reason`` is short and safe to show to API callers."""

    def __init__(self, reason: str, *, retryable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries and routes to, if any."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d
        return ip.ipv4_mapped
    if ip.sixtofour is not None:  # 2002:AABB:CCDD::/48
        return ip.sixtofour
    if ip.teredo is not None:  # 2001::/32, the client's (obfuscated) address
        return ip.teredo[1]
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def classify(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public internet address (a category name), or None if it is."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        reason = classify(inner)
        if reason is not None:
            return reason
    if ip in METADATA_ADDRESSES:
        return "cloud metadata"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip in _CGNAT:
        return "shared (CGNAT)"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local):
        return "private"
    if inner is None and (ip.is_reserved or not ip.is_global):
        return "reserved"
    return None


def parse_allow(entries: Iterable[str]) -> tuple[tuple[IPNetwork, ...], frozenset[str]]:
    """Split allow-list entries into networks (CIDR or single address) and host names.

    A host name admits whatever it resolves to; ``.corp.example`` admits every
    name under ``corp.example``. Raises ValueError for an entry that is neither.
    """
    networks: list[IPNetwork] = []
    hosts: set[str] = set()
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            pass
        name = entry.lower().rstrip(".")
        labels = name.removeprefix(".").split(".")
        if not all(
            label and len(label) <= 63 and label.replace("-", "").isalnum() and label.isascii()
            for label in labels
        ):
            raise ValueError(f"{raw!r} is neither a CIDR, an IP address nor a host name")
        hosts.add(name)
    return tuple(networks), frozenset(hosts)


@dataclass(frozen=True)
class EgressPolicy:
    """Refuse every non-public address unless an operator admitted it."""

    allow_networks: tuple[IPNetwork, ...] = ()
    allow_hosts: frozenset[str] = field(default_factory=frozenset)
    allow_loopback: bool = False

    @classmethod
    def from_settings(cls, allow: Iterable[str], *, allow_loopback: bool) -> EgressPolicy:
        networks, hosts = parse_allow(allow)
        return cls(networks, hosts, allow_loopback)

    def host_allowed(self, host: str) -> bool:
        name = host.lower().rstrip(".")
        if name in self.allow_hosts:
            return True
        return any(h.startswith(".") and name.endswith(h) for h in self.allow_hosts)

    def refusal(self, ip: IPAddress) -> str | None:
        """None when the address may be contacted, else the category that refuses it."""
        candidates = [ip]
        inner = embedded_ipv4(ip)
        if inner is not None:
            candidates.append(inner)
        for candidate in candidates:
            for network in self.allow_networks:
                if candidate.version != network.version or candidate not in network:
                    continue
                exact = network.prefixlen == network.max_prefixlen
                if candidate in METADATA_ADDRESSES and not exact:
                    continue
                return None
        reason = classify(ip)
        if reason == "loopback" and self.allow_loopback:
            return None
        return reason


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class EgressTransport(httpx.AsyncBaseTransport):
    """Checks each request's destination against the policy and pins the checked address."""

    def __init__(
        self,
        policy: EgressPolicy,
        inner: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.policy = policy
        # No keep-alive: a pooled connection is keyed by IP, and an HTTPS connection
        # made for one name must not carry a request for another name on that IP.
        self.inner = inner or httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_keepalive_connections=0), trust_env=False
        )
        self.resolver = resolver

    async def addresses(self, host: str, port: int) -> list[IPAddress]:
        """Every address ``host`` stands for, all checked; raises EgressRefused."""
        literal = _parse_ip(host)
        if literal is not None:
            found = [literal]
        else:
            try:
                resolved = await self.resolver(host, port)
            except (OSError, UnicodeError) as exc:
                log.info("egress: cannot resolve", extra={"host": host, "error": str(exc)})
                raise EgressRefused(
                    "egress: the host name does not resolve", retryable=True
                ) from None
            found = [ip for ip in map(_parse_ip, resolved) if ip is not None]
            if not found:
                raise EgressRefused("egress: the host name does not resolve", retryable=True)
            if self.policy.host_allowed(host):
                return found
        for ip in found:
            reason = self.policy.refusal(ip)
            if reason is not None:
                log.warning(
                    "egress refused", extra={"host": host, "address": str(ip), "category": reason}
                )
                raise EgressRefused(
                    f"egress refused: the host resolves to a {reason} address "
                    "(admit it with LOGRIVER_ALERTER_EGRESS_ALLOW)"
                )
        return found

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        host = url.raw_host.decode("ascii")  # IDNA-encoded; IPv6 without brackets
        port = url.port or (443 if url.scheme == "https" else 80)
        addresses = await self.addresses(host, port)
        extensions = dict(request.extensions)
        if url.scheme == "https" and _parse_ip(host) is None:
            extensions["sni_hostname"] = host
        last_error: httpx.ConnectError | None = None
        for ip in addresses[:MAX_CONNECT_ADDRESSES]:
            # The same request aimed at the checked address; the headers (Host included)
            # were set from the original URL when the request was built.
            pinned = httpx.Request(
                request.method,
                url.copy_with(host=str(ip)),
                headers=request.headers,
                stream=request.stream,
                extensions=extensions,
            )
            try:
                return await self.inner.handle_async_request(pinned)
            except httpx.ConnectError as exc:
                last_error = exc
        assert last_error is not None  # noqa: S101 - the loop ran at least once
        raise last_error

    async def aclose(self) -> None:
        await self.inner.aclose()
