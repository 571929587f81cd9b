"""`RUN --mount=type=bind|cache|tmpfs|secret`: what each becomes in the step's container, and its cache input.

* bind: a read-only view of a path in the context, a stage or an image (`rw`: a private copy whose changes are
  thrown away). Its content digest is part of the step's cache key, as BuildKit's is.
* cache: a directory that persists across builds under `<root>/build/cache-mounts/`, keyed by `id` (default:
  the target); `sharing=locked` serialises the builds using it. Not part of the cache key.
* tmpfs: an empty tmpfs.
* secret: a `--secret id=...` of the build command, as a read-only file (default /run/secrets/<id>) or an
  environment variable (`env=`); never in a layer, never in the cache key.

None of them ends up in the layer: mounts cover their target, and targets the image lacked are removed after
the step (see run_step).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import posixpath
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dockyard.build.config_values import clean_path
from dockyard.build.contentsum import plan_digest
from dockyard.build.errors import DockerfileError
from dockyard.build.hashing import DigestCache
from dockyard.build.mounts import Mount
from dockyard.build.plan import SourceRef
from dockyard.build.sandbox import Sandbox
from dockyard.build.sources import CopyPlan, destination, plan_copy
from dockyard.build.tree import SourceTree

DEFAULT_SECRET_DIR = "/run/secrets"


@dataclass
class Secret:
    data: bytes


@dataclass
class PreparedMounts:
    oci: list[dict[str, Any]] = field(default_factory=list)  # OCI mounts for the spec
    env: list[str] = field(default_factory=list)  # secret env= values
    key: list[dict[str, Any]] = field(default_factory=list)  # cache-key inputs
    locks: list[int] = field(default_factory=list)  # fds holding sharing=locked cache locks

    def release(self) -> None:
        for fd in self.locks:
            os.close(fd)
        self.locks.clear()


# Gives the source tree for a mount's SourceRef (context, stage or image).
TreeFor = Callable[[SourceRef], SourceTree | None]


def prepare_mounts(mounts: tuple[Mount, ...], refs: list[SourceRef], workdir: str, tree_for: TreeFor,
                   sandbox: Sandbox, cache_root: str, secrets: dict[str, Secret],
                   digests: DigestCache | None) -> PreparedMounts:
    out = PreparedMounts()
    try:
        for mount, ref in zip(mounts, refs):
            _prepare_one(mount, ref, workdir, tree_for, sandbox, cache_root, secrets, digests, out)
    except BaseException:
        out.release()
        raise
    return out


def _target(mount: Mount, workdir: str, default: str | None = None) -> str:
    target = mount.target or default
    if not target:
        raise DockerfileError(f"--mount type={mount.type} needs a target")
    return clean_path(target if target.startswith("/") else posixpath.join(workdir or "/", target))


def _prepare_one(mount: Mount, ref: SourceRef, workdir: str, tree_for: TreeFor, sandbox: Sandbox,
                 cache_root: str, secrets: dict[str, Secret], digests: DigestCache | None,
                 out: PreparedMounts) -> None:
    if mount.type == "bind":
        _bind(mount, ref, workdir, tree_for, sandbox, digests, out)
    elif mount.type == "cache":
        _cache(mount, workdir, cache_root, out)
    elif mount.type == "tmpfs":
        target = _target(mount, workdir)
        options = ["nosuid", "nodev"] + ([f"size={mount.size}"] if mount.size else [])
        out.oci.append({"destination": target, "type": "tmpfs", "source": "tmpfs", "options": options})
        out.key.append({"type": "tmpfs", "target": target, "size": mount.size})
    elif mount.type == "secret":
        _secret(mount, workdir, sandbox, secrets, out)
    else:
        raise DockerfileError(f"--mount type={mount.type} is not supported by dockyard build")


def _bind(mount: Mount, ref: SourceRef, workdir: str, tree_for: TreeFor, sandbox: Sandbox,
          digests: DigestCache | None, out: PreparedMounts) -> None:
    target = _target(mount, workdir)
    tree = tree_for(ref)
    if tree is None:
        raise DockerfileError("--mount type=bind from the build context, but there is no context")
    source = (mount.source or "").lstrip("/")
    resolved = tree.resolve(source) if source else ""
    plan: CopyPlan = plan_copy(tree, [source or "."], destination("/"))
    digest = plan_digest(tree, plan, digests if ref.kind == "context" else None)
    kind = plan.items[0].kind if plan.items else "dir"
    host = os.path.join(tree.root, resolved) if resolved else tree.root
    if not mount.readonly or tree.ignore is not None:
        # A private copy: writes are thrown away, and files .dockerignore hides are not there.
        host = _private_copy(tree, plan, resolved, kind, sandbox)
    options = ["rbind", "ro" if mount.readonly else "rw", "rprivate"]
    out.oci.append({"destination": target, "type": "bind", "source": host, "options": options})
    out.key.append({"type": "bind", "target": target, "from": [ref.kind, ref.stage, ref.image],
                    "source": source, "rw": not mount.readonly, "content": digest})


def _private_copy(tree: SourceTree, plan: CopyPlan, resolved: str, kind: str, sandbox: Sandbox) -> str:
    from dockyard.build.copier import Ownership, TreeWriter

    root = sandbox.new_dir("bind", tmp=True)
    with TreeWriter(root, Ownership(preserve=True)) as writer:
        if kind == "dir":
            writer.copy_plan(tree, plan)
            return root
        writer.copy_plan(tree, plan_copy(tree, [resolved], destination("/file")))
    return os.path.join(root, "file")


def _cache(mount: Mount, workdir: str, cache_root: str, out: PreparedMounts) -> None:
    target = _target(mount, workdir)
    cache_id = mount.id or target
    name = hashlib.sha256(cache_id.encode()).hexdigest()[:32]
    path = os.path.join(cache_root, name)
    if not os.path.isdir(path):
        os.makedirs(cache_root, mode=0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.mkdir(tmp, mount.mode if mount.mode is not None else 0o755)
        os.chown(tmp, mount.uid or 0, mount.gid or 0)
        os.chmod(tmp, mount.mode if mount.mode is not None else 0o755)
        try:
            os.rename(tmp, path)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # another build made it first
    if mount.sharing == "locked":
        fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        out.locks.append(fd)
        fcntl.flock(fd, fcntl.LOCK_EX)
    options = ["rbind", "ro" if mount.readonly else "rw", "rprivate"]
    out.oci.append({"destination": target, "type": "bind", "source": path, "options": options})
    out.key.append({"type": "cache", "target": target, "id": cache_id})


def _secret(mount: Mount, workdir: str, sandbox: Sandbox, secrets: dict[str, Secret], out: PreparedMounts) -> None:
    secret_id = mount.id or (posixpath.basename(mount.target) if mount.target else None) or mount.source
    if not secret_id:
        raise DockerfileError("secret mount needs an id")
    secret = secrets.get(secret_id)
    if secret is None:
        if mount.required:
            raise DockerfileError(f"secret {secret_id} not found (give it with --secret id={secret_id},src=FILE)")
        return
    if mount.env:
        out.env.append(f"{mount.env}={secret.data.decode('utf-8', 'surrogateescape')}")
        if not mount.target:
            return
    target = _target(mount, workdir, f"{DEFAULT_SECRET_DIR}/{secret_id}")
    path = os.path.join(sandbox.new_dir("secret"), "data")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o400)
    try:
        os.write(fd, secret.data)
        os.fchown(fd, mount.uid or 0, mount.gid or 0)
        os.fchmod(fd, mount.mode if mount.mode is not None else 0o400)
    finally:
        os.close(fd)
    out.oci.append({"destination": target, "type": "bind", "source": path, "options": ["rbind", "ro", "rprivate"]})
