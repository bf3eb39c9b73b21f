"""The egress policy: which addresses a notification may reach, checked after resolution."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from logriver_alerter.egress import (
    EgressPolicy,
    EgressRefused,
    EgressTransport,
    Resolver,
    classify,
    parse_allow,
    system_resolver,
)
from logriver_alerter.settings import AlerterSettings

# (address, category) for the default policy; None means a public address.
ADDRESSES: list[tuple[str, str | None]] = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped IPv6
    ("::ffff:7f00:1", "loopback"),
    ("::127.0.0.1", "loopback"),  # IPv4-compatible (deprecated) IPv6
    ("64:ff9b::127.0.0.1", "loopback"),  # NAT64
    ("2002:7f00:1::1", "loopback"),  # 6to4 around 127.0.0.1
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("10.0.0.1", "private"),
    ("10.255.255.255", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.1", "private"),
    ("::ffff:10.1.2.3", "private"),
    ("::ffff:192.168.0.1", "private"),
    ("fc00::1", "private"),
    ("fd12:3456:789a::1", "private"),
    ("169.254.169.254", "cloud metadata"),
    ("::ffff:169.254.169.254", "cloud metadata"),
    ("fd00:ec2::254", "cloud metadata"),
    ("100.100.100.200", "cloud metadata"),
    ("169.254.0.1", "link-local"),
    ("fe80::1", "link-local"),
    ("100.64.0.1", "shared (CGNAT)"),
    ("100.127.255.254", "shared (CGNAT)"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("255.255.255.255", "private"),  # Python files the broadcast address as private
    ("240.0.0.1", "private"),  # reserved class E
    ("192.0.2.10", "private"),  # documentation
    ("198.18.0.1", "private"),  # benchmarking
    ("2001:db8::1", "private"),  # documentation
    ("fec0::1", "private"),  # site-local (deprecated)
    ("8.8.8.8", None),
    ("1.1.1.1", None),
    ("172.32.0.1", None),  # just outside 172.16/12
    ("100.128.0.1", None),  # just outside 100.64/10
    ("169.255.0.1", None),
    ("::ffff:8.8.8.8", None),
    ("2606:4700:4700::1111", None),
    ("2a00:1450:4001:80b::200e", None),
]


@pytest.mark.parametrize(("address", "category"), ADDRESSES)
def test_default_policy_refuses_every_non_public_address(
    address: str, category: str | None
) -> None:
    ip = ipaddress.ip_address(address)
    assert classify(ip) == category
    assert EgressPolicy().refusal(ip) == category


@pytest.mark.parametrize(
    ("host", "category"),
    [
        ("2130706433", "loopback"),  # decimal
        ("0177.0.0.1", "loopback"),  # octal
        ("0x7f.0.0.1", "loopback"),  # hex
        ("0x7f000001", "loopback"),
        ("127.1", "loopback"),  # short form
        ("017700000001", "loopback"),
        ("0xa9fea9fe", "cloud metadata"),  # 169.254.169.254
        ("3232235777", "private"),  # 192.168.1.1
    ],
)
async def test_numeric_host_forms_are_checked_as_the_address_they_resolve_to(
    host: str, category: str
) -> None:
    """httpx passes such hosts through as names; the system resolver (inet_aton, no DNS
    query) turns them into the address that is actually dialled, and that is checked."""
    resolved = await system_resolver(host, 80)
    assert {classify(ipaddress.ip_address(a)) for a in resolved} == {category}
    recorder = Recorder()
    transport = EgressTransport(EgressPolicy(), inner=httpx.MockTransport(recorder))
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises((EgressRefused, httpx.InvalidURL)) as refused:
            await client.post(f"http://{host}/hook")
    # httpx itself refuses dotted forms that are not plain dec-octets: never sent either.
    if isinstance(refused.value, EgressRefused):
        assert category in refused.value.reason
        assert not refused.value.retryable
    assert recorder.seen == []


def test_allow_list_admits_networks_hosts_and_loopback_when_asked() -> None:
    policy = EgressPolicy.from_settings(
        ["10.1.0.0/16", "fd00:1::/32", "192.168.5.5", "169.254.0.0/16"], allow_loopback=True
    )
    assert policy.refusal(ipaddress.ip_address("10.1.2.3")) is None
    assert policy.refusal(ipaddress.ip_address("::ffff:10.1.2.3")) is None
    assert policy.refusal(ipaddress.ip_address("10.2.0.1")) == "private"
    assert policy.refusal(ipaddress.ip_address("fd00:1::5")) is None
    assert policy.refusal(ipaddress.ip_address("192.168.5.5")) is None
    assert policy.refusal(ipaddress.ip_address("192.168.5.6")) == "private"
    assert policy.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert policy.refusal(ipaddress.ip_address("::1")) is None
    # A broad range does not admit the metadata service; only naming it exactly does.
    assert policy.refusal(ipaddress.ip_address("169.254.1.1")) is None
    assert policy.refusal(ipaddress.ip_address("169.254.169.254")) == "cloud metadata"
    exact = EgressPolicy.from_settings(["169.254.169.254/32"], allow_loopback=False)
    assert exact.refusal(ipaddress.ip_address("169.254.169.254")) is None
    # Loopback admission admits loopback only.
    assert policy.refusal(ipaddress.ip_address("0.0.0.0")) == "unspecified"
    assert EgressPolicy().refusal(ipaddress.ip_address("127.0.0.1")) == "loopback"


def test_allow_list_parsing() -> None:
    networks, hosts = parse_allow(["10.0.0.0/8", " hooks.corp. ", ".svc.cluster.local", ""])
    assert networks == (ipaddress.ip_network("10.0.0.0/8"),)
    assert hosts == frozenset({"hooks.corp", ".svc.cluster.local"})
    for bad in ["not a host!", "a..b", "ex ample.com", "10.0.0.0/33x", "-\x00-"]:
        with pytest.raises(ValueError, match="neither"):
            parse_allow([bad])
    policy = EgressPolicy(allow_hosts=hosts)
    assert policy.host_allowed("HOOKS.corp")
    assert policy.host_allowed("alerts.monitoring.svc.cluster.local")
    assert not policy.host_allowed("svc.cluster.local.evil.test")
    assert not policy.host_allowed("corp")


def test_settings_build_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGRIVER_ALERTER_EGRESS_ALLOW", "10.0.0.0/8, hooks.corp")
    settings = AlerterSettings()
    assert settings.egress_allow == ["10.0.0.0/8", "hooks.corp"]
    policy = settings.egress_policy()
    assert policy.allow_hosts == frozenset({"hooks.corp"})
    assert policy.allow_loopback  # local mode by default
    monkeypatch.setenv("LOGRIVER_ALERTER_EGRESS_ALLOW_LOOPBACK", "false")
    assert not AlerterSettings().egress_policy().allow_loopback
    monkeypatch.delenv("LOGRIVER_ALERTER_EGRESS_ALLOW_LOOPBACK")
    monkeypatch.setenv("LOGRIVER_ALERTER_EGRESS_ALLOW", "10.0.0.0/8,bad host")
    with pytest.raises(ValueError, match="bad host"):
        AlerterSettings()


def _ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200)


class Recorder:
    """An inner transport that records what would have been dialled."""

    def __init__(self, fail_hosts: frozenset[str] = frozenset()) -> None:
        self.seen: list[httpx.Request] = []
        self.fail_hosts = fail_hosts

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if request.url.host in self.fail_hosts:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200)


def resolver_of(*answers: list[str]) -> tuple[list[str], Resolver]:
    """A resolver that gives one answer per call (a rebinding DNS server, if they differ)."""
    calls: list[str] = []
    queue = list(answers)

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return queue.pop(0)

    return calls, resolve


async def test_the_checked_address_is_the_one_dialled_with_host_and_sni_kept() -> None:
    recorder = Recorder()
    calls, resolve = resolver_of(["93.184.216.34"], ["127.0.0.1"])
    transport = EgressTransport(
        EgressPolicy(), inner=httpx.MockTransport(recorder), resolver=resolve
    )
    async with httpx.AsyncClient(transport=transport) as client:
        resp = await client.post("https://hooks.example.com:8443/x?token=t", content=b"{}")
        assert resp.status_code == 200
        (sent,) = recorder.seen
        assert sent.url.host == "93.184.216.34"
        assert sent.url.port == 8443
        assert sent.url.path == "/x"
        assert sent.headers["host"] == "hooks.example.com:8443"
        assert sent.extensions["sni_hostname"] == "hooks.example.com"
        # The name now resolves to loopback (DNS rebinding): the next request is refused,
        # and nothing reaches the inner transport.
        with pytest.raises(EgressRefused, match="loopback"):
            await client.post("https://hooks.example.com:8443/x", content=b"{}")
    assert len(recorder.seen) == 1
    assert calls == ["hooks.example.com", "hooks.example.com"]


async def test_every_resolved_address_must_pass() -> None:
    recorder = Recorder()
    _, resolve = resolver_of(["93.184.216.34", "10.0.0.5"])
    transport = EgressTransport(
        EgressPolicy(), inner=httpx.MockTransport(recorder), resolver=resolve
    )
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(EgressRefused, match="private"):
            await client.post("http://mixed.example.com/")
    assert recorder.seen == []


async def test_allowed_host_names_and_fallback_addresses() -> None:
    recorder = Recorder(fail_hosts=frozenset({"10.0.0.5"}))
    _, resolve = resolver_of(["10.0.0.5", "10.0.0.6"])
    transport = EgressTransport(
        EgressPolicy(allow_hosts=frozenset({"hooks.corp"})),
        inner=httpx.MockTransport(recorder),
        resolver=resolve,
    )
    async with httpx.AsyncClient(transport=transport) as client:
        resp = await client.post("http://hooks.corp/alert")
    assert resp.status_code == 200
    assert [r.url.host for r in recorder.seen] == ["10.0.0.5", "10.0.0.6"]


async def test_unresolvable_names_are_a_retryable_refusal() -> None:
    async def fail(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    transport = EgressTransport(EgressPolicy(), inner=httpx.MockTransport(_ok), resolver=fail)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(EgressRefused) as refused:
            await client.post("http://nowhere.invalid/")
    assert refused.value.retryable
    assert "does not resolve" in refused.value.reason


async def test_ip_literals_are_checked_without_resolving() -> None:
    async def never(host: str, port: int) -> list[str]:
        raise AssertionError("an IP literal was resolved")

    transport = EgressTransport(EgressPolicy(), inner=httpx.MockTransport(_ok), resolver=never)
    async with httpx.AsyncClient(transport=transport) as client:
        for url in ("http://[::ffff:127.0.0.1]/", "http://[fd00:ec2::254]/", "http://10.0.0.1/"):
            with pytest.raises(EgressRefused):
                await client.post(url)
        assert (await client.post("http://8.8.8.8/")).status_code == 200
