"""`ADD <url>`: downloading a file as Docker does.

The file is named after the URL's last path segment (or the Content-Disposition filename), gets mode 0600 and
the server's Last-Modified time; `--checksum=sha256:...` is verified. Every build downloads again and the
content's digest enters the cache key, so a changed file re-runs the step and an unchanged one hits the cache.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import urllib.parse
import urllib.request
from email.utils import parsedate_to_datetime

from dockyard.build.errors import DockerfileError

TIMEOUT = 60
CHUNK = 1 << 20
_DISPOSITION = re.compile(r'filename="?([^";]+)"?')


def download(url: str, directory: str, checksum: str | None = None) -> tuple[str, str]:
    """Fetch `url` into `directory`; returns (the file's path, its sha256 digest)."""
    request = urllib.request.Request(url, headers={"User-Agent": "dockyard-build"})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT)
    except (OSError, ValueError) as e:
        raise DockerfileError(f"failed to download {url}: {e}") from None
    with response:
        name = _file_name(url, response.headers.get("Content-Disposition"))
        path = os.path.join(directory, name)
        h = hashlib.sha256()
        with open(path, "xb") as out:
            try:
                while chunk := response.read(CHUNK):
                    h.update(chunk)
                    out.write(chunk)
            except OSError as e:
                raise DockerfileError(f"failed to download {url}: {e}") from None
        os.chmod(path, 0o600)
        modified = response.headers.get("Last-Modified")
    digest = "sha256:" + h.hexdigest()
    if checksum is not None and checksum != digest:
        raise DockerfileError(f"digest mismatch for {url}: expected {checksum}, got {digest}")
    if modified:
        try:
            stamp = parsedate_to_datetime(modified).timestamp()
            os.utime(path, (stamp, stamp))
        except (TypeError, ValueError, OverflowError):
            pass
    return path, digest


def _file_name(url: str, disposition: str | None) -> str:
    if disposition:
        m = _DISPOSITION.search(disposition)
        if m:
            name = posixpath.basename(m.group(1).strip())
            if name not in ("", ".", ".."):
                return name
    name = posixpath.basename(urllib.parse.urlsplit(url).path)
    name = urllib.parse.unquote(name)
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise DockerfileError(f"cannot determine a file name for {url} (give the destination a file name)")
    return name


def check_checksum(text: str | None) -> str | None:
    if text is None:
        return None
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", text):
        raise DockerfileError(f"invalid checksum {text!r}: expected sha256:<64 hex digits>")
    return text
