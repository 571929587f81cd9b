"""Image builds from Dockerfiles: the front half (parsing, expansion, stages, build context).

Modules, each with one job (import the one you need; nothing is imported eagerly here):

* `parser`       parse_dockerfile() -> Dockerfile (directives, typed instructions, stages)
* `instructions` the instruction dataclasses
* `shell_lex`    Docker's word expansion ($VAR, ${VAR:-x}, quotes, escapes)
* `variables`    ARG/ENV scoping across stages, build args, platform args
* `evaluate`     an instruction + the current variables -> the expanded step the executor runs
* `plan`         stage resolution, --target, COPY --from, which stages a build needs
* `context`      build contexts (directory, tar, stdin) and the Dockerfile in them
* `dockerignore` .dockerignore parsing and matching
* `tree`         safe walks and reads of a context (or a stage's rootfs) and content hashes
* `sources`      COPY/ADD source resolution: wildcards, escapes, destinations, --parents, --exclude
"""
