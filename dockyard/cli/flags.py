"""A small parser for Docker's command-line conventions, with the subset of argparse's interface we use.

Why not argparse: importing it and building a `run` parser costs about 15 ms per command, a third of what a
whole `dockyard exec` may take. Docker's flag grammar is simple (pflag): long flags with `=value` or a separate
value, short flags that can be combined (`-it`, `-p80:80`), repeated flags that accumulate, and flag parsing
that stops at a `--` or, for commands like run and exec, at the first word of the command to run.

Supported: add_argument(*flags, action=store|store_true|append|help, dest, default, type, choices, help,
metavar, nargs=None|"?"|"+"|REMAINDER, const) and parse_args(); errors go to `error()`, which the CLI turns
into Docker's usage message and exit code 125.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

REMAINDER = "..."
SUPPRESS = "==SUPPRESS=="


class Namespace:
    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return f"Namespace({self.__dict__!r})"


class _Option:
    def __init__(self, flags: tuple[str, ...], kwargs: dict[str, Any]) -> None:
        self.flags = flags
        self.action = kwargs.get("action", "store")
        longs = [f for f in flags if f.startswith("--")]
        self.dest = kwargs.get("dest") or (longs[0] if longs else flags[0]).lstrip("-").replace("-", "_")
        self.default = kwargs.get("default", False if self.action == "store_true" else None)
        self.type: Callable[[str], Any] | None = kwargs.get("type")
        self.choices = kwargs.get("choices")
        self.help = kwargs.get("help", "")
        self.metavar = kwargs.get("metavar")
        self.nargs = kwargs.get("nargs")
        self.const = kwargs.get("const")

    @property
    def takes_value(self) -> bool:
        return self.action in ("store", "append") and self.nargs != "?"


class _Positional:
    def __init__(self, name: str, kwargs: dict[str, Any]) -> None:
        self.dest = kwargs.get("dest") or name
        self.nargs = kwargs.get("nargs")
        self.metavar = kwargs.get("metavar") or name.upper()
        self.help = kwargs.get("help", "")
        self.choices = kwargs.get("choices")
        self.type = kwargs.get("type")
        self.default = kwargs.get("default", [] if self.nargs in ("+", "*", REMAINDER) else None)


class ArgumentParser:
    def __init__(self, prog: str = "", description: str = "", add_help: bool = True, **_: Any) -> None:
        self.prog = prog or sys.argv[0]
        self.description = description
        self.options: list[_Option] = []
        self.positionals: list[_Positional] = []
        self._option_string_actions: dict[str, _Option] = {}
        if add_help:
            self.add_argument("-h", "--help", action="help", help="Print usage")

    def add_argument(self, *names: str, **kwargs: Any) -> None:
        if names[0].startswith("-"):
            option = _Option(names, kwargs)
            for flag in names:
                if flag in self._option_string_actions:
                    raise ValueError(f"conflicting option string: {flag}")
                self._option_string_actions[flag] = option
            self.options.append(option)
        else:
            self.positionals.append(_Positional(names[0], kwargs))

    # --- parsing ----------------------------------------------------------------------------------------------

    def error(self, message: str) -> None:
        sys.stderr.write(f"{message}\nSee '{self.prog} --help'.\n")
        raise SystemExit(125)

    def _convert(self, option: _Option | _Positional, flag: str, value: str) -> Any:
        if option.type is not None:
            try:
                value = option.type(value)
            except (TypeError, ValueError):
                self.error(f'invalid argument "{value}" for "{flag}" flag: invalid syntax')
        if option.choices is not None and value not in option.choices:
            self.error(f'invalid argument "{value}" for "{flag}" flag: must be one of '
                       f'{", ".join(map(str, option.choices))}')
        return value

    def _set(self, values: dict[str, Any], option: _Option, flag: str, value: str | None) -> None:
        if option.action == "help":
            sys.stdout.write(self.format_help())
            raise SystemExit(0)
        if option.action == "store_true":
            if value is None:
                values[option.dest] = True
            elif value.lower() in ("true", "1", "t"):
                values[option.dest] = True
            elif value.lower() in ("false", "0", "f"):
                values[option.dest] = False
            else:
                self.error(f'invalid argument "{value}" for "{flag}" flag: strconv.ParseBool: parsing "{value}": '
                           f"invalid syntax")
        elif option.action == "append":
            values.setdefault(option.dest, list(option.default or []))
            values[option.dest].append(self._convert(option, flag, value))  # type: ignore[arg-type]
        elif option.nargs == "?" and value is None:
            values[option.dest] = option.const
        else:
            values[option.dest] = self._convert(option, flag, value)  # type: ignore[arg-type]

    def parse_args(self, args: list[str] | None = None) -> Namespace:
        args = list(sys.argv[1:] if args is None else args)
        values: dict[str, Any] = {}
        words: list[str] = []
        stop_at = self._remainder_index()
        i = 0
        while i < len(args):
            arg = args[i]
            if stop_at is not None and len(words) >= stop_at:
                words.extend(args[i:])  # the command to run: its flags are its own
                break
            if arg == "--":
                words.extend(args[i + 1:])
                break
            if arg.startswith("--"):
                name, eq, value = arg.partition("=")
                option = self._option_string_actions.get(name)
                if option is None:
                    self.error(f"unknown flag: {name}")
                if not eq and option.takes_value:
                    if i + 1 >= len(args):
                        self.error(f"flag needs an argument: {name}")
                    i += 1
                    value = args[i]
                self._set(values, option, name, value if (eq or option.takes_value) else None)
            elif arg.startswith("-") and arg != "-":
                j = 1
                while j < len(arg):
                    flag = "-" + arg[j]
                    option = self._option_string_actions.get(flag)
                    if option is None:
                        self.error(f"unknown shorthand flag: '{arg[j]}' in {arg}")
                    if option.takes_value:
                        value = arg[j + 1:].removeprefix("=")
                        if not value:
                            if i + 1 >= len(args):
                                self.error(f"flag needs an argument: '{arg[j]}' in {arg}")
                            i += 1
                            value = args[i]
                        self._set(values, option, flag, value)
                        break
                    self._set(values, option, flag, None)
                    j += 1
            else:
                words.append(arg)
            i += 1
        for option in self.options:
            values.setdefault(option.dest, list(option.default) if isinstance(option.default, list)
                              else option.default)
        self._assign_positionals(words, values)
        return Namespace(**values)

    def _remainder_index(self) -> int | None:
        """How many positional words come before a REMAINDER one (where flag parsing stops)."""
        for index, positional in enumerate(self.positionals):
            if positional.nargs == REMAINDER:
                return index
        return None

    def _assign_positionals(self, words: list[str], values: dict[str, Any]) -> None:
        required = sum(1 for p in self.positionals if p.nargs in (None, "+"))
        for index, positional in enumerate(self.positionals):
            if positional.nargs is None:
                if not words:
                    self.error(f'"{self.prog}" requires at least {required} argument'
                               f'{"s" if required != 1 else ""}.')
                values[positional.dest] = self._convert(positional, positional.metavar, words.pop(0))
            elif positional.nargs == "?":
                later = sum(1 for p in self.positionals[index + 1:] if p.nargs in (None, "+"))
                values[positional.dest] = words.pop(0) if len(words) > later else positional.default
            elif positional.nargs == "+":
                later = sum(1 for p in self.positionals[index + 1:] if p.nargs in (None, "+"))
                if len(words) <= later:
                    self.error(f'"{self.prog}" requires at least {required} argument'
                               f'{"s" if required != 1 else ""}.')
                take = len(words) - later
                values[positional.dest] = [self._convert(positional, positional.metavar, w) for w in words[:take]]
                del words[:take]
            else:  # REMAINDER
                values[positional.dest] = list(words)
                words.clear()
        if words:
            self.error(f"unrecognized arguments: {' '.join(words)}")

    # --- help -------------------------------------------------------------------------------------------------

    def format_help(self) -> str:
        usage = [f"usage: {self.prog}", "[OPTIONS]"] if self.options else [f"usage: {self.prog}"]
        for p in self.positionals:
            usage.append(p.metavar if p.nargs is None else f"[{p.metavar}]" if p.nargs == "?" else f"{p.metavar}...")
        lines = [" ".join(usage), ""]
        if self.description:
            lines += [self.description, ""]
        if self.positionals:
            lines.append("Arguments:")
            for p in self.positionals:
                lines.append(f"  {p.metavar:<28} {p.help}")
            lines.append("")
        lines.append("Options:")
        for option in self.options:
            if option.help == SUPPRESS:  # accepted for Docker's sake, not worth listing
                continue
            flags = ", ".join(option.flags)
            if option.takes_value:
                flags += " " + (option.metavar or ("list" if option.action == "append" else "string"))
            text = option.help or ""
            if option.choices:
                text += f" ({'|'.join(map(str, option.choices))})"
            lines.append(f"  {flags:<28} {text}")
        return "\n".join(lines) + "\n"
