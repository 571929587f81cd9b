import pytest
from hypothesis import assume, given, strategies as st

from dockyard.errors import InvalidReference
from dockyard.image import reference
from dockyard.image.reference import parse

HEX = "a" * 64


@pytest.mark.parametrize("text, full, familiar", [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("user/app:v2", "docker.io/user/app:v2", "user/app:v2"),
    ("127.0.0.1:5000/a/b:t", "127.0.0.1:5000/a/b:t", "127.0.0.1:5000/a/b:t"),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
    ("localhost:5000/app", "localhost:5000/app:latest", "localhost:5000/app:latest"),
    ("registry.example.com/team/sub/app:1.0-rc_2", "registry.example.com/team/sub/app:1.0-rc_2",
     "registry.example.com/team/sub/app:1.0-rc_2"),
    ("[::1]:5000/app:x", "[::1]:5000/app:x", "[::1]:5000/app:x"),
    (f"busybox@sha256:{HEX}", f"docker.io/library/busybox@sha256:{HEX}", f"busybox@sha256:{HEX}"),
    (f"busybox:v1@sha256:{HEX}", f"docker.io/library/busybox:v1@sha256:{HEX}", f"busybox:v1@sha256:{HEX}"),
    ("a__b/c--d.e_f:x", "docker.io/a__b/c--d.e_f:x", "a__b/c--d.e_f:x"),
])
def test_normalisation(text, full, familiar):
    ref = parse(text)
    assert str(ref) == full
    assert ref.familiar == familiar


@pytest.mark.parametrize("text, rule", [
    ("", "empty"),
    ("Busybox", "must be lowercase"),
    ("busybox:", "a tag must be"),
    ("busybox:.x", "a tag must be"),
    ("busybox:" + "x" * 129, "a tag must be"),
    ("a//b", "empty component"),
    ("a/b/", "empty component"),
    ("a..b", "path component"),
    ("-a", "path component"),
    ("a_-b", "path component"),
    ("a b", "whitespace"),
    ("busybox@sha256:abc", "at least 32 hex"),
    (f"busybox@sha256:{'A' * 64}", "64 lowercase hex"),
    (f"busybox@md5:{'a' * 32}", "unsupported digest algorithm"),
    ("ex-.ample.com/a", "domain"),
    ("example.com:port/a", "port"),
    ("[::1/a", "IPv6"),
    (HEX, "64-character hexadecimal"),
    ("a" * 256, "255"),
])
def test_invalid_names_say_which_rule(text, rule):
    with pytest.raises(InvalidReference) as err:
        parse(text)
    assert rule in str(err.value)


def test_domain_detection_follows_docker():
    assert parse("foo.com/app").domain == "foo.com"
    assert parse("foo/app").domain == "docker.io"
    assert parse("foo:5000/app").domain == "foo:5000"
    # An upper-case first component can only be a host name.
    assert parse("Registry/app").domain == "Registry"


def test_ids_are_recognised():
    assert reference.looks_like_id("abc123")
    assert reference.looks_like_id("sha256:" + HEX)
    assert not reference.looks_like_id("busybox")
    assert not reference.looks_like_id("a" * 65)


component = st.from_regex(r"[a-z0-9]{1,5}(?:(?:[._]|__|-{1,2})[a-z0-9]{1,5}){0,2}", fullmatch=True)
tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
domain = st.sampled_from(["", "localhost/", "127.0.0.1:5000/", "registry.example.com/", "my-reg.io:443/"])


@given(domain, st.lists(component, min_size=1, max_size=3), st.one_of(st.none(), tag))
def test_every_valid_name_parses_and_round_trips(dom, parts, t):
    # Without a domain, a first component with a dot would be read as a host name (Docker's rule).
    assume(dom or len(parts) == 1 or "." not in parts[0])
    text = dom + "/".join(parts) + (f":{t}" if t else "")
    ref = parse(text)
    assert parse(str(ref)) == ref
    assert parse(ref.familiar) == ref
    assert ref.tag == (t or "latest")


@given(st.text(max_size=40))
def test_parser_never_crashes(text):
    try:
        ref = parse(text)
    except InvalidReference:
        return
    assert parse(str(ref)) == ref
