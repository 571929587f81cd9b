"""Users and groups from the image's /etc/passwd and /etc/group, read safely inside the rootfs.

`resolve(rootfs, "name[:group]")` gives the numeric uid/gid/supplementary gids that go into the spec's
process.user, the way Docker's `-u` works: names are looked up in the image (files are opened with
RESOLVE_IN_ROOT, so an /etc/passwd symlink cannot make us read a host file), numbers are taken as they are,
and a user given by name also gets the groups that list it in /etc/group.
"""

from __future__ import annotations

import os

from dockyard.errors import InvalidArgument, NotFound

MAX_ID = 2**32 - 2
_MAX_FILE = 4 << 20


class User:
    def __init__(self, uid: int, gid: int, additional_gids: list[int] | None = None, home: str = "/",
                 name: str | None = None) -> None:
        self.uid, self.gid, self.additional_gids = uid, gid, list(additional_gids or [])
        self.home, self.name = home, name

    def __repr__(self) -> str:
        return f"User(uid={self.uid}, gid={self.gid}, additional_gids={self.additional_gids}, home={self.home!r})"


def _read_in_root(rootfs: str, path: str) -> list[list[str]]:
    from dockyard.runtime import paths

    try:
        root = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise NotFound(f"rootfs {rootfs}: {e.strerror}") from None
    try:
        fd = paths.open_in_root(root, path, os.O_RDONLY)
    except OSError:
        return []
    finally:
        os.close(root)
    with os.fdopen(fd, "rb") as f:
        data = f.read(_MAX_FILE)
    rows = []
    for line in data.decode(errors="replace").splitlines():
        if line and not line.startswith("#"):
            rows.append(line.split(":"))
    return rows


def _parse_id(text: str, what: str) -> int | None:
    if not text.isdigit():
        return None
    value = int(text)
    if value > MAX_ID:
        raise InvalidArgument(f"{what} {text} is out of range (0..{MAX_ID})")
    return value


def resolve(rootfs: str, spec: str | None) -> User:
    """Resolve "user", "uid", "user:group", "uid:gid" (empty means root) against the image."""
    spec = spec or "0"
    user_part, _, group_part = spec.partition(":")
    passwd = _read_in_root(rootfs, "/etc/passwd")
    uid = _parse_id(user_part, "uid")
    entry = None
    for row in passwd:
        if len(row) >= 4 and (row[0] == user_part if uid is None else row[2] == str(uid)):
            entry = row
            break
    if uid is None:
        if entry is None:
            raise NotFound(f"unable to find user {user_part}: no matching entries in passwd file")
        uid = _parse_id(entry[2], "uid")
        if uid is None:
            raise InvalidArgument(f"bad uid in /etc/passwd for {user_part}")
    gid = _parse_id(entry[3], "gid") if entry else 0
    home = entry[5] if entry and len(entry) > 5 and entry[5] else "/"
    name = entry[0] if entry else None
    groups = _read_in_root(rootfs, "/etc/group")
    additional: list[int] = []
    if group_part:
        gid = _group_id(groups, group_part)
    elif name is not None:
        for row in groups:
            if len(row) >= 4 and name in row[3].split(",") and row[2].isdigit():
                g = _parse_id(row[2], "gid")
                if g is not None and g != gid and g not in additional:
                    additional.append(g)
    return User(uid=uid, gid=gid or 0, additional_gids=additional, home=home, name=name)


def _group_id(groups: list[list[str]], group: str) -> int:
    gid = _parse_id(group, "gid")
    if gid is not None:
        return gid
    for row in groups:
        if len(row) >= 3 and row[0] == group:
            value = _parse_id(row[2], "gid")
            if value is not None:
                return value
    raise NotFound(f"unable to find group {group}: no matching entries in group file")


def home_of(uid: int, passwd_rows: list[list[str]]) -> str:
    for row in passwd_rows:
        if len(row) > 5 and row[2] == str(uid):
            return row[5] or "/"
    return "/"


def home_in_current_root(uid: int) -> str:
    """HOME for a process whose spec env lacks it (called by the init after pivot_root)."""
    try:
        with open("/etc/passwd", "rb") as f:
            rows = [line.split(":") for line in f.read(_MAX_FILE).decode(errors="replace").splitlines()]
    except OSError:
        return "/"
    return home_of(uid, rows)
