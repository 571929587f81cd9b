"""The steps that make layers (RUN, COPY, ADD, WORKDIR), each through the cache.

Every such step is described by its inputs (a dict: what the step reads besides its parent layer); the cache
key is the parent chain plus those inputs (see `cache`). On a hit the recorded layer is reused without
touching a file; on a miss the step runs in a writable snapshot of its parent, its changes become a layer
(`layers.commit`), and a record is stored for next time.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dockyard.build.buildstate import ImageState, Layer
from dockyard.build.cache import BuildCache, CacheRecord, slot_key, step_key
from dockyard.build.commandline import run_process
from dockyard.build.config_steps import run_created_by, transfer_created_by
from dockyard.build.config_values import resolve_workdir
from dockyard.build.errors import DockerfileError
from dockyard.build.evaluate import Step
from dockyard.build.explain import explain_miss
from dockyard.build.hashing import DigestCache
from dockyard.build.instructions import Add, Copy, Run, Workdir
from dockyard.build.layers import LayerMaker, WorkTree
from dockyard.build.network import run_network
from dockyard.build.plan import SourceRef
from dockyard.build.progress import Progress
from dockyard.build.run_mounts import Secret, prepare_mounts
from dockyard.build.run_step import (
    CGROUP_PARENT,
    DEFAULT_TARGETS,
    RunFailed,
    RunSpec,
    StubCleaner,
    run_container,
)
from dockyard.build.sandbox import Sandbox
from dockyard.build.tree import SourceTree
from dockyard.build.variables import PROXY_ARGS, StageVariables
from dockyard.image.model import Descriptor
from dockyard.timeutil import rfc3339

TreeFor = Callable[[SourceRef], SourceTree | None]


@dataclass
class StepSettings:
    no_cache: bool = False
    explain: bool = False
    epoch: int | None = None  # SOURCE_DATE_EPOCH
    network: str = "default"  # the build's --network, for RUN steps without their own
    secrets: dict[str, Secret] = field(default_factory=dict)
    cache_mounts: str = ""  # directory of RUN --mount=type=cache directories


@dataclass
class StageCursor:
    """Where the build is within a stage, for the explanations of cache misses."""

    number: int = 0  # the step being run (as printed)
    rebuilt: int | None = None  # the first step of this stage that ran instead of hitting the cache
    base: str | None = None  # the stage's base image, as named in FROM


class StepRunner:
    def __init__(self, layers: LayerMaker, cache: BuildCache, sandbox: Sandbox, progress: Progress,
                 settings: StepSettings, digests: DigestCache | None, tree_for: TreeFor) -> None:
        self.layers = layers
        self.cache = cache
        self.sandbox = sandbox
        self.progress = progress
        self.settings = settings
        self.digests = digests
        self.tree_for = tree_for
        self.cursor = StageCursor()
        self.hits: list[str] = []  # keys reused, to mark them used

    @property
    def created(self) -> str:
        epoch = self.settings.epoch
        return rfc3339(epoch) if epoch is not None else rfc3339()

    # -- the cached layer step
    def layer_step(self, state: ImageState, *, instruction: str, inputs: dict[str, Any], created_by: str,
                   make: Callable[[WorkTree], None], files: list[tuple[str, str]] | None = None,
                   link: bool = False) -> None:
        """Reuse the layer of an identical earlier step, or `make` it in a writable snapshot of `state`."""
        key_parent = "" if link else state.chain_id
        inputs = {**inputs, "epoch": self.settings.epoch}
        key = step_key(key_parent, inputs)
        if not self.settings.no_cache and self._reuse(state, key, created_by):
            return
        self._explain(key_parent, instruction, inputs, files)
        if self.cursor.rebuilt is None:
            self.cursor.rebuilt = self.cursor.number
        with self.layers.writable(state.layers, mount=not link) as work:
            make(work)
            layer = self.layers.commit(work, state.layers)
        created = self.created
        chain = None
        if layer is not None:
            state.add_layer(layer, created_by, created)
            chain = state.chain_id
        else:
            state.add_history(created_by, empty=True, created=created)
        self.cache.put(CacheRecord(
            key, slot_key(key_parent, instruction), key_parent, layer.diff_id if layer else None,
            layer.descriptor.digest if layer else None, layer.descriptor.size if layer else 0,
            layer.descriptor.media_type if layer else None, chain, created, instruction, inputs), files)
        self.progress.made(layer.diff_id if layer else None, layer.descriptor.size if layer else 0)

    def _reuse(self, state: ImageState, key: str, created_by: str) -> bool:
        record = self.cache.get(key)
        if record is None:
            return False
        if record.diff_id is None:
            state.add_history(created_by, empty=True, created=record.created)
        else:
            assert record.blob is not None and record.media_type is not None
            if not self.layers.store.blobs.exists(record.blob):
                return False  # removed behind the cache's back: build it again
            self.layers.lease.claim_blob(record.blob)  # a concurrent prune must not take it now
            state.add_layer(Layer(Descriptor(record.media_type, record.blob, record.size), record.diff_id),
                            created_by, record.created)
        self.hits.append(key)
        self.progress.cached(record.diff_id)
        return True

    def _explain(self, key_parent: str, instruction: str, inputs: dict[str, Any],
                 files: list[tuple[str, str]] | None) -> None:
        if not self.settings.explain:
            return
        if self.settings.no_cache:
            reasons = ["--no-cache"]
        else:
            reasons = explain_miss(self.cache, slot_key(key_parent, instruction), inputs, files, instruction,
                                   self.cursor.rebuilt, self.cursor.base)
        for reason in reasons:
            self.progress.note(f"cache miss: {reason}")

    # -- WORKDIR
    def workdir(self, state: ImageState, step: Step) -> None:
        ins = step.instruction
        assert isinstance(ins, Workdir)
        path = resolve_workdir(state.config.get("WorkingDir"), ins.path)
        state.config["WorkingDir"] = path
        created_by = "WORKDIR " + path
        if path == "/":
            state.add_history(created_by, empty=True)
            return
        user = state.config.get("User") or ""

        def make(work: WorkTree) -> None:
            from dockyard.runtime import paths, users

            owner = users.resolve(work.root, user or None)
            root = os.open(work.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                try:
                    os.close(paths.open_in_root(root, path, os.O_PATH | os.O_DIRECTORY))
                except FileNotFoundError:
                    fd = paths.mkdir_all(root, path)
                    os.chown(f"/proc/self/fd/{fd}", owner.uid, owner.gid)
                    os.close(fd)
                except NotADirectoryError:
                    raise DockerfileError(f"WORKDIR {path}: not a directory in the image") from None
            finally:
                os.close(root)

        self.layer_step(state, instruction=ins.original, created_by=created_by, make=make,
                        inputs={"op": "workdir", "path": path, "user": user})

    # -- RUN
    def run(self, state: ImageState, variables: StageVariables, step: Step, refs: list[SourceRef]) -> None:
        ins = step.instruction
        assert isinstance(ins, Run)
        if ins.security != "sandbox":
            raise DockerfileError("RUN --security=insecure is not allowed (no insecure entitlement)")
        process = run_process(ins, state.config.get("Shell"))
        network = ins.network if ins.network != "default" else self.settings.network
        workdir = state.config.get("WorkingDir") or "/"
        user = state.config.get("User") or ""
        mounts = prepare_mounts(ins.mounts, refs, workdir, self.tree_for, self.sandbox, self.settings.cache_mounts,
                                self.settings.secrets, self.digests)
        try:
            inline = self._inline_files(process.files)
            env_key = [e for e in step.env
                       if e.partition("=")[0] not in PROXY_ARGS or variables.get(e.partition("=")[0]) is not None]
            inputs = {"op": "run", "argv": list(process.argv), "env": env_key, "args": variables.arg_values(),
                      "user": user, "workdir": workdir,
                      "network": network,
                      "mounts": mounts.key + [{"file": f.path, "sha256": hashlib.sha256(f.data.encode()).hexdigest()}
                                              for f in process.files]}

            def make(work: WorkTree) -> None:
                spec = RunSpec(list(process.argv), [*step.env, *mounts.env], user, workdir,
                               run_network(network, self.sandbox), mounts.oci + inline)
                self._run_in(work, spec)

            self.layer_step(state, instruction=ins.original, inputs=inputs, make=make,
                            created_by=run_created_by(process.argv, variables.arg_values()))
        finally:
            mounts.release()

    def _inline_files(self, files) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
        out = []
        for f in files:
            path = os.path.join(self.sandbox.new_dir("pipe"), "file")
            with open(path, "w", encoding="utf-8", errors="surrogateescape") as handle:
                handle.write(f.data)
            os.chmod(path, f.mode)
            out.append({"destination": f.path, "type": "bind", "source": path, "options": ["rbind", "ro"]})
        return out

    def _run_in(self, work: WorkTree, spec: RunSpec) -> None:
        targets = [*DEFAULT_TARGETS, *(m["destination"] for m in spec.mounts)]
        stubs = StubCleaner(work.root, targets)
        name = "build-" + os.urandom(8).hex()
        self.progress.running(name)
        code = run_container(work.root, spec, self.sandbox, self.progress.output, cgroup_parent=CGROUP_PARENT,
                             name=name)
        self.layers.unmount(work)
        snapshots = self.layers.snapshots
        lowers = [snapshots.fs(s) for s in snapshots.chain(work.parent_chain)] if work.parent_chain else []
        stubs.clean(work.upper, lowers, self.layers.overlay)
        if code != 0:
            raise RunFailed(f"The command '{' '.join(spec.argv)}' returned a non-zero code: {code}", code)

    # -- COPY / ADD
    def transfer(self, state: ImageState, step: Step, tree: SourceTree | None) -> None:
        from dockyard.build import transfer

        ins = step.instruction
        assert isinstance(ins, (Copy, Add))
        workdir = state.config.get("WorkingDir") or "/"
        moved = transfer.prepare(ins, workdir, tree, self.sandbox,
                                 self.digests if tree is self.tree_for(SourceRef("context")) else None)
        try:
            link = ins.link and self.layers.overlay
            inputs = {"op": ins.keyword.lower(), "sources": moved.digest, "dest": ins.dest, "workdir": workdir,
                      "chown": ins.chown, "chmod": ins.chmod, "link": link,
                      "parents": getattr(ins, "parents", False), "excludes": list(ins.excludes),
                      "unpack": getattr(ins, "unpack", None)}
            parent_layers = list(state.layers)

            def make(work: WorkTree) -> None:
                users_root = work.root if work.mounted else self.layers.view(parent_layers)
                owner = resolve_chown(users_root, moved.chown)
                transfer.write(moved, work.root, owner, self.sandbox)

            self.layer_step(state, instruction=ins.original, inputs=inputs, make=make, files=moved.files,
                            created_by=transfer_created_by(ins), link=link)
        finally:
            moved.close()


def resolve_chown(rootfs: str, chown: tuple[str, str | None] | None) -> tuple[int, int] | None:
    """--chown's ids: names from the image's /etc/passwd and /etc/group; a lone user gives gid = uid."""
    if chown is None:
        return None
    from dockyard.runtime import users

    user, group = chown
    uid = users.resolve(rootfs, user).uid
    gid = uid if group is None else users.resolve(rootfs, f"0:{group}").gid
    return uid, gid
