"""What overlayfs leaves in a layer directory, and looking a path up through stacked layer directories as
overlayfs would. Standard library only (not tarfile), so the engine imports it without layer_apply's cost."""

from __future__ import annotations

import errno
import os
import stat

from dockyard.fsutil import DIR_FLAGS

OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"


def is_whiteout(st: os.stat_result) -> bool:
    """overlayfs marks a deletion with a character device 0/0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(fd: int) -> bool:
    """A directory that hides whatever lower layers hold under the same path."""
    try:
        return os.getxattr(fd, OVERLAY_OPAQUE_XATTR) == b"y"
    except OSError:
        return False


def find_in_layers(layer_fds: list[int], parts: tuple[str, ...] | list[str]) -> tuple[os.stat_result, int] | None:
    """(stat, layer fd) of `parts` in the topmost of `layer_fds` (top first) that has it, as the merged tree
    would show it: a whiteout, a non-directory on the way or an opaque directory above hides what is below.
    Links are not followed."""
    for layer in layer_fds:
        fd = os.dup(layer)
        try:
            hidden_below = False
            for part in parts[:-1]:
                try:
                    child = os.open(part, DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno in (errno.ENOTDIR, errno.ELOOP):
                        return None  # a file, link or whiteout here hides anything deeper
                    raise
                os.close(fd)
                fd = child
                hidden_below = hidden_below or is_opaque(fd)
            else:
                try:
                    st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    if hidden_below:
                        return None
                    continue
                return None if is_whiteout(st) else (st, layer)
            if hidden_below:
                return None
        finally:
            os.close(fd)
    return None
