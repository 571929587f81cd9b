"""The process a RUN step starts, and the Cmd/Entrypoint an image records, from their instructions.

Shell form prefixes the image's SHELL (default `/bin/sh -c`) and passes the command as one string; exec form
is the argv as written. RUN with here-documents follows BuildKit:

* `RUN <<EOF` alone: the body is the script, given to the shell as the command string; a body starting with
  `#!` is instead provided as an executable file (at /dev/pipes/<name>) and that file is run, so its
  interpreter line is honoured;
* anything else (`RUN <<EOF bash`, `RUN cat <<A >a && cat <<B >b`): the line and the bodies are joined back
  into one shell script, and the shell handles the here-documents itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dockyard.build.errors import DockerfileError
from dockyard.build.heredoc import parse_marker
from dockyard.build.instructions import Cmd, Entrypoint, Run

DEFAULT_SHELL = ("/bin/sh", "-c")
PIPES_DIR = "/dev/pipes"


@dataclass(frozen=True)
class InlineFile:
    path: str  # absolute path in the container
    data: str
    mode: int = 0o755


@dataclass(frozen=True)
class ProcessSpec:
    argv: tuple[str, ...]
    files: tuple[InlineFile, ...] = ()  # to provide read-only while the step runs


def run_process(run: Run, shell: Sequence[str] | None = None) -> ProcessSpec:
    shell = tuple(shell) if shell else DEFAULT_SHELL
    args = list(run.command)
    files: tuple[InlineFile, ...] = ()
    if run.heredocs:
        if len(args) != 1 or not run.shell_form:
            raise DockerfileError(f"parsing produced an invalid run command: {args}", run.location.path,
                                  run.line)
        if parse_marker(args[0]) is not None:
            first = run.heredocs[0]
            data = first.text
            if data.startswith("#!"):
                path = f"{PIPES_DIR}/{first.name}"
                files, args = (InlineFile(path, data),), [path]
            else:
                args = [data]
        else:
            args = [args[0] + "".join(f"\n{h.content}{h.name}" for h in run.heredocs)]
    if run.shell_form:
        return ProcessSpec((*shell, " ".join(args)), files)
    return ProcessSpec(tuple(args), files)


def config_command(ins: Cmd | Entrypoint, shell: Sequence[str] | None = None) -> list[str] | None:
    """The image config's Cmd/Entrypoint value (`ENTRYPOINT []` clears it: None)."""
    if ins.shell_form:
        return [*(tuple(shell) if shell else DEFAULT_SHELL), " ".join(ins.command)]
    if isinstance(ins, Entrypoint) and not ins.command:
        return None
    return list(ins.command)
