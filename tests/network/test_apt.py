"""A Debian container reaches what the host reaches (through NAT and the host's resolver): apt works."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_apt_in_a_debian_container(dy, debian):
    script = "apt-get update -q && apt-get install -y -q --no-install-recommends hello && hello"
    out = dy.out("run", "--rm", "debian:bookworm", "sh", "-c", script, timeout=600)
    assert "Hello, world!" in out
    # On a user network the names go through the embedded DNS server's relay.
    dy("network", "create", "aptnet")
    out = dy.out("run", "--rm", "--network", "aptnet", "debian:bookworm", "sh", "-c",
                 "grep nameserver /etc/resolv.conf && apt-get update -q", timeout=600)
    assert "nameserver 127.0.0.11" in out and "Reading package lists" in out
