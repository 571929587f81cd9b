"""Instructions that only change the image config (ENV, LABEL, CMD, EXPOSE...), and history's words for them.

History `created_by` follows BuildKit's forms (`ENV A=1 B=2`, `CMD ["x"]`, `EXPOSE map[80/tcp:{}]`, and
`RUN /bin/sh -c ... # buildkit` / `COPY src dst # buildkit` for the steps that make a layer), so tools that
read Docker's history see what they expect.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from dockyard.build.buildstate import ImageState
from dockyard.build.commandline import config_command
from dockyard.build.evaluate import Step
from dockyard.build.instructions import (
    Add,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    Healthcheck,
    Instruction,
    Label,
    Maintainer,
    Onbuild,
    Shell,
    StopSignal,
    User,
    Volume,
)
from dockyard.build.variables import StageVariables


def go_list(items: Sequence[str]) -> str:
    """Go's %v of a []string: `[a b c]`."""
    return "[" + " ".join(items) + "]"


def go_quoted_list(items: Sequence[str] | None) -> str:
    """Go's %q of a []string: `["a" "b"]` (JSON string quoting is the same for what matters here)."""
    return "[" + " ".join(json.dumps(i, ensure_ascii=False) for i in items or ()) + "]"


def apply_config_step(state: ImageState, step: Step, variables: StageVariables) -> bool:
    """Apply a config-only instruction; False when `step` is not one (it makes a layer, or is ARG)."""
    ins = step.instruction
    cfg = state.config
    created_by: str
    if isinstance(ins, Env):
        cfg["Env"] = [f"{k}={v}" for k, v in variables.env.items()]
        created_by = "ENV " + " ".join(f"{p.key}={p.value}" for p in ins.pairs)
    elif isinstance(ins, Label):
        labels = dict(cfg.get("Labels") or {})
        labels.update({p.key: p.value for p in ins.pairs})
        cfg["Labels"] = labels
        created_by = "LABEL " + " ".join(f"{p.key}={p.value}" for p in ins.pairs)
    elif isinstance(ins, Maintainer):
        state.author = ins.maintainer
        created_by = "MAINTAINER " + ins.maintainer
    elif isinstance(ins, Expose):
        ports = dict(cfg.get("ExposedPorts") or {})
        ports.update({p: {} for p in ins.ports})
        cfg["ExposedPorts"] = ports
        created_by = "EXPOSE map[" + " ".join(f"{p}:{{}}" for p in sorted(ins.ports)) + "]"  # Go's %v of a map
    elif isinstance(ins, Volume):
        volumes = dict(cfg.get("Volumes") or {})
        volumes.update({p: {} for p in ins.paths})
        cfg["Volumes"] = volumes
        created_by = "VOLUME " + go_list(ins.paths)
    elif isinstance(ins, User):
        cfg["User"] = ins.user
        created_by = "USER " + ins.user
    elif isinstance(ins, StopSignal):
        cfg["StopSignal"] = ins.signal
        created_by = "STOPSIGNAL " + ins.signal
    elif isinstance(ins, Shell):
        cfg["Shell"] = list(ins.shell)
        created_by = "SHELL " + go_list(ins.shell)
    elif isinstance(ins, Cmd):
        cfg["Cmd"] = config_command(ins, cfg.get("Shell"))
        state.cmd_set = True
        created_by = "CMD " + go_quoted_list(cfg["Cmd"])
    elif isinstance(ins, Entrypoint):
        cfg["Entrypoint"] = config_command(ins, cfg.get("Shell"))
        if not state.cmd_set:
            cfg["Cmd"] = None  # Docker: an ENTRYPOINT drops a Cmd inherited from the base
        created_by = "ENTRYPOINT " + go_quoted_list(cfg["Entrypoint"])
    elif isinstance(ins, Healthcheck):
        cfg["Healthcheck"] = health_config(ins)
        created_by = "HEALTHCHECK " + _args_of(ins)
    elif isinstance(ins, Onbuild):
        cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), ins.expression]
        created_by = "ONBUILD " + ins.expression
    else:
        return False
    state.add_history(created_by, empty=True)
    return True


def health_config(ins: Healthcheck) -> dict[str, Any]:
    """Docker's Healthcheck object: zero durations and retries are left out (they mean "inherit")."""
    h = ins.health
    out: dict[str, Any] = {"Test": list(h.test)}
    for key, value in (("Interval", h.interval), ("Timeout", h.timeout), ("StartPeriod", h.start_period),
                       ("StartInterval", h.start_interval), ("Retries", h.retries)):
        if value:
            out[key] = value
    return out


def _args_of(ins: Instruction) -> str:
    """The instruction's text after its keyword."""
    return ins.original.split(None, 1)[1] if " " in ins.original.strip() else ""


def run_created_by(argv: Sequence[str], arg_values: dict[str, str]) -> str:
    """BuildKit's `RUN |2 A=1 B=2 /bin/sh -c cmd # buildkit` (the prefix lists the ARGs in scope)."""
    prefix = [f"|{len(arg_values)}", *(f"{k}={v}" for k, v in arg_values.items())] if arg_values else []
    return "RUN " + " ".join([*prefix, *argv]) + " # buildkit"


def transfer_created_by(ins: Copy | Add) -> str:
    """`COPY [--flags] src... dest # buildkit`, with the values as evaluated."""
    words = [ins.keyword]
    if isinstance(ins, Copy) and ins.from_:
        words.append(f"--from={ins.from_}")
    if ins.chown:
        words.append(f"--chown={ins.chown}")
    if ins.chmod:
        words.append(f"--chmod={ins.chmod}")
    if ins.link:
        words.append("--link")
    words += [*ins.sources, *(f"<<{s.name}" for s in ins.inline), ins.dest]
    return " ".join(words) + " # buildkit"

