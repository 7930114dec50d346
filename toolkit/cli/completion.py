"""`pulumi-claim completion SHELL`: the shell's completion script, click's own, for the shell's
start-up file. The completions themselves are answered by click when the script calls the
program back with `_PULUMI_CLAIM_COMPLETE` set (`click.Command.main`)."""

from __future__ import annotations

import click

PROGRAM = "pulumi-claim"
"""The program's name, as the scripts call it and as `main` names it to click."""
COMPLETE_VARIABLE = "_PULUMI_CLAIM_COMPLETE"
"""What click reads to answer a completion request for `PROGRAM` (its own naming rule)."""
SHELLS = ("bash", "zsh", "fish")


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the completion script for SHELL (bash, zsh or fish).

    \b
    bash: eval "$(pulumi-claim completion bash)"   in ~/.bashrc
    zsh:  eval "$(pulumi-claim completion zsh)"    in ~/.zshrc
    fish: pulumi-claim completion fish > ~/.config/fish/completions/pulumi-claim.fish
    """
    from click.shell_completion import get_completion_class

    script_class = get_completion_class(shell)
    if script_class is None:  # click knows every shell of SHELLS
        raise click.BadParameter(f"no completion for {shell}", param_hint="SHELL")
    program = ctx.find_root().command
    click.echo(script_class(program, {}, PROGRAM, COMPLETE_VARIABLE).source())
