"""What a RUN step executes and what CMD/ENTRYPOINT put in the image config."""

from __future__ import annotations

from dockyard.build.commandline import InlineFile, ProcessSpec, config_command, run_process
from dockyard.build.parser import parse_dockerfile


def instructions(text: str) -> list:
    return list(parse_dockerfile("FROM a\n" + text).stages[0].instructions)


def test_shell_and_exec_form() -> None:
    shell, exec_ = instructions('RUN echo $HOME\nRUN ["echo", "$HOME"]\n')
    assert run_process(shell) == ProcessSpec(("/bin/sh", "-c", "echo $HOME"))
    assert run_process(shell, ["bash", "-eu", "-c"]).argv == ("bash", "-eu", "-c", "echo $HOME")
    assert run_process(exec_) == ProcessSpec(("echo", "$HOME"))


def test_heredoc_script_runs_in_the_shell() -> None:
    (run,) = instructions("RUN <<-EOF\n\tmkdir -p foo/bar\n\techo done\nEOF\n")
    assert run_process(run).argv == ("/bin/sh", "-c", "mkdir -p foo/bar\necho done\n")


def test_heredoc_with_shebang_runs_as_a_file() -> None:
    (run,) = instructions('RUN <<EOT\n#!/usr/bin/env python\nprint("hello world")\nEOT\n')
    spec = run_process(run)
    assert spec.argv == ("/bin/sh", "-c", "/dev/pipes/EOT")
    assert spec.files == (InlineFile("/dev/pipes/EOT", '#!/usr/bin/env python\nprint("hello world")\n'),)


def test_heredocs_with_commands_are_rejoined_for_the_shell() -> None:
    run, run2 = instructions("RUN <<EOT bash\n  set -ex\nEOT\n"
                             "RUN <<FILE1 cat > file1 && <<FILE2 cat > file2\n"
                             "I am\nfirst\nFILE1\nsecond\nFILE2\n")
    assert run_process(run).argv == ("/bin/sh", "-c", "<<EOT bash\n  set -ex\nEOT")
    assert run_process(run2).argv[2] == ("<<FILE1 cat > file1 && <<FILE2 cat > file2\n"
                                         "I am\nfirst\nFILE1\nsecond\nFILE2")


def test_config_commands() -> None:
    cmd, ep, clear, exec_ = instructions('CMD echo hi\nENTRYPOINT ["/app"]\nENTRYPOINT []\nCMD []\n')
    assert config_command(cmd) == ["/bin/sh", "-c", "echo hi"]
    assert config_command(cmd, ["pwsh", "-c"]) == ["pwsh", "-c", "echo hi"]
    assert config_command(ep) == ["/app"]
    assert config_command(clear) is None
    assert config_command(exec_) == []
