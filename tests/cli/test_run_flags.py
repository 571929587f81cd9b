"""Flag values of run/create, parsed as the docker CLI parses them."""

import pytest

from dockyard.cli.run_flags import parse_ports, parse_size
from dockyard.errors import InvalidArgument


@pytest.mark.parametrize("text, value", [
    ("512", 512), ("512b", 512), ("512k", 512 << 10), ("64m", 64 << 20), ("64M", 64 << 20), ("1.5g", 3 << 29),
    ("2GiB", 2 << 30), ("10MB", 10 << 20), ("1t", 1 << 40), (" 64 m ", 64 << 20),
])
def test_sizes(text, value):
    assert parse_size(text, "--memory") == value


@pytest.mark.parametrize("text", ["12q", "", "m", "1.2.3k", "-5m", "k5", "5mm"])
def test_bad_sizes(text):
    with pytest.raises(InvalidArgument, match="invalid size"):
        parse_size(text, "--memory")


def test_ports():
    exposed, bindings = parse_ports(["8080:80", "127.0.0.1:5353:53/udp", "9000", "7000-7001:7000-7001"])
    assert exposed == {"80/tcp": {}, "53/udp": {}, "9000/tcp": {}, "7000/tcp": {}, "7001/tcp": {}}
    assert bindings["80/tcp"] == [{"HostIp": "", "HostPort": "8080"}]
    assert bindings["53/udp"] == [{"HostIp": "127.0.0.1", "HostPort": "5353"}]
    assert bindings["9000/tcp"] == [{"HostIp": "", "HostPort": ""}]
    assert bindings["7001/tcp"] == [{"HostIp": "", "HostPort": "7001"}]
    for bad in ("abc", "1:2:3:4", "70000", "80/sctpx", "1-2:3-5"):
        with pytest.raises(InvalidArgument):
            parse_ports([bad])
