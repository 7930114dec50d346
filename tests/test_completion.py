"""`pulumi-claim completion SHELL` prints click's completion script for the program, and the
program answers the script's completion requests: command names and option choices."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.shell_completion import get_completion_class
from click.testing import CliRunner, Result

from toolkit.cli import cli

FIRST_LINES = {
    "bash": "_pulumi_claim_completion() {",
    "zsh": "#compdef pulumi-claim",
    "fish": "function _pulumi_claim_completion;",
}
REGISTRATIONS = {
    "bash": "    complete -o nosort -F _pulumi_claim_completion pulumi-claim",
    "zsh": "    compdef _pulumi_claim_completion pulumi-claim",
    "fish": 'complete --no-files --command pulumi-claim --arguments "(_pulumi_claim_completion)";',
}
"""The line of each script that ties its completion function to the program."""


def completion_request(words: str, cword: int) -> Result:
    """What bash's script asks the program when TAB is pressed after `words`."""
    env = {"_PULUMI_CLAIM_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    return CliRunner().invoke(cli, [], prog_name="pulumi-claim", env=env)


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_script_is_clicks_for_the_program(shell: str) -> None:
    result = CliRunner().invoke(cli, ["completion", shell], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    script_class = get_completion_class(shell)
    assert script_class is not None
    expected = script_class(cli, {}, "pulumi-claim", "_PULUMI_CLAIM_COMPLETE").source()
    assert result.stdout == expected + "\n"
    lines = result.stdout.splitlines()
    assert lines[0] == FIRST_LINES[shell]
    assert REGISTRATIONS[shell] in lines
    assert "_PULUMI_CLAIM_COMPLETE" in result.stdout


def test_an_unknown_shell_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["completion", "powershell"])

    assert result.exit_code == 2
    assert result.stdout == ""
    assert (
        "Error: Invalid value for '{bash|zsh|fish}': 'powershell' is not one of 'bash', 'zsh', "
        "'fish'." in result.stderr
    )


def test_a_command_name_is_completed() -> None:
    assert completion_request("pulumi-claim pre", 1).stdout == "plain,preview\n"
    assert completion_request("pulumi-claim co", 1).stdout == ("plain,commit\nplain,completion\n")


def test_an_option_choice_is_completed() -> None:
    every = completion_request("pulumi-claim preview --strategy ", 3).stdout
    started = completion_request("pulumi-claim commit --environments c", 3).stdout

    assert every == "plain,auto\nplain,transfer\nplain,migrate\nplain,claim-api\n"
    assert started == "plain,copy\n"


def test_bash_completes_through_the_installed_program(tmp_path: Path) -> None:
    """The script as bash sources it, calling the program as installed in this environment."""
    program = Path(sys.executable).parent / "pulumi-claim"
    bash = shutil.which("bash")
    assert bash is not None and program.exists()
    script = tmp_path / "pulumi-claim.bash"
    script.write_text(CliRunner().invoke(cli, ["completion", "bash"]).stdout, encoding="utf-8")
    typed = (
        f"source {script}; COMP_WORDS=(pulumi-claim preview --format j); COMP_CWORD=3; "
        '_pulumi_claim_completion pulumi-claim; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    env = {**os.environ, "PATH": f"{program.parent}{os.pathsep}{os.environ['PATH']}"}

    finished = subprocess.run(
        [bash, "--norc", "-c", typed], env=env, capture_output=True, text=True, check=False
    )

    assert finished.returncode == 0, finished.stderr
    assert finished.stdout == "json\n"
