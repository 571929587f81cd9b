"""Builds on Debian (slow: the base image is bootstrapped once per session): users and groups from the image,
big RUN layers, and apt-get over the network (Debian's mirror only)."""

from __future__ import annotations

import socket

import pytest

from tests.build.imagefs import image_files, inspect

pytestmark = pytest.mark.slow


def test_users_from_the_image_and_a_big_layer(dy, debian, context, build):
    ctx = context("""\
FROM debian:bookworm
RUN useradd --create-home --uid 1500 app
COPY --chown=app:app config.ini /home/app/
USER app
WORKDIR /home/app/data
RUN whoami > who && head -c 20000000 /dev/zero > zeros && stat -c %U config.ini 2>/dev/null || true
""", {"config.ini": "[app]\n"})
    build(ctx, "-t", "deb:1")
    files = image_files(dy.root, "deb:1")
    assert (files["home/app/config.ini"].uid, files["home/app/config.ini"].gid) == (1500, 1500)
    assert files["home/app/data"].uid == 1500
    assert files["home/app/data/who"].data == b"app\n"
    assert len(files["home/app/data/zeros"].data) == 20_000_000
    assert inspect(dy, "deb:1")["Config"]["User"] == "app"


def _mirror_reachable() -> bool:
    try:
        with socket.create_connection(("deb.debian.org", 80), timeout=5):
            return True
    except OSError:
        return False


def test_apt_get_install(dy, debian, context, build):
    if not _mirror_reachable():
        pytest.skip("deb.debian.org is not reachable")
    ctx = context("""\
FROM debian:bookworm
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends jq && rm -rf /var/lib/apt/lists/*
RUN echo '{"built": "by dockyard"}' | jq -r .built > /jq-says
""")
    build(ctx, "-t", "apt:1")
    assert image_files(dy.root, "apt:1")["jq-says"].data == b"by dockyard\n"
