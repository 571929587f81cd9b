"""From one logical Dockerfile line to a typed instruction.

Two steps, as in Docker: `node_from_line` splits the keyword and flags off and cuts the arguments with the
instruction's grammar (which also decides whether heredocs may follow), then `build` checks flags and argument
counts and makes the dataclass. Errors carry no location here; the parser adds file and line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from dockyard.build import arguments
from dockyard.build.arguments import KeyValue
from dockyard.build.errors import DockerfileError
from dockyard.build.flags import FlagKind, FlagValue, parse_flags, split_flags
from dockyard.build.godur import parse_duration_ns
from dockyard.build.gotext import split_whitespace, trim_space
from dockyard.build.heredoc import Heredoc, parse_marker, strip_leading_tabs
from dockyard.build.instructions import (
    Add,
    Arg,
    ArgDecl,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    HealthConfig,
    InlineSource,
    Instruction,
    Label,
    Location,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from dockyard.build.mounts import Mount, check_unexpanded, mentions_variables, parse_mount

STAGE_NAME = re.compile(r"[a-z][a-z0-9_.-]*")
HEREDOC_INSTRUCTIONS = ("RUN", "COPY", "ADD")
NETWORK_MODES = ("default", "none", "host")
SECURITY_MODES = ("sandbox", "insecure")
_ONBUILD_PREFIX = re.compile(r"^[\t\n\f\r ]*ONBUILD[\t\n\f\r ]*", re.IGNORECASE)
_MIN_INTERVAL_NS = 1_000_000
_INTEGER = re.compile(r"[+-]?[0-9]+")


@dataclass
class RawNode:
    """An instruction line cut into keyword, flags and arguments (quotes and variables untouched)."""

    keyword: str  # upper-cased
    written: str  # the keyword as written
    flags: list[str]
    args: list[str]
    is_json: bool = False
    pairs: list[KeyValue] = field(default_factory=list)  # ENV / LABEL
    child: RawNode | None = None  # ONBUILD's instruction
    line: str = ""


_Grammar = Callable[[str, str], tuple[list[str], bool]]


_GRAMMARS: dict[str, _Grammar | None] = {
    "ADD": lambda rest, esc: arguments.maybe_json_list(rest),
    "COPY": lambda rest, esc: arguments.maybe_json_list(rest),
    "VOLUME": lambda rest, esc: arguments.maybe_json_list(rest),
    "ARG": lambda rest, esc: (arguments.quoted_words(rest, esc), False),
    "CMD": lambda rest, esc: arguments.maybe_json(rest),
    "ENTRYPOINT": lambda rest, esc: arguments.maybe_json(rest),
    "RUN": lambda rest, esc: arguments.maybe_json(rest),
    "SHELL": lambda rest, esc: arguments.maybe_json(rest),
    "EXPOSE": lambda rest, esc: (arguments.whitespace_list(rest), False),
    "FROM": lambda rest, esc: (arguments.whitespace_list(rest), False),
    "MAINTAINER": lambda rest, esc: (arguments.single(rest), False),
    "STOPSIGNAL": lambda rest, esc: (arguments.single(rest), False),
    "USER": lambda rest, esc: (arguments.single(rest), False),
    "WORKDIR": lambda rest, esc: (arguments.single(rest), False),
    "ENV": None, "LABEL": None, "HEALTHCHECK": None, "ONBUILD": None,  # special-cased below
}


def node_from_line(line: str, escape: str) -> RawNode:
    parts = split_whitespace(trim_space(line), 1)
    written = parts[0]
    keyword = written.upper()
    flags: list[str] = []
    rest = ""
    if len(parts) == 2:
        flags, rest = split_flags(parts[1], escape)
        rest = trim_space(rest)
    if keyword not in _GRAMMARS:
        raise DockerfileError(f"unknown instruction: {written}" if written else "empty instruction")
    node = RawNode(keyword, written, flags, [], line=line)
    if keyword in ("ENV", "LABEL"):
        node.pairs = arguments.name_values(rest, keyword, escape)
    elif keyword == "HEALTHCHECK":
        kind, cmd = arguments.health_type(rest)
        if kind:
            args, node.is_json = arguments.maybe_json(cmd)
            node.args = [kind, *args]
    elif keyword == "ONBUILD":
        if rest:
            node.child = node_from_line(rest, escape)
    else:
        grammar = _GRAMMARS[keyword]
        assert grammar is not None
        node.args, node.is_json = grammar(rest, escape)
    return node


def can_contain_heredoc(node: RawNode) -> bool:
    if node.keyword == "ONBUILD" and node.child is not None:
        node = node.child
    return node.keyword in HEREDOC_INSTRUCTIONS and not node.is_json


# -- typed instructions ------------------------------------------------------------------------------------


@dataclass
class _Req:
    """What every builder needs: the node and the common Instruction fields."""

    node: RawNode
    heredocs: list[Heredoc]
    common: dict[str, object]

    def flags(self, spec: dict[str, FlagKind]) -> dict[str, FlagValue]:
        return parse_flags(self.node.flags, spec)

    @property
    def args(self) -> list[str]:
        return self.node.args


def build(node: RawNode, *, heredocs: list[Heredoc], location: Location,
          comments: tuple[str, ...] = ()) -> Instruction:
    original = trim_space(node.line)
    req = _Req(node, heredocs, {"original": original, "location": location, "comments": comments})
    return _BUILDERS[node.keyword](req)


def _exactly_one(req: _Req) -> str:
    if len(req.args) != 1:
        raise DockerfileError(f"{req.node.keyword} requires exactly one argument")
    return req.args[0]


def _from(req: _Req) -> Instruction:
    args = req.args
    name = None
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not STAGE_NAME.fullmatch(name):
            raise DockerfileError(f"invalid name for build stage: {args[2]!r}, name can't start with a "
                                  "number or contain symbols")
    elif len(args) != 1:
        raise DockerfileError("FROM requires either one or three arguments")
    flags = req.flags({"platform": "string"})
    platform = flags.get("platform") or None
    return From(image=args[0], name=name, platform=platform, **req.common)  # type: ignore[arg-type]


def _command(req: _Req) -> tuple[tuple[str, ...], bool]:
    if req.node.is_json:
        return tuple(req.args), False
    return ((" ".join(req.args),) if req.args else ()), True


def _run(req: _Req) -> Instruction:
    flags = req.flags({"mount": "strings", "network": "string", "security": "string"})
    network = str(flags.get("network", "default"))
    if network not in NETWORK_MODES:
        raise DockerfileError(f"invalid network mode {network!r}")
    security = str(flags.get("security", "sandbox"))
    if security not in SECURITY_MODES:
        raise DockerfileError(f"security {security!r} is not valid")
    specs = tuple(flags.get("mount", []))  # type: ignore[arg-type]
    command, shell_form = _command(req)
    return Run(command=command, shell_form=shell_form, heredocs=tuple(req.heredocs), mount_specs=specs,
               mounts=_static_mounts(specs), network=network, security=security, flags_used=tuple(flags),
               **req.common)  # type: ignore[arg-type]


def _static_mounts(specs: tuple[str, ...]) -> tuple[Mount, ...]:
    """Parse what can be parsed now; a spec using variables is checked fully when the step is evaluated."""
    mounts = []
    deferred = False
    for spec in specs:
        check_unexpanded(spec)
        if mentions_variables(spec):
            deferred = True
            continue
        mounts.append(parse_mount(spec))
    return () if deferred else tuple(mounts)


def _cmd(req: _Req) -> Instruction:
    req.flags({})
    command, shell_form = _command(req)
    return Cmd(command=command, shell_form=shell_form, **req.common)  # type: ignore[arg-type]


def _entrypoint(req: _Req) -> Instruction:
    req.flags({})
    command, shell_form = _command(req)
    return Entrypoint(command=command, shell_form=shell_form, **req.common)  # type: ignore[arg-type]


def _shell(req: _Req) -> Instruction:
    req.flags({})
    if not req.args:
        raise DockerfileError("SHELL requires at least one argument")
    if not req.node.is_json:
        raise DockerfileError("SHELL requires the arguments to be in JSON form")
    return Shell(shell=tuple(req.args), **req.common)  # type: ignore[arg-type]


def _pairs(req: _Req) -> tuple[KeyValue, ...]:
    keyword = req.node.keyword
    if not req.node.pairs:
        raise DockerfileError(f"{keyword} requires at least one argument")
    if any(p.key == "" for p in req.node.pairs):
        raise DockerfileError(f"{keyword} names can not be blank")
    return tuple(req.node.pairs)


def _env(req: _Req) -> Instruction:
    req.flags({})
    return Env(pairs=_pairs(req), **req.common)  # type: ignore[arg-type]


def _label(req: _Req) -> Instruction:
    req.flags({})
    return Label(pairs=_pairs(req), **req.common)  # type: ignore[arg-type]


def _maintainer(req: _Req) -> Instruction:
    value = _exactly_one(req)
    req.flags({})
    return Maintainer(maintainer=value, **req.common)  # type: ignore[arg-type]


def _expose(req: _Req) -> Instruction:
    if not req.args:
        raise DockerfileError("EXPOSE requires at least one argument")
    req.flags({})
    return Expose(ports=tuple(sorted(req.args)), **req.common)  # type: ignore[arg-type]


def _sources_and_dest(req: _Req) -> tuple[tuple[str, ...], tuple[InlineSource, ...], str]:
    keyword = req.node.keyword
    *srcs, dest = req.args
    if parse_marker(dest) is not None:
        raise DockerfileError(f"{keyword} cannot accept a heredoc as a destination")
    bodies = {h.name: h for h in req.heredocs}
    paths: list[str] = []
    inline: list[InlineSource] = []
    for src in srcs:
        marker = parse_marker(src)
        if marker is None:
            paths.append(src)
            continue
        body = bodies.get(marker.name, Heredoc(marker.name))
        data = body.content
        if marker.chomp:
            data = strip_leading_tabs(data)
        inline.append(InlineSource(name=marker.name, data=data, expand=marker.expand))
    return tuple(paths), tuple(inline), dest


def _opt_str(flags: dict[str, FlagValue], name: str) -> str | None:
    value = flags.get(name)
    return str(value) if value else None  # Docker treats an empty value as not given


def _opt_bool(flags: dict[str, FlagValue], name: str) -> bool | None:
    value = flags.get(name)
    return None if value is None else bool(value)


def _need_dest(req: _Req) -> None:
    if len(req.args) < 2:
        raise DockerfileError(f"{req.node.keyword} requires at least two arguments, but only one was "
                              "provided. Destination could not be determined")


def _add(req: _Req) -> Instruction:
    _need_dest(req)
    flags = req.flags({"chown": "string", "chmod": "string", "link": "bool", "keep-git-dir": "bool",
                       "checksum": "string", "unpack": "bool", "exclude": "strings"})
    sources, inline, dest = _sources_and_dest(req)
    return Add(sources=sources, inline=inline, dest=dest, chown=_opt_str(flags, "chown"),
               chmod=_opt_str(flags, "chmod"), link=bool(flags.get("link", False)),
               excludes=tuple(flags.get("exclude", [])),  # type: ignore[arg-type]
               checksum=_opt_str(flags, "checksum"), keep_git_dir=_opt_bool(flags, "keep-git-dir"),
               unpack=_opt_bool(flags, "unpack"), **req.common)  # type: ignore[arg-type]


def _copy(req: _Req) -> Instruction:
    _need_dest(req)
    flags = req.flags({"chown": "string", "from": "string", "chmod": "string", "link": "bool",
                       "exclude": "strings", "parents": "bool"})
    sources, inline, dest = _sources_and_dest(req)
    return Copy(sources=sources, inline=inline, dest=dest, chown=_opt_str(flags, "chown"),
                chmod=_opt_str(flags, "chmod"), link=bool(flags.get("link", False)),
                excludes=tuple(flags.get("exclude", [])),  # type: ignore[arg-type]
                from_=_opt_str(flags, "from"), parents=bool(flags.get("parents", False)),
                **req.common)  # type: ignore[arg-type]


def _volume(req: _Req) -> Instruction:
    if not req.args:
        raise DockerfileError("VOLUME requires at least one argument")
    req.flags({})
    paths = tuple(trim_space(v) for v in req.args)
    if any(p == "" for p in paths):
        raise DockerfileError("VOLUME specified can not be an empty string")
    return Volume(paths=paths, **req.common)  # type: ignore[arg-type]


def _user(req: _Req) -> Instruction:
    value = _exactly_one(req)
    req.flags({})
    return User(user=value, **req.common)  # type: ignore[arg-type]


def _workdir(req: _Req) -> Instruction:
    value = _exactly_one(req)
    req.flags({})
    return Workdir(path=value, **req.common)  # type: ignore[arg-type]


def _stopsignal(req: _Req) -> Instruction:
    value = _exactly_one(req)
    req.flags({})
    return StopSignal(signal=value, **req.common)  # type: ignore[arg-type]


def _arg(req: _Req) -> Instruction:
    if not req.args:
        raise DockerfileError("ARG requires at least one argument")
    req.flags({})
    decls = []
    for word in req.args:
        name, eq, default = word.partition("=")
        if eq and name == "":
            raise DockerfileError("ARG names can not be blank")
        decls.append(ArgDecl(name, default if eq else None))
    return Arg(args=tuple(decls), **req.common)  # type: ignore[arg-type]


def _onbuild(req: _Req) -> Instruction:
    child = req.node.child
    if child is None:
        raise DockerfileError("ONBUILD requires at least one argument")
    req.flags({})
    if child.keyword == "ONBUILD":
        raise DockerfileError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if child.keyword in ("MAINTAINER", "FROM"):
        raise DockerfileError(f"{child.keyword} isn't allowed as an ONBUILD trigger")
    expression = _ONBUILD_PREFIX.sub("", req.node.line, count=1)
    for heredoc in req.heredocs:
        expression += "\n" + heredoc.content + heredoc.name
    location = req.common["location"]
    assert isinstance(location, Location)
    trigger = build(child, heredocs=req.heredocs, location=location)
    return Onbuild(expression=expression, trigger=trigger, **req.common)  # type: ignore[arg-type]


def _interval(flags: dict[str, FlagValue], name: str) -> int:
    text = _opt_str(flags, name)
    if text is None:
        return 0
    ns = parse_duration_ns(text)
    if ns == 0:
        return 0
    if ns < _MIN_INTERVAL_NS:
        raise DockerfileError(f"Interval {name!r} cannot be less than 1ms")
    return ns


def _healthcheck(req: _Req) -> Instruction:
    if not req.args:
        raise DockerfileError("HEALTHCHECK requires at least one argument")
    kind, args = req.args[0].upper(), req.args[1:]
    flags = req.flags({"interval": "string", "timeout": "string", "start-period": "string",
                       "start-interval": "string", "retries": "string"})
    if kind == "NONE":
        if args:
            raise DockerfileError("HEALTHCHECK NONE takes no arguments")
        return Healthcheck(health=HealthConfig(test=("NONE",)), **req.common)  # type: ignore[arg-type]
    if kind != "CMD":
        raise DockerfileError(f"Unknown type {req.args[0]!r} in HEALTHCHECK (try CMD)")
    if not args:
        raise DockerfileError("Missing command after HEALTHCHECK CMD")
    test = ("CMD", *args) if req.node.is_json else ("CMD-SHELL", " ".join(args))
    retries = _retries(_opt_str(flags, "retries"))
    health = HealthConfig(test=test, interval=_interval(flags, "interval"),
                          timeout=_interval(flags, "timeout"), start_period=_interval(flags, "start-period"),
                          start_interval=_interval(flags, "start-interval"), retries=retries)
    return Healthcheck(health=health, **req.common)  # type: ignore[arg-type]


def _retries(text: str | None) -> int:
    if text is None:
        return 0
    if not _INTEGER.fullmatch(text):
        raise DockerfileError(f"strconv.ParseInt: parsing {text!r}: invalid syntax")
    retries = int(text)
    if not -2**31 <= retries < 2**31:
        raise DockerfileError(f"strconv.ParseInt: parsing {text!r}: value out of range")
    if retries < 0:
        raise DockerfileError(f"--retries cannot be negative ({retries})")
    return retries


_BUILDERS: dict[str, Callable[[_Req], Instruction]] = {
    "FROM": _from, "RUN": _run, "CMD": _cmd, "ENTRYPOINT": _entrypoint, "SHELL": _shell, "ENV": _env,
    "LABEL": _label, "MAINTAINER": _maintainer, "EXPOSE": _expose, "ADD": _add, "COPY": _copy,
    "VOLUME": _volume, "USER": _user, "WORKDIR": _workdir, "STOPSIGNAL": _stopsignal, "ARG": _arg,
    "ONBUILD": _onbuild, "HEALTHCHECK": _healthcheck,
}
