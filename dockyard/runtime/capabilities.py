"""Linux capabilities: names to numbers, and applying the spec's five sets to the calling process.

Order matters and follows the kernel's rules: the bounding set is trimmed while we are still root with
CAP_SETPCAP; then the caller switches user with PR_SET_KEEPCAPS so the permitted set survives setuid; then
`apply_sets` sets effective/permitted/inheritable and raises the ambient ones.
"""

from __future__ import annotations

from dockyard.errors import InvalidArgument
from dockyard.runtime import syscalls

NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
NUMBERS = {name: i for i, name in enumerate(NAMES)}
SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
            return int(f.read())
    except OSError:
        return len(NAMES) - 1


def normalize(name: str) -> str:
    """'net_admin', 'NET_ADMIN' and 'CAP_NET_ADMIN' all name the same capability."""
    upper = name.strip().upper()
    return upper if upper.startswith("CAP_") else f"CAP_{upper}"


def to_mask(names: list[str] | None, *, strict: bool = False) -> int:
    """Bit mask of the named capabilities. Unknown names are skipped (as runc does) unless strict."""
    mask = 0
    for name in names or ():
        number = NUMBERS.get(normalize(name))
        if number is None:
            if strict:
                raise InvalidArgument(f"unknown capability {name!r}")
            continue
        mask |= 1 << number
    return mask


def current_permitted() -> int:
    """Our own permitted set: a child can only keep what we hold (here CAP_SYS_RESOURCE may be missing)."""
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"CapPrm:"):
                return int(line.split()[1], 16)
    return 0


class Plan:
    """The five sets of process.capabilities, as masks clipped to what this process can grant."""

    def __init__(self, spec_caps: dict | None) -> None:
        spec_caps = spec_caps or {}
        available = current_permitted()
        self.masks = {s: to_mask(spec_caps.get(s)) & available for s in SETS}

    def drop_bounding(self) -> None:
        keep = self.masks["bounding"]
        for cap in range(last_cap() + 1):
            if not keep & (1 << cap):
                try:
                    syscalls.prctl(syscalls.PR_CAPBSET_DROP, cap)
                except OSError as e:
                    if e.errno != 22:  # EINVAL: a capability this kernel doesn't know
                        raise

    def apply_sets(self) -> None:
        m = self.masks
        syscalls.capset(m["effective"], m["permitted"], m["inheritable"])
        syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_CLEAR_ALL)
        for cap in range(last_cap() + 1):
            if m["ambient"] & (1 << cap):
                try:
                    syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_RAISE, cap)
                except OSError as e:
                    # EPERM/EINVAL: not in both permitted and inheritable; runc skips these too.
                    if e.errno not in (1, 22):
                        raise
