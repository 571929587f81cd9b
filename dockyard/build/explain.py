"""`dockyard build --explain-cache`: why a step could not reuse the cache.

The cache keeps, for every step it stored, the inputs it was built from and a slot (the parent layer and the
instruction as written). A miss is explained by finding the latest record of the same slot and comparing
inputs (an ARG's value, the environment, a COPY source file), or, when there is none, by what changed before
the step (an earlier step rebuilt, another base image).
"""

from __future__ import annotations

from typing import Any

from dockyard.build.cache import BuildCache

MAX_FILES = 5


def explain_miss(cache: BuildCache, slot: str, inputs: dict[str, Any], files: list[tuple[str, str]] | None,
                 description: str, rebuilt_step: int | None, base: str | None) -> list[str]:
    """Reasons, most specific first. `rebuilt_step`: the number of an earlier step of this stage that was
    rebuilt in this build; `base`: the stage's base image, when it is one."""
    previous = cache.previous_in_slot(slot)
    if previous is not None:
        reasons = _input_changes(previous.inputs, inputs)
        if previous.inputs.get("sources") != inputs.get("sources"):
            reasons += _file_changes(cache.files_of(previous.key), files)
        return reasons or ["its inputs changed"]
    if cache.previous_with_description(description) is None:
        return ["no earlier build of this step"]
    if rebuilt_step is not None:
        return [f"its parent layer changed: step {rebuilt_step} was rebuilt"]
    if base:
        return [f"its parent layer changed: the base image {base} is not the one it was built on"]
    return ["its parent layer changed"]


def _input_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    reasons: list[str] = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key), new.get(key)
        if before == after or key == "sources":
            continue
        if key == "args":
            reasons += _mapping_changes("build arg", before or {}, after or {})
        elif key == "env":
            args = set(old.get("args") or {}) | set(new.get("args") or {})  # reported as build args
            reasons += _mapping_changes("environment variable", _env_map(before, args), _env_map(after, args))
        else:
            reasons.append(f"{key} changed: {_short(before)} -> {_short(after)}")
    return reasons


def _env_map(entries: Any, leave_out: set[str]) -> dict[str, str]:
    pairs = (e.partition("=")[::2] for e in entries or [])
    return {k: v for k, v in pairs if k not in leave_out}


def _mapping_changes(what: str, before: dict[str, str], after: dict[str, str]) -> list[str]:
    out = []
    for name in sorted(set(before) | set(after)):
        if name not in before:
            out.append(f"{what} {name} is new ({_short(after[name])})")
        elif name not in after:
            out.append(f"{what} {name} is gone (was {_short(before[name])})")
        elif before[name] != after[name]:
            out.append(f"{what} {name} changed: {_short(before[name])} -> {_short(after[name])}")
    return out


def _file_changes(old: dict[str, str] | None, new: list[tuple[str, str]] | None) -> list[str]:
    if old is None or new is None:
        return ["its source files changed"]
    current = dict(new)
    changed = sorted(p for p in current if p in old and old[p] != current[p])
    added = sorted(p for p in current if p not in old)
    removed = sorted(p for p in old if p not in current)
    out = [f"file {p} changed" for p in changed[:MAX_FILES]]
    out += [f"file {p} added" for p in added[:MAX_FILES]]
    out += [f"file {p} removed" for p in removed[:MAX_FILES]]
    hidden = len(changed) + len(added) + len(removed) - len(out)
    if hidden > 0:
        out.append(f"... and {hidden} more files")
    return out or ["its source files changed"]


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= 60 else text[:57] + "..."
