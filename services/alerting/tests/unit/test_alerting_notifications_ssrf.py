"""The SSRF guard's matrix: every address class, every IPv6 form that embeds an IPv4
address, every unusual IPv4 spelling, URL forms, and what the deployment may allow. No I/O."""

from __future__ import annotations

import ipaddress

import pytest

from outpost_alerting.domain import ssrf
from outpost_alerting.domain.ssrf import Category, Policy

pytestmark = pytest.mark.unit

STRICT = Policy()
LOOPBACK_OK = Policy(allow_loopback=True)
PRIVATE_OK = Policy(allow_private=True)
BOTH_OK = Policy(allow_loopback=True, allow_private=True)

CLASSES = [
    # IPv4
    ("127.0.0.1", Category.LOOPBACK),
    ("127.255.255.254", Category.LOOPBACK),
    ("10.0.0.1", Category.PRIVATE),
    ("10.255.255.255", Category.PRIVATE),
    ("172.16.0.1", Category.PRIVATE),
    ("172.31.255.255", Category.PRIVATE),
    ("192.168.1.1", Category.PRIVATE),
    ("100.64.0.1", Category.PRIVATE),  # CGNAT
    ("100.127.255.254", Category.PRIVATE),
    ("169.254.169.254", Category.LINK_LOCAL),  # cloud metadata
    ("169.254.0.1", Category.LINK_LOCAL),
    ("224.0.0.1", Category.MULTICAST),
    ("239.255.255.250", Category.MULTICAST),
    ("0.0.0.0", Category.UNSPECIFIED),
    ("0.1.2.3", Category.UNSPECIFIED),
    ("240.0.0.1", Category.RESERVED),
    ("255.255.255.255", Category.RESERVED),
    ("192.0.0.8", Category.RESERVED),
    ("192.0.2.10", Category.RESERVED),
    ("198.18.0.1", Category.RESERVED),
    ("198.51.100.7", Category.RESERVED),
    ("203.0.113.9", Category.RESERVED),
    ("192.88.99.1", Category.RESERVED),
    ("8.8.8.8", Category.PUBLIC),
    ("1.1.1.1", Category.PUBLIC),
    ("172.15.255.255", Category.PUBLIC),  # just outside 172.16/12
    ("172.32.0.0", Category.PUBLIC),
    ("100.63.255.255", Category.PUBLIC),  # just outside CGNAT
    ("100.128.0.0", Category.PUBLIC),
    ("11.0.0.1", Category.PUBLIC),
    # IPv6
    ("::1", Category.LOOPBACK),
    ("::", Category.UNSPECIFIED),
    ("fc00::1", Category.PRIVATE),
    ("fd12:3456:789a::1", Category.PRIVATE),
    ("fe80::1", Category.LINK_LOCAL),
    ("febf::1", Category.LINK_LOCAL),
    ("fec0::1", Category.RESERVED),
    ("ff02::1", Category.MULTICAST),
    ("ff05::1:3", Category.MULTICAST),
    ("2001:db8::1", Category.RESERVED),
    ("100::1", Category.RESERVED),
    ("2001::1", Category.RESERVED),  # Teredo
    ("64:ff9b:1::1", Category.RESERVED),
    ("4000::1", Category.RESERVED),  # outside global unicast
    ("2606:4700:4700::1111", Category.PUBLIC),
    ("2a00:1450:4001:82b::200e", Category.PUBLIC),
    # IPv6 forms of IPv4 addresses: judged as the IPv4 address
    ("::ffff:127.0.0.1", Category.LOOPBACK),
    ("::ffff:7f00:1", Category.LOOPBACK),
    ("::ffff:10.1.2.3", Category.PRIVATE),
    ("::ffff:169.254.169.254", Category.LINK_LOCAL),
    ("::ffff:8.8.8.8", Category.PUBLIC),
    ("::127.0.0.1", Category.LOOPBACK),  # IPv4-compatible
    ("::10.0.0.1", Category.PRIVATE),
    ("64:ff9b::127.0.0.1", Category.LOOPBACK),  # NAT64
    ("64:ff9b::a9fe:a9fe", Category.LINK_LOCAL),
    ("64:ff9b::808:808", Category.PUBLIC),
    ("2002:7f00:1::", Category.LOOPBACK),  # 6to4 of 127.0.0.1
    ("2002:c0a8:101::1", Category.PRIVATE),  # 6to4 of 192.168.1.1
    ("2002:808:808::1", Category.PUBLIC),
]


@pytest.mark.parametrize(("address", "category"), CLASSES)
def test_every_address_class(address: str, category: Category) -> None:
    assert ssrf.classify(ipaddress.ip_address(address)) is category


def test_a_scoped_ipv6_address_is_link_local() -> None:
    assert ssrf.classify(ipaddress.IPv6Address("fe80::1%eth0")) is Category.LINK_LOCAL


@pytest.mark.parametrize(("address", "category"), CLASSES)
def test_policies(address: str, category: Category) -> None:
    ip = ipaddress.ip_address(address)
    for policy in (STRICT, LOOPBACK_OK, PRIVATE_OK, BOTH_OK):
        allowed = (
            category is Category.PUBLIC
            or (category is Category.LOOPBACK and policy.allow_loopback)
            or (category is Category.PRIVATE and policy.allow_private)
        )
        if allowed:
            ssrf.check_address(ip, policy)
        else:
            with pytest.raises(ssrf.AddressRefused) as info:
                ssrf.check_address(ip, policy)
            assert info.value.category is category and info.value.address == ip
            # The caller's text says neither the address nor its class (decision 78).
            assert str(info.value) == ssrf.ADDRESS_REFUSED


def test_one_bad_address_refuses_them_all() -> None:
    good = ipaddress.ip_address("8.8.8.8")
    bad = ipaddress.ip_address("10.0.0.1")
    assert ssrf.check_addresses([good], STRICT) == [good]
    with pytest.raises(ssrf.AddressRefused) as info:
        ssrf.check_addresses([good, bad], STRICT)
    assert info.value.category is Category.PRIVATE and info.value.address == bad
    with pytest.raises(ssrf.AddressRefused) as info:
        ssrf.check_addresses([], BOTH_OK)
    assert info.value.category is None and str(info.value) == ssrf.ADDRESS_REFUSED


# inet_aton reads all of these as 127.0.0.1 (or another address), so a resolver would too.
LOOSE_V4 = [
    ("2130706433", "127.0.0.1"),
    ("0x7f000001", "127.0.0.1"),
    ("017700000001", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"),
    ("0x7f.0.0.1", "127.0.0.1"),
    ("0x7f.1", "127.0.0.1"),
    ("127.1", "127.0.0.1"),
    ("127.0.1", "127.0.0.1"),
    ("0", "0.0.0.0"),
    ("0x0a.0x00.0x00.0x01", "10.0.0.1"),
    ("012.0.0.1", "10.0.0.1"),
    ("3232235777", "192.168.1.1"),
    ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
    ("2852039166", "169.254.169.254"),
    ("134744072", "8.8.8.8"),  # even a public address: the spelling is refused
    ("127.0.0.1.", "127.0.0.1"),
]


@pytest.mark.parametrize(("host", "address"), LOOSE_V4)
def test_inet_aton_reads_unusual_spellings(host: str, address: str) -> None:
    assert ssrf.inet_aton(host) == ipaddress.IPv4Address(address)


@pytest.mark.parametrize(("host", "_address"), LOOSE_V4)
def test_unusual_ipv4_spellings_are_refused_in_urls(host: str, _address: str) -> None:
    with pytest.raises(ssrf.Refused, match="unusually"):
        ssrf.parse(f"http://{host}/hook")


@pytest.mark.parametrize(
    "host", ["256.1.1.1", "1.2.3.4.5", "08.1.1.1", "example.com", "1e3", "4294967296", "1..2"]
)
def test_not_inet_aton_literals(host: str) -> None:
    assert ssrf.inet_aton(host) is None


def test_a_bare_hex_prefix_counts_as_zero() -> None:
    """The safe reading of a spelling some C libraries accept."""
    assert ssrf.inet_aton("0x") == ipaddress.IPv4Address("0.0.0.0")


@pytest.mark.parametrize(
    ("url", "literal"),
    [
        ("http://[::ffff:127.0.0.1]/x", "::ffff:127.0.0.1"),
        ("http://[::ffff:7f00:1]:8080/x", "::ffff:7f00:1"),
        ("https://[::1]/x", "::1"),
        ("http://127.0.0.1:9000/hook?a=1", "127.0.0.1"),
        ("http://10.0.0.1/", "10.0.0.1"),
    ],
)
def test_literals_are_parsed_and_then_refused(url: str, literal: str) -> None:
    target = ssrf.parse(url)
    assert target.literal == ipaddress.ip_address(literal)
    with pytest.raises(ssrf.Refused):
        ssrf.check_address(target.literal, STRICT)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/x", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("gopher://example.com/", "http or https"),
        ("javascript:alert(1)", "http or https"),
        ("//example.com/x", "http or https"),
        ("http:///x", "no host"),
        ("http://user:pass@example.com/", "credentials"),
        ("http://example.com@127.0.0.1/", "credentials"),
        ("http://example.com\\@127.0.0.1/", "credentials"),
        ("http://exa mple.com/", "spaces"),
        ("http://example.com/\nX-Injected: 1", "control"),
        ("http://example.com:0/", "port 0"),
        ("http://example.com:99999/", "not a valid URL"),
        ("http://[::1/", "not a valid URL"),
        ("http://[example.com]/", "not a valid URL"),
        ("http://exa_mple..com/", "neither"),
        ("http://-bad.com/", "neither"),
        ("http://%31%32%37.0.0.1/", "neither"),  # percent-encoded 127
        ("http://\uff11\uff12\uff17.0.0.1/", "neither"),  # fullwidth digits
        ("http://b\u00fccher.example/", "neither"),  # IDN: give it as punycode
        ("http://[::1%25eth0]/", "zone"),
        ("http://[fe80::1%eth0]/", "zone"),
        ("http://xn--caf-dma.com." + "a" * 250 + "/", "neither"),
        ("http://" + "a" * 2050 + ".com/", "longer"),
    ],
)
def test_malformed_urls(url: str, why: str) -> None:
    with pytest.raises(ssrf.Refused, match=why):
        ssrf.parse(url)


def test_a_good_url_keeps_host_port_and_path() -> None:
    target = ssrf.parse("HTTPS://Hooks.Example.com/in/coming?x=1")
    assert (target.scheme, target.host, target.port, target.path) == (
        "https",
        "hooks.example.com",
        443,
        "/in/coming?x=1",
    )
    assert target.literal is None
    assert target.host_header == "hooks.example.com"
    ip = ipaddress.ip_address("93.184.216.34")
    assert target.url_for(ip) == "https://93.184.216.34:443/in/coming?x=1"
    v6 = ssrf.parse("http://example.com:8080")
    assert v6.path == "/" and v6.host_header == "example.com:8080"
    assert v6.url_for(ipaddress.ip_address("2606:4700::1")) == "http://[2606:4700::1]:8080/"
    assert ssrf.parse("http://[2606:4700::1]:81/").host_header == "[2606:4700::1]:81"
