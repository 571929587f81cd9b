"""The build executor: a Dockerfile and its context in, an image out.

    result = Builder(engine, BuildOptions(context=".", tags=["app:1"]), Progress(sys.stdout.buffer)).build()

The front half (context, parser, plan, evaluation) says what each step is; this runs the stages the target
needs, in order, each from its base (an image, an earlier stage, or scratch) and its base's ONBUILD triggers,
then every instruction: config-only ones change the config (`config_steps`), RUN/COPY/ADD/WORKDIR make layers
through the cache (`steps`). The target stage's state is committed as an image with its tags, in one
transaction; intermediate stages are never images.

Everything the build makes is claimed by one store lease: if the build fails or is killed, the next garbage
collection removes what no cache record or image holds. Mounts live in the build's private mount namespace
(see `sandbox`), RUN containers die with the build.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from dockyard.build.buildstate import ImageState, Layer
from dockyard.build.cache import BuildCache, DigestMemo, canonical
from dockyard.build.config_steps import apply_config_step
from dockyard.build.errors import DockerfileError, at_instruction
from dockyard.build.evaluate import Step, evaluate
from dockyard.build.instructions import Add, Arg, Copy, Instruction, Run, Workdir
from dockyard.build.plan import BuildPlan, SourceRef, plan_build
from dockyard.build.progress import Progress
from dockyard.build.run_mounts import Secret
from dockyard.build.run_step import RunFailed
from dockyard.build.sandbox import Sandbox, recover
from dockyard.build.steps import StageCursor, StepRunner, StepSettings
from dockyard.build.tree import SourceTree
from dockyard.build.variables import Platform, StageVariables
from dockyard.errors import DockyardError, InvalidArgument, NotFound
from dockyard.image import reference
from dockyard.timeutil import rfc3339

if TYPE_CHECKING:
    from dockyard.build.context import BuildContext
    from dockyard.engine.engine import Engine
    from dockyard.store.images import ImageRecord
    from dockyard.store.store import Lease


@contextmanager
def located(ins: Instruction) -> Iterator[None]:
    """Errors raised while running `ins` name its file and line (`Dockerfile:7: unable to find user x`)."""
    where = ins.location
    try:
        with at_instruction(where.path, where.line, where.end_line):
            yield
    except (DockerfileError, RunFailed):
        raise
    except DockyardError as e:
        error = copy.copy(e)
        error.message = f"{where}: {e.message}"
        error.args = (error.message,)
        raise error from None


@dataclass
class BuildOptions:
    context: str = "."
    dockerfile: str | None = None
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    pull: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    network: str = "default"
    platform: str | None = None
    secrets: dict[str, Secret] = field(default_factory=dict)
    explain_cache: bool = False
    source_date_epoch: int | None = None
    stdin: BinaryIO | None = None


@dataclass
class BuildResult:
    image_id: str
    tags: list[str]


@dataclass
class StageResult:
    state: ImageState
    variables: StageVariables


class Builder:
    def __init__(self, engine: Engine, options: BuildOptions, progress: Progress) -> None:
        self.engine = engine
        self.options = options
        self.progress = progress
        self.images = engine.images
        self.cache = BuildCache(engine.db)
        self.build_dir = os.path.join(engine.root_dir, "build")
        self.results: dict[int, StageResult] = {}
        self.base_images: dict[str, ImageRecord] = {}
        self._trees: dict[str, SourceTree] = {}

    # -- the whole build
    def build(self) -> BuildResult:
        from dockyard.build.context import open_context

        tags = [reference.parse(t) for t in self.options.tags]
        platform = self._platform()
        store = self.engine.store
        recover(self.engine.run_root, str(store.root / "tmp"))
        with open_context(self.options.context, dockerfile=self.options.dockerfile, stdin=self.options.stdin,
                          scratch_dir=str(store.root / "tmp")) as ctx:
            dockerfile = ctx.parse()
            plan = plan_build(dockerfile, target=self.options.target, build_args=self.options.build_args,
                              platform=platform)
            for warning in dockerfile.warnings:
                self.progress.warn(str(warning))
            with store.lease() as lease:
                sandbox = Sandbox(self.engine.run_root, str(store.root / "tmp"), self.engine.monitor)
                digests = DigestMemo(os.path.join(self.build_dir, "digests.cache"))
                try:
                    result = self._run(ctx, plan, lease, sandbox, digests, tags)
                finally:
                    for tree in self._trees.values():
                        tree.close()
                    sandbox.close()
                    digests.save()
        unused = plan.unused_build_args()
        if unused:
            self.progress.warn(f"One or more build-args [{' '.join(unused)}] were not consumed")
        self.progress.result(result.image_id, result.tags)
        return result

    def _platform(self) -> Platform:
        host = Platform.host()
        if not self.options.platform:
            return host
        try:
            wanted = Platform.parse(self.options.platform)
        except ValueError as e:
            raise InvalidArgument(str(e)) from None
        if (wanted.os, wanted.architecture) != (host.os, host.architecture):
            raise InvalidArgument(f"cannot build for {wanted}: dockyard builds for this host's platform ({host})")
        return host

    def _run(self, ctx: BuildContext, plan: BuildPlan, lease: Lease, sandbox: Sandbox, digests: DigestMemo,
             tags: list[reference.Reference]) -> BuildResult:
        from dockyard.build.layers import LayerMaker

        self.ctx, self.plan = ctx, plan
        self.layers = LayerMaker(self.images, lease, sandbox, self.options.source_date_epoch)
        settings = StepSettings(self.options.no_cache, self.options.explain_cache, self.options.source_date_epoch,
                                self.options.network, self.options.secrets,
                                os.path.join(self.build_dir, "cache-mounts"))
        self.steps = StepRunner(self.layers, self.cache, sandbox, self.progress, settings, digests, self._tree)
        self._resolve_bases(plan)
        total = sum(1 + len(plan.stages[i].triggers) + len(plan.stages[i].stage.instructions) for i in plan.order)
        number = 0
        for index in plan.order:
            number = self._build_stage(index, number, total)
        self.cache.touch(self.steps.hits)
        return self._commit(self.results[plan.target].state, lease, tags)

    # -- stages
    def _image(self, name: str) -> ImageRecord:
        """A base (or --from) image: the local one; pulled when missing, or always with --pull."""
        if name in self.base_images:
            return self.base_images[name]
        image = None
        if not self.options.pull:
            try:
                image = self.images.resolve(name)
            except NotFound:
                pass
        if image is None:
            image = self._pull(name)
        self.base_images[name] = image
        return image

    def _pull(self, name: str) -> ImageRecord:
        from dockyard.registry.client.progress import PlainProgress
        from dockyard.registry.client.progress import Progress as PullProgress
        from dockyard.registry.client.pull import PullOptions, pull

        self.progress.note(f"pulling {name}")
        shown = PullProgress() if self.progress.quiet else PlainProgress(self.progress.text())
        try:
            results = pull(self.images, name, PullOptions(platform=str(self.plan.platform)), shown)
        except (DockyardError, OSError) as e:
            raise NotFound(f"image {name!r} is not here and could not be pulled: {e}") from None
        return results[0].image

    def _resolve_bases(self, plan: BuildPlan) -> None:
        """Find every base image and add ONBUILD triggers, which may make more stages needed."""
        done: set[int] = set()
        while pending := [i for i in plan.order if i not in done]:
            for index in pending:
                done.add(index)
                sp = plan.stages[index]
                if sp.platform is not None and (sp.platform.os, sp.platform.architecture) != (
                        plan.platform.os, plan.platform.architecture):
                    raise DockerfileError(f"FROM --platform={sp.platform}: dockyard builds for {plan.platform} only",
                                          sp.stage.from_.location.path, sp.stage.from_.line)
                for name in sorted(sp.images):
                    self._image(name)
                triggers: list[str] = []
                if sp.base.kind == "image":
                    assert sp.base.image is not None
                    with located(sp.stage.from_):
                        image = self._image(sp.base.image)
                    triggers = list(self.images.config_of(image).config.get("OnBuild") or [])
                elif sp.base.kind == "stage":
                    triggers = plan.parent_stage_triggers(index)
                if triggers:
                    plan.add_onbuild_triggers(index, triggers)

    def _stage_start(self, index: int) -> tuple[ImageState, StageVariables, str]:
        plan = self.plan
        sp = plan.stages[index]
        if sp.base.kind == "image":
            assert sp.base.image is not None
            image = self._image(sp.base.image)
            config = self.images.config_of(image)
            manifest = self.images.manifest_of(image)
            layers = [Layer(d, diff) for d, diff in zip(manifest.layers, config.diff_ids)]
            state = ImageState.from_image(image.id, config.value, layers)
            variables = plan.stage_variables(index, base_env=state.config.get("Env") or [])
            shown = image.short_id
        elif sp.base.kind == "stage":
            assert sp.base.stage is not None
            parent = self.results[sp.base.stage]
            state, variables = parent.state.derive(), plan.stage_variables(index, parent=parent.variables)
            shown = f"stage {plan.stages[sp.base.stage].stage.display_name}"
        else:
            state, variables, shown = ImageState(), plan.stage_variables(index), "scratch"
        state.config.pop("OnBuild", None)  # the triggers run now, the new image does not inherit them
        if not any(e.startswith("PATH=") for e in state.config.get("Env") or []):
            state.config["Env"] = [f"{k}={v}" for k, v in variables.env.items()]  # BuildKit's default PATH
        return state, variables, shown

    def _build_stage(self, index: int, number: int, total: int) -> int:
        sp = self.plan.stages[index]
        state, variables, shown = self._stage_start(index)
        number += 1
        self.progress.step(number, total, sp.stage.from_.original)
        self.progress.note(shown)
        self.steps.cursor = StageCursor(number, None, sp.base.image)
        escape = self.plan.dockerfile.escape
        for ins in (*sp.triggers, *sp.stage.instructions):
            number += 1
            self.steps.cursor.number = number
            self.progress.step(number, total, ins.original)
            with located(ins):
                step = evaluate(ins, variables, escape=escape)
                self._execute(index, state, variables, step, ins)
        self.results[index] = StageResult(state, variables)
        return number

    def _execute(self, index: int, state: ImageState, variables: StageVariables, step: Step,
                 ins: Instruction) -> None:
        done = step.instruction
        if apply_config_step(state, step, variables) or isinstance(done, Arg):
            return
        if isinstance(done, Workdir):
            self.steps.workdir(state, step)
        elif isinstance(done, Run):
            refs = [self.plan.mount_source(index, m) for m in done.mounts]
            self.steps.run(state, variables, step, refs)
        elif isinstance(done, Copy):
            self.steps.transfer(state, step, self._tree(self.plan.copy_source(index, done)))
        elif isinstance(done, Add):
            self.steps.transfer(state, step, self._tree(SourceRef("context")))
        else:
            raise DockerfileError(f"{ins.keyword} cannot be used here")

    # -- source trees
    def _tree(self, ref: SourceRef) -> SourceTree | None:
        """The files a COPY/ADD or a RUN bind mount reads: the context, or a stage's or image's root."""
        if ref.kind == "context":
            return self.ctx.tree
        if ref.kind == "stage":
            assert ref.stage is not None
            layers = self.results[ref.stage].state.layers
        elif ref.kind == "image":
            assert ref.image is not None
            image = self._image(ref.image)
            config = self.images.config_of(image)
            layers = [Layer(d, diff) for d, diff in zip(self.images.manifest_of(image).layers, config.diff_ids)]
        else:
            layers = []
        root = self.layers.view(layers)
        if root not in self._trees:
            self._trees[root] = SourceTree(root, confine=False)
        return self._trees[root]

    # -- the image
    def _commit(self, state: ImageState, lease: Lease, tags: list[reference.Reference]) -> BuildResult:
        from dockyard.image.model import new_config

        if self.options.labels:
            state.config["Labels"] = {**(state.config.get("Labels") or {}), **self.options.labels}
        created = self._image_time(state)
        history = [dict(h, created=h.get("created") or created) for h in state.history]
        config_raw = new_config(state.diff_ids, state.config, history, created, state.author)
        image = self.images.create_image(lease, [(layer.descriptor, layer.diff_id) for layer in state.layers],
                                         config_raw, tags)
        return BuildResult(image.id, [t.familiar for t in tags])

    def _image_time(self, state: ImageState) -> str:
        """SOURCE_DATE_EPOCH, or when an image with this very content was first built (else now), so that
        a fully cached rebuild gives the same image id."""
        epoch = self.options.source_date_epoch
        if epoch is not None:
            return rfc3339(epoch)
        content = canonical({"config": state.config, "history": state.history, "diff_ids": state.diff_ids,
                             "author": state.author})
        import hashlib

        key = "image:sha256:" + hashlib.sha256(content.encode("utf-8", "surrogateescape")).hexdigest()
        return self.cache.image_created(key, rfc3339(time.time()))
