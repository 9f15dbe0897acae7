"""Base URLs as people type them, joined with paths, and the hosts users refuse (pure:
`locustfiles/hosts.py` imports no Locust)."""

from __future__ import annotations

import pytest

from locustfiles.hosts import HostError, HostRefused, allowed, canonical, join
from locustfiles.settings import HOSTS, SERVICES, load_settings

pytestmark = pytest.mark.core

GATEWAY = "http://127.0.0.1:8080"
LAB = {"gateway": GATEWAY, "orders (load balancer)": "http://127.0.0.1:4002"}


def check(value: str, expected: str) -> None:
    assert canonical(value) == expected, value
    assert join(canonical(value), "/api/auth/login") == expected + "/api/auth/login"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://127.0.0.1:8080", GATEWAY),
        ("http://127.0.0.1:8080/", GATEWAY),  # what `harness up` printed before: the bug
        ("http://127.0.0.1:8080//", GATEWAY),
        ("127.0.0.1:8080", GATEWAY),
        ("127.0.0.1:8080/", GATEWAY),
        ("  http://127.0.0.1:8080/ ", GATEWAY),  # pasted with white space
        ("http://localhost:8080/", GATEWAY),
        ("localhost:8080", GATEWAY),
        ("HTTP://LocalHost:8080", GATEWAY),
        ("http://127.0.0.1:8080/shop/", GATEWAY + "/shop"),  # a prefix stays a prefix
        ("https://127.0.0.1:8443", "https://127.0.0.1:8443"),
        ("http://[::1]:8080/", "http://[::1]:8080"),
        ("http://shop.lab:4001", "http://shop.lab:4001"),
    ],
)
def test_every_form_a_person_types_names_one_base(value: str, expected: str) -> None:
    """Trailing slashes, no scheme, `localhost`: one spelling, one `/` before the path."""
    check(value, expected)


def test_join_puts_exactly_one_slash_between_base_and_path() -> None:
    """`join` needs no leading slash on the path and never doubles one."""
    assert join(GATEWAY, "api/orders") == GATEWAY + "/api/orders"
    assert join(GATEWAY, "//api/orders") == GATEWAY + "/api/orders"
    assert join(GATEWAY + "/shop", "/api/orders") == GATEWAY + "/shop/api/orders"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "expected http://HOST:PORT"),
        ("ftp://127.0.0.1:21", "expected http://HOST:PORT"),
        ("http://127.0.0.1:99999", "bad port"),
        ("http://127.0.0.1:8080/?x=1", "no query"),
        ("http://me:pw@127.0.0.1:8080", "no query, fragment or user"),
    ],
)
def test_what_is_not_a_base_url_says_why(value: str, message: str) -> None:
    """A malformed base is a HostError naming the problem."""
    with pytest.raises(HostError, match=message):
        canonical(value)


def test_any_loopback_host_is_allowed_when_the_lab_lists_none() -> None:
    """By hand (no RUSHLAB_HOSTS), every loopback address goes, in any form."""
    assert allowed("127.0.0.1:9999/", {}, strict=False) == "http://127.0.0.1:9999"
    assert allowed("http://127.42.0.7:80", {}, strict=False) == "http://127.42.0.7:80"
    assert allowed("localhost:1", {}, strict=False) == "http://127.0.0.1:1"


@pytest.mark.parametrize(
    "value", ["http://10.0.0.1:80", "http://8.8.8.8/", "example.com:80", "http://shop.lab:1"]
)
def test_a_non_loopback_host_is_refused_even_without_a_list(value: str) -> None:
    """The loopback-only rule: another address, or a name the lab did not give, is refused."""
    with pytest.raises(HostRefused, match="loopback only"):
        allowed(value, {}, strict=False)


def test_a_lab_name_is_allowed() -> None:
    """A DNS name the lab itself gave (a service's URL) is not refused as non-loopback."""
    assert allowed("http://shop.lab:4001/", {"orders": "http://shop.lab:4001"}, strict=False) == (
        "http://shop.lab:4001"
    )


def test_with_the_lab_list_only_its_bases_go_and_the_refusal_lists_them() -> None:
    """With RUSHLAB_HOSTS, any form of a listed base goes; another loopback port, a prefix
    the lab has not, or garbage is refused naming what to paste (each URL once)."""
    lab = {**LAB, "host": GATEWAY}
    assert allowed("localhost:8080/", lab, strict=True) == GATEWAY
    for value in ("http://127.0.0.1:9999", "http://127.0.0.1:8080/api/", "nonsense:x"):
        with pytest.raises(HostRefused) as info:
            allowed(value, lab, strict=True)
        message = str(info.value)
        assert message.startswith(f"host {value!r} refused: ")
        assert message.endswith(
            "; paste one of: gateway http://127.0.0.1:8080, "
            "orders (load balancer) http://127.0.0.1:4002"
        )


def test_settings_know_the_lab_bases_from_hosts_and_services() -> None:
    """RUSHLAB_HOSTS and RUSHLAB_SERVICES together are the bases; strict only with hosts."""
    both = load_settings({HOSTS: '{"gateway": "http://localhost:8080/"}',
                          SERVICES: '{"orders": "127.0.0.1:4002"}'})  # fmt: skip
    assert both.lab_bases == {"gateway": GATEWAY, "orders": "http://127.0.0.1:4002"}
    assert both.strict_hosts
    assert not load_settings({SERVICES: '{"orders": "127.0.0.1:4002"}'}).strict_hosts
