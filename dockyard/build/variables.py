"""Build variables: --build-arg values, ARG scoping across stages, ENV, and the platform args.

The model is BuildKit's:

* Global scope: the automatic platform args (TARGETPLATFORM, BUILDARCH...) and the ARGs declared before the
  first FROM (their defaults may use earlier globals; a --build-arg replaces a default). Only FROM lines see
  the global scope directly.
* Inside a stage a variable exists once it is declared: `ARG name[=default]` or `ENV name=value` (or ENV
  inherited from the base image). The latest definition wins, so `ARG X` then `ENV X=...` reads the ENV
  value ("ENV overrides ARG"), and an ARG re-declared without a default takes the --build-arg value, else the
  global value of the same name.
* A stage built FROM an earlier stage inherits that stage's variables, ARGs included.
* The predefined proxy args (HTTP_PROXY, no_proxy...) reach RUN's environment when given with --build-arg,
  without being declared, but stay out of the cache key and of expansion unless an ARG declares them.

`StageVariables` is the state of one stage as its instructions are evaluated in order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from dockyard.build.errors import DockerfileError
from dockyard.build.instructions import Arg, ArgDecl
from dockyard.build.shell_lex import Lexer

PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
              "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
PLATFORM_ARGS = ("BUILDPLATFORM", "BUILDOS", "BUILDOSVERSION", "BUILDARCH", "BUILDVARIANT", "TARGETPLATFORM",
                 "TARGETOS", "TARGETOSVERSION", "TARGETARCH", "TARGETVARIANT", "TARGETSTAGE")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm",
                 "i386": "386", "i686": "386"}


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    @classmethod
    def parse(cls, text: str) -> Platform:
        """`linux/amd64`, `linux/arm/v7`, `linux/arm64`; architecture aliases are normalised."""
        parts = text.strip().lower().split("/")
        if len(parts) < 2 or len(parts) > 3 or not all(parts):
            raise ValueError(f"{text!r}: unknown platform, expected os/arch[/variant]")
        arch = _ARCH_ALIASES.get(parts[1], parts[1])
        variant = parts[2] if len(parts) == 3 else ""
        if arch == "arm64" and variant == "v8":
            variant = ""  # containerd's normal form
        if arch == "arm" and not variant:
            variant = "v7"
        return cls(parts[0], arch, variant)

    @classmethod
    def host(cls) -> Platform:
        from dockyard.image.model import host_platform
        os_name, arch, variant = host_platform()
        return cls.parse(f"{os_name}/{arch}" + (f"/{variant}" if variant else ""))


def platform_args(target: Platform, build: Platform, target_stage: str | None) -> dict[str, str]:
    return {
        "BUILDPLATFORM": str(build), "BUILDOS": build.os, "BUILDOSVERSION": "",
        "BUILDARCH": build.architecture, "BUILDVARIANT": build.variant,
        "TARGETPLATFORM": str(target), "TARGETOS": target.os, "TARGETOSVERSION": "",
        "TARGETARCH": target.architecture, "TARGETVARIANT": target.variant,
        "TARGETSTAGE": target_stage or "default",
    }


@dataclass
class BuildArgs:
    """The --build-arg values of a build, and which of them some ARG consumed."""

    values: dict[str, str] = field(default_factory=dict)
    consumed: set[str] = field(default_factory=set)

    def get(self, name: str) -> str | None:
        if name in self.values:
            self.consumed.add(name)
            return self.values[name]
        return None

    def proxies(self) -> dict[str, str]:
        return {k: v for k, v in self.values.items() if k in PROXY_ARGS}

    def unused(self) -> list[str]:
        """Build args nothing declared (Docker warns about them); predefined ones are never reported."""
        return sorted(k for k in self.values
                      if k not in self.consumed and k not in PROXY_ARGS and k not in PLATFORM_ARGS)


@dataclass
class GlobalArgs:
    """The global scope: what FROM lines expand with and what `ARG name` inside a stage falls back to."""

    values: dict[str, str]
    used_by: dict[str, frozenset[str]] = field(default_factory=dict)  # meta arg -> globals its default read


def resolve_global_args(meta_args: Iterable[Arg], build_args: BuildArgs, defaults: Mapping[str, str],
                        lexer: Lexer) -> GlobalArgs:
    values = dict(defaults)
    for name in PLATFORM_ARGS:
        override = build_args.get(name)
        if override is not None and name in values:
            values[name] = override
    used_by: dict[str, frozenset[str]] = {}
    for ins in meta_args:
        for decl in ins.args:
            given = build_args.get(decl.name)
            if given is not None:
                values[decl.name] = given
            elif decl.default is not None:
                try:
                    expansion = lexer.expand(decl.default, values)
                except DockerfileError as e:
                    raise DockerfileError(e.reason, ins.location.path, ins.line) from None
                values[decl.name] = expansion.result
                used_by[decl.name] = frozenset(expansion.matched - {decl.name})
    return GlobalArgs(values, used_by)


@dataclass
class _Var:
    value: str
    origin: str  # "env" or "arg"


class StageVariables:
    """The variables of one stage while its instructions are evaluated."""

    def __init__(self, global_args: GlobalArgs, build_args: BuildArgs, base_env: Iterable[str] = (),
                 *, ensure_path: bool = True) -> None:
        self.global_args = global_args
        self.build_args = build_args
        self.env: dict[str, str] = {}  # what the image config's Env will say
        self.args: dict[str, str | None] = {}  # ARGs declared so far (inherited ones included), in order
        self._scope: dict[str, _Var] = {}
        for item in base_env:
            key, _, value = item.partition("=")
            self.set_env(key, value)
        if ensure_path and "PATH" not in self.env:
            self.set_env("PATH", DEFAULT_PATH)

    def derive(self) -> StageVariables:
        """A copy for a stage built FROM this one."""
        child = StageVariables.__new__(StageVariables)
        child.global_args, child.build_args = self.global_args, self.build_args
        child.env = dict(self.env)
        child.args = dict(self.args)
        child._scope = {k: _Var(v.value, v.origin) for k, v in self._scope.items()}
        return child

    # -- reading
    @property
    def view(self) -> Mapping[str, str]:
        """The mapping word expansion reads (every defined variable, latest definition winning)."""
        return _ScopeView(self._scope)

    def get(self, name: str) -> str | None:
        var = self._scope.get(name)
        return var.value if var is not None else None

    def is_arg(self, name: str) -> bool:
        var = self._scope.get(name)
        return var is not None and var.origin == "arg"

    def arg_values(self) -> dict[str, str]:
        """Every declared ARG with the value a RUN sees (an ENV of the same name wins): RUN's cache inputs."""
        values = {}
        for name, declared in self.args.items():
            current = self.get(name)
            values[name] = current if current is not None else (declared or "")
        return values

    def run_environment(self) -> list[str]:
        """`K=V` entries for a RUN process: ENV and ARG values, then undeclared proxy build args."""
        entries = {name: var.value for name, var in self._scope.items()}
        for name, value in self.build_args.proxies().items():
            entries.setdefault(name, value)
        return [f"{k}={v}" for k, v in entries.items()]

    # -- changing
    def set_env(self, key: str, value: str) -> None:
        self.env[key] = value
        self._scope[key] = _Var(value, "env")

    def used_args(self, names: Iterable[str]) -> dict[str, str]:
        """The ARG values among `names` (variables an expansion read), for the cache key."""
        return {n: self._scope[n].value for n in sorted(names) if self.is_arg(n)}

    def declare_arg(self, decl: ArgDecl, lexer: Lexer) -> tuple[str | None, dict[str, str]]:
        """Apply `ARG name[=default]`: (its value, None when left undefined; the ARGs its default read)."""
        used: dict[str, str] = {}
        given = self.build_args.get(decl.name)
        value: str | None
        if given is not None:
            value = given
        elif decl.default is not None:
            expansion = lexer.expand(decl.default, self.view)
            value, used = expansion.result, self.used_args(expansion.matched)
        else:
            value = self.global_args.values.get(decl.name)
        if value is not None:
            self._scope[decl.name] = _Var(value, "arg")
        self.args[decl.name] = value
        return value, used


class _ScopeView(Mapping[str, str]):
    def __init__(self, scope: dict[str, _Var]) -> None:
        self._scope = scope

    def __getitem__(self, key: str) -> str:
        return self._scope[key].value

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        var = self._scope.get(key)
        return var.value if var is not None else default

    def __iter__(self) -> Iterator[str]:
        return iter(self._scope)

    def __len__(self) -> int:
        return len(self._scope)
