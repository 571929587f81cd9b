"""Image builds from Dockerfiles: the front half (everything that does not run a container).

Nothing is imported here; import the module you need (the CLI imports the build lazily). An executor's
loop, in outline:

    from dockyard.build.context import open_context
    from dockyard.build.plan import plan_build
    from dockyard.build.evaluate import evaluate
    from dockyard.build.errors import at_instruction
    from dockyard.build.sources import destination, plan_copy
    from dockyard.build.hashing import copy_digest
    from dockyard.build.commandline import run_process

    with open_context(path, dockerfile=f) as ctx:          # dir, tar, "-"; .dockerignore applied
        df = ctx.parse()                                     # DockerfileError: "Dockerfile:12: ..."
        plan = plan_build(df, target=t, build_args=args)     # bases, COPY --from, needed stages
        for index in plan.order:
            sp = plan.stages[index]                          # sp.base: image / earlier stage / scratch
            vars = plan.stage_variables(index, base_env=image_env)   # or parent=<parent stage's vars>
            plan.add_onbuild_triggers(index, image_onbuild or plan.parent_stage_triggers(index))
            for ins in (*sp.triggers, *sp.stage.instructions):
                step = evaluate(ins, vars, escape=df.escape) # expanded instruction, used ARGs, RUN env
                ...  # RUN: run_process(step.instruction, shell); COPY: plan_copy + copy_digest

Modules, one job each:

* `parser`, `instruction_parser`, `arguments`, `flags`, `mounts`, `heredoc`, `directives` -- text to
  typed instructions (`instructions`) and stages (`stages`)
* `shell_lex`, `shell_pattern` -- Docker's word expansion
* `variables` -- build args, ARG/ENV scoping, platform args; `evaluate` -- one instruction against them
* `plan` -- stage references and which stages a target needs
* `context`, `tarcontext` -- build contexts; `dockerignore` -- ignore files and patterns
* `tree` -- safe walks and reads of a context or a rootfs; `sources` -- COPY/ADD sources and destinations;
  `gomatch` -- Go's filepath.Match; `hashing` -- content digests for the cache key
* `commandline` -- RUN argv (heredocs included) and Cmd/Entrypoint values; `config_values` -- ports,
  stop signals, workdirs

The back half (running a build; `Builder` in `executor` is the entry point):

* `executor` -- stages in order, bases and ONBUILD triggers, the image committed with its tags
* `buildstate` -- a stage's layers, config and history; `config_steps` -- instructions that only change the
  config, and history's `created_by` words
* `steps` -- RUN/COPY/ADD/WORKDIR through the cache; `cache` -- cache records and keys, the memo of file
  digests; `explain` -- why a step missed the cache; `prune` -- `builder prune`
* `layers` -- writable snapshots committed in place as layers, read-only views of stages
* `run_step` -- a RUN container in-process, mount stubs kept out of layers; `run_mounts` -- RUN --mount;
  `network` -- the RUN network seam
* `transfer` -- COPY/ADD sources and their digest; `copier` -- writing them into a rootfs; `archives` --
  ADD's local tarballs; `fetch` -- ADD <url>; `contentsum` -- digests with per-file detail
* `sandbox` -- the build's private mount namespace, scratch dirs, recovery after a killed build;
  `progress` -- what a build prints
"""
