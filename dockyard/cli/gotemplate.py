"""The subset of Go's text/template that Docker's --format flags use, with Docker's extra functions.

Supported: text and actions with `{{-`/`-}}` trimming, comments, field chains (`.Config.Cmd`), `$` and
variables from `range $k, $v := ...`, string/number/bool literals, pipelines with `|`, parenthesised
pipelines, `if`/`else if`/`else`, `range` (with `else`), `with`, and the functions Docker users reach for:
json, join, split, lower, upper, title, pad, truncate, print, printf, println, index, len, slice, eq, ne,
lt, le, gt, ge, and, or, not.

Values print as Go's fmt %v would print the JSON-shaped data: lists as `[a b]`, maps as `map[k:v]` with
sorted keys, a missing map key as `<no value>`, null as `<nil>`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable

from dockyard.errors import InvalidArgument


class TemplateError(InvalidArgument):
    pass


class _Missing:
    """A map key that is not there: Go prints it as <no value>."""

    def __repr__(self) -> str:
        return "<no value>"


MISSING = _Missing()


# --- printing values as Go does -------------------------------------------------------------------------------

def go_str(value: Any) -> str:
    if value is MISSING:
        return "<no value>"
    if value is None:
        return "<nil>"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        return repr(value) if value != int(value) or abs(value) >= 1e21 else str(int(value))
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_str(value[k])}" for k in sorted(value)) + "]"
    return str(value)


def go_json(value: Any) -> str:
    """Go's json.Marshal: compact, with <, > and & escaped."""
    text = json.dumps(None if value is MISSING else value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def truthy(value: Any) -> bool:
    if value is MISSING or value is None:
        return False
    if isinstance(value, (bool, int, float, str, list, tuple, dict)):
        return bool(value)
    return True


# --- lexing ---------------------------------------------------------------------------------------------------

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>"(?:[^"\\]|\\.)*")
      | (?P<raw>`[^`]*`)
      | (?P<num>-?\d+(?:\.\d+)?)
      | (?P<field>(?:\$[A-Za-z0-9_]*)?(?:\.[A-Za-z0-9_]+)+|\.)
      | (?P<var>\$[A-Za-z0-9_]*)
      | (?P<decl>:=)
      | (?P<punct>[|(),])
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.X,
)


@dataclass
class Tok:
    kind: str
    text: str


def _tokens(src: str) -> list[Tok]:
    out, pos = [], 0
    src = src.strip()
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"template: unexpected {src[pos:]!r} in action")
        kind = m.lastgroup or ""
        out.append(Tok(kind, m.group(kind)))
        pos = m.end()
        while pos < len(src) and src[pos].isspace():
            pos += 1
    return out


# --- parsing --------------------------------------------------------------------------------------------------

@dataclass
class Text:
    text: str


@dataclass
class Action:
    pipe: list  # list of commands; a command is a list of operands


@dataclass
class If:
    branches: list  # [(pipe, body)]
    otherwise: list | None


@dataclass
class Range:
    pipe: list
    key_var: str | None
    value_var: str | None
    body: list
    otherwise: list | None


@dataclass
class With:
    pipe: list
    body: list
    otherwise: list | None


def _split_actions(src: str) -> list[tuple[str, str]]:
    """[('text', ...), ('action', ...)] with trim markers applied."""
    parts: list[tuple[str, str]] = []
    pos = 0
    for m in _ACTION.finditer(src):
        text = src[pos:m.start()]
        if m.group(1):
            text = text.rstrip()
        parts.append(("text", text))
        parts.append(("action", m.group(2)))
        pos = m.end()
        if m.group(3):
            rest = src[pos:]
            pos += len(rest) - len(rest.lstrip())
    parts.append(("text", src[pos:]))
    return [(k, v) for k, v in parts if not (k == "text" and v == "")]


def _parse_pipe(tokens: list[Tok]) -> list:
    commands: list[list] = [[]]
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.kind == "punct" and tok.text == "|":
            commands.append([])
        elif tok.kind == "punct" and tok.text == "(":
            depth, j = 1, i + 1
            while j < len(tokens) and depth:
                if tokens[j].kind == "punct" and tokens[j].text in "()":
                    depth += 1 if tokens[j].text == "(" else -1
                j += 1
            if depth:
                raise TemplateError("template: unclosed '(' in action")
            commands[-1].append(("pipe", _parse_pipe(tokens[i + 1:j - 1])))
            i = j
            continue
        elif tok.kind == "punct":
            raise TemplateError(f"template: unexpected {tok.text!r} in action")
        else:
            commands[-1].append((tok.kind, tok.text))
        i += 1
    if any(not c for c in commands):
        raise TemplateError("template: missing command in pipeline")
    return commands


def parse(src: str) -> list:
    items = _split_actions(src)
    pos = 0

    def block(stop: tuple[str, ...]) -> tuple[list, str, list[Tok]]:
        nonlocal pos
        body: list = []
        while pos < len(items):
            kind, value = items[pos]
            pos += 1
            if kind == "text":
                body.append(Text(value))
                continue
            stripped = value.strip()
            if stripped.startswith("/*"):
                continue
            tokens = _tokens(stripped)
            if not tokens:
                raise TemplateError("template: empty action")
            head = tokens[0].text if tokens[0].kind == "ident" else ""
            if head in stop:
                return body, head, tokens[1:]
            if head == "if":
                body.append(parse_if(tokens[1:]))
            elif head == "range":
                body.append(parse_range(tokens[1:]))
            elif head == "with":
                inner, end, _ = block(("end", "else"))
                otherwise = block(("end",))[0] if end == "else" else None
                body.append(With(_parse_pipe(tokens[1:]), inner, otherwise))
            elif head in ("end", "else"):
                raise TemplateError(f"template: unexpected {{{{{head}}}}}")
            else:
                body.append(Action(_parse_pipe(tokens)))
        if stop:
            raise TemplateError("template: missing {{end}}")
        return body, "", []

    def parse_if(cond: list[Tok]) -> If:
        branches = []
        otherwise = None
        while True:
            body, end, rest = block(("end", "else"))
            branches.append((_parse_pipe(cond), body))
            if end == "end":
                break
            if rest and rest[0].kind == "ident" and rest[0].text == "if":
                cond = rest[1:]
                continue
            otherwise = block(("end",))[0]
            break
        return If(branches, otherwise)

    def parse_range(tokens: list[Tok]) -> Range:
        key_var = value_var = None
        decl = next((i for i, t in enumerate(tokens) if t.kind == "decl"), None)
        if decl is not None:
            names = [t.text for t in tokens[:decl] if t.kind == "var"]
            if len(names) == 1:
                value_var = names[0]
            elif len(names) == 2:
                key_var, value_var = names
            tokens = tokens[decl + 1:]
        body, end, _ = block(("end", "else"))
        otherwise = block(("end",))[0] if end == "else" else None
        return Range(_parse_pipe(tokens), key_var, value_var, body, otherwise)

    body, _, _ = block(())
    return body


# --- functions --------------------------------------------------------------------------------------------------

def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, dict):
            value = value.get(key, MISSING)
        elif isinstance(value, (list, tuple, str)):
            value = value[int(key)]
        else:
            raise TemplateError(f"template: can't index item of type {type(value).__name__}")
    return value


def _printf(fmt: str, *args: Any) -> str:
    out, i, arg = [], 0, 0
    while i < len(fmt):
        c = fmt[i]
        if c == "%" and i + 1 < len(fmt):
            j = i + 1
            while j < len(fmt) and fmt[j] in "-+ #0123456789.":
                j += 1
            verb, flags = fmt[j], fmt[i + 1:j]
            i = j + 1
            if verb == "%":
                out.append("%")
                continue
            value = args[arg] if arg < len(args) else MISSING
            arg += 1
            if verb in "vs":
                text = go_str(value)
            elif verb == "q":
                text = json.dumps(go_str(value))
            elif verb == "d":
                text = str(int(value))
            else:
                text = go_str(value)
            out.append(("%" + flags.replace("#", "") + "s") % text if flags else text)
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _truncate(value: Any, length: int) -> str:
    text = go_str(value)
    return text[:int(length)]


def _pad(value: Any, left: int, right: int) -> str:
    return " " * int(left) + go_str(value) + " " * int(right)


def _and(*values: Any) -> Any:
    for v in values:
        if not truthy(v):
            return v
    return values[-1]


def _or(*values: Any) -> Any:
    for v in values:
        if truthy(v):
            return v
    return values[-1]


def _title(value: Any) -> str:
    text = go_str(value)
    return text[:1].upper() + text[1:] if text else text


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "json": go_json,
    "join": lambda items, sep: sep.join(go_str(i) for i in (items or [])),
    "split": lambda text, sep: go_str(text).split(sep),
    "lower": lambda v: go_str(v).lower(),
    "upper": lambda v: go_str(v).upper(),
    "title": _title,
    "pad": _pad,
    "truncate": _truncate,
    "print": lambda *a: "".join(go_str(x) for x in a),
    "println": lambda *a: " ".join(go_str(x) for x in a) + "\n",
    "printf": _printf,
    "index": _index,
    "len": lambda v: len(v) if v not in (None, MISSING) else 0,
    "slice": lambda v, *ix: v[slice(*(int(i) for i in ix))],
    "eq": lambda a, *others: any(a == b for b in others),  # Go: true if arg1 equals any later one
    "ne": lambda a, b: a != b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "and": _and,
    "or": _or,
    "not": lambda v: not truthy(v),
}


# --- evaluation -----------------------------------------------------------------------------------------------

class _Scope:
    def __init__(self, dot: Any, variables: dict[str, Any]) -> None:
        self.dot = dot
        self.vars = variables


def _field(value: Any, name: str) -> Any:
    if isinstance(value, dict):
        return value.get(name, MISSING)
    if value is None or value is MISSING:
        return MISSING
    attr = getattr(value, name, MISSING)
    return attr() if callable(attr) else attr


def _operand(op: tuple, scope: _Scope, args: list[Any] | None) -> Any:
    kind, text = op
    if kind == "pipe":
        return _run_pipe(text, scope)
    if kind == "str":
        return json.loads(text)
    if kind == "raw":
        return text[1:-1]
    if kind == "num":
        return float(text) if "." in text else int(text)
    if kind == "field":
        if text == ".":
            return scope.dot
        if text.startswith("$"):
            var, _, path = text.partition(".")
            value = scope.vars.get(var, MISSING)
        else:
            value, path = scope.dot, text[1:]
        for name in path.split("."):
            value = _field(value, name)
        return value
    if kind == "var":
        if text not in scope.vars:
            raise TemplateError(f"template: undefined variable {text}")
        return scope.vars[text]
    if kind == "ident":
        if text in ("true", "false"):
            return text == "true"
        if text == "nil":
            return None
        fn = FUNCTIONS.get(text)
        if fn is None:
            raise TemplateError(f'template: function "{text}" not defined')
        try:
            return fn(*(args or []))
        except TemplateError:
            raise
        except Exception as e:  # a wrong argument in a user's template: say so, like Go does
            raise TemplateError(f"template: error calling {text}: {e}") from None
    raise TemplateError(f"template: unexpected {text!r}")


def _run_pipe(commands: list, scope: _Scope) -> Any:
    result: Any = MISSING
    for index, command in enumerate(commands):
        head = command[0]
        if head[0] == "ident" and head[1] not in ("true", "false", "nil"):
            args = [_operand(op, scope, None) for op in command[1:]]
            if index > 0:
                args.append(result)
            result = _operand(head, scope, args)
        else:
            if len(command) > 1:
                raise TemplateError(f"template: can't give argument to non-function {head[1]}")
            result = _operand(head, scope, None)
            if index > 0:
                raise TemplateError(f"template: can't pipe into non-function {head[1]}")
    return result


def _render(nodes: list, scope: _Scope, out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, Text):
            out.append(node.text)
        elif isinstance(node, Action):
            out.append(go_str(_run_pipe(node.pipe, scope)))
        elif isinstance(node, If):
            for pipe, body in node.branches:
                if truthy(_run_pipe(pipe, scope)):
                    _render(body, scope, out)
                    break
            else:
                if node.otherwise is not None:
                    _render(node.otherwise, scope, out)
        elif isinstance(node, With):
            value = _run_pipe(node.pipe, scope)
            if truthy(value):
                _render(node.body, _Scope(value, scope.vars), out)
            elif node.otherwise is not None:
                _render(node.otherwise, scope, out)
        elif isinstance(node, Range):
            value = _run_pipe(node.pipe, scope)
            pairs = (sorted(value.items()) if isinstance(value, dict)
                     else list(enumerate(value)) if isinstance(value, (list, tuple)) else [])
            if not pairs:
                if node.otherwise is not None:
                    _render(node.otherwise, scope, out)
                continue
            for key, item in pairs:
                variables = dict(scope.vars)
                if node.key_var:
                    variables[node.key_var] = key
                if node.value_var:
                    variables[node.value_var] = item
                _render(node.body, _Scope(item, variables), out)


class Template:
    def __init__(self, source: str) -> None:
        self.source = source
        self.nodes = parse(source)

    def render(self, data: Any) -> str:
        out: list[str] = []
        _render(self.nodes, _Scope(data, {"$": data}), out)
        return "".join(out)
