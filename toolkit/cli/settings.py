"""The global options, handed to every command."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from rich.console import Console

    from toolkit.commands import ClaimTarget
    from toolkit.credentials import Credentials


@dataclass(frozen=True)
class Settings:
    """Global options, shared by every command."""

    api_url: str | None
    verbose: int
    quiet: bool
    insecure: bool = False
    secrets: set[str] = field(default_factory=set, repr=False)
    """The run's tokens and passphrases once loaded: masked in logs, errors and reports."""

    def target(
        self,
        source_org: str,
        destination_org: str,
        source_backend: str | None,
        destination_backend: str | None,
    ) -> ClaimTarget:
        """--from/--to and the optional backends, as one target."""
        from toolkit.commands import ClaimTarget

        return ClaimTarget(
            source_org,
            destination_org,
            source_backend,
            destination_backend,
            allow_insecure=self.insecure,
        )

    def credentials(self, target: ClaimTarget, claim_file: Path | None = None) -> Credentials:
        """The tokens of this run, for `target`. A claim token found at the pulumi CLI's default
        location (when neither --claim-file nor PULUMI_CLAIM_TOKEN gives one) is said on
        stderr, and so are the URLs that --insecure lets tokens travel to in cleartext."""
        from toolkit.credentials import load_credentials
        from toolkit.service_urls import is_cleartext_remote

        credentials = load_credentials(
            self.api_url,
            claim_file=claim_file,
            discover_claim_file=True,
            allow_insecure=self.insecure,
        )
        self.secrets.update(credentials.secrets)
        urls = (credentials.api_url, target.source_backend, target.destination_backend)
        cleartext = sorted({url for url in urls if url and is_cleartext_remote(url)})
        if cleartext:
            click.echo(
                f"warning: --insecure: tokens travel unencrypted to {', '.join(cleartext)}",
                err=True,
            )
        if credentials.claim_file and credentials.claim_file.discovered and not self.quiet:
            click.echo(f"using {credentials.claim_token_origin}", err=True)
        return credentials

    def progress_console(self) -> Console:
        from rich.console import Console

        return Console(stderr=True, quiet=self.quiet)


pass_settings = click.make_pass_decorator(Settings)
