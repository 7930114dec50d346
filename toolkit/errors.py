"""The toolkit's error hierarchy: each error says what went wrong and what to do next."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping


def did_you_mean(word: object, known: Iterable[str]) -> str:
    """` (did you mean stacks?)` when `known` holds a word close to `word`, else nothing: one
    home for how a misspelled key or section of a user's file is answered."""
    close = difflib.get_close_matches(word, sorted(known), n=1) if isinstance(word, str) else []
    return f" (did you mean {close[0]}?)" if close else ""


NOT_AN_API_HINT = "Is --api-url (or PULUMI_BACKEND_URL) pointing at a Pulumi Cloud API?"
"""The hint of an answer no Pulumi Cloud API would give."""


class ClaimError(Exception):
    """Base of every error the toolkit raises on purpose; the CLI turns it into exit code 1."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n{self.hint}" if self.hint else self.message


class InvalidInputError(ClaimError):
    """Input the user gave (a name, a file, an option) cannot be used as it is."""


class ChoiceError(InvalidInputError):
    """Choices that do not fit together, each named by its field in `template` and `hint`
    (`{migrate_via}`, `{strategy}`), so that each front end says them its own way
    (`spelled`): `--migrate-via` on the command line, `migrateVia` in a job file; the Python
    name (`migrate_via`) unless spelled. `values` fill the template's other places."""

    def __init__(
        self,
        template: str,
        *,
        hint: str | None = None,
        values: Mapping[str, str] | None = None,
        spell: Callable[[str], str] = str,
    ) -> None:
        self.template, self.hint_template, self.values = template, hint, dict(values or {})
        names = _Names(self.values, spell)
        super().__init__(template.format_map(names), hint=hint.format_map(names) if hint else None)

    def spelled(self, spell: Callable[[str], str]) -> ChoiceError:
        """This error with each field named `spell(field)`."""
        return ChoiceError(self.template, hint=self.hint_template, values=self.values, spell=spell)


class _Names(dict[str, str]):
    """A template's values, and its fields as a front end spells them."""

    def __init__(self, values: Mapping[str, str], spell: Callable[[str], str]) -> None:
        super().__init__(values)
        self.spell = spell

    def __missing__(self, field: str) -> str:
        return self.spell(field)


class ResolutionMapError(InvalidInputError):
    """A resolution map was refused; `problems` lists every problem found, not just the first."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        listing = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(
            f"the resolution map was refused ({len(self.problems)} problem(s)); "
            f"nothing was changed:\n{listing}",
            hint="Fix the map (or write a fresh one with `pulumi-claim resolve`) and run again.",
        )


class JobFileError(InvalidInputError):
    """A job file was refused before any of its claims ran; `problems` lists every problem."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.problems = list(problems)
        listing = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(
            f"the job file {path} was refused ({len(self.problems)} problem(s)); "
            f"nothing was run:\n{listing}",
            hint="Fix the file (the format: docs/jobs.md) and run again; "
            "`pulumi-claim job check FILE` checks it without running anything.",
        )


class RunsFolderError(ClaimError):
    """The runs folder could not be written (the disk is full, an I/O error). Before a run's
    first call: nothing changed. During a run: the run stopped there, what it did is recorded
    up to that point, and the same command continues it."""


class PlanMismatchError(ClaimError):
    """The service no longer looks as a run's plan says (someone renamed a stack meanwhile)."""


class RunLockedError(ClaimError):
    """Another run holds the source org, or left it unfinished."""


class AgentTokenExpiredError(ClaimError):
    """The agent's access token no longer authenticates, and the plan needs it."""


class ServiceError(ClaimError):
    """The Pulumi Cloud service answered with an error status."""

    def __init__(self, status: int, message: str, *, method: str, path: str) -> None:
        self.status = status
        self.method = method
        self.path = path
        self.service_message = message
        """What the service said, without the call's method and path."""
        self.diagnostics: list[str] = []
        """For a refused ESC definition, the summary of each diagnostic the service gave."""
        super().__init__(f"{method} {path} failed with {status}: {message}", hint=_hint_for(status))


class AuthenticationError(ServiceError):
    """401: the token is missing, wrong or expired."""


class PermissionDeniedError(ServiceError):
    """403: the identity is known but lacks the role this call needs."""


class NotFoundError(ServiceError):
    """404: the org, stack or other entity does not exist (or is invisible to this identity)."""


class ConflictError(ServiceError):
    """409: the call collides with existing state, such as a name already taken."""


class RedirectedError(ServiceError):
    """3xx: the service sent the call elsewhere. The client never follows a redirect, so that
    its token goes to no address but the one it was given."""


class ClaimRefusedError(ClaimError):
    """The service refused an agent claim: the claim token is unknown, expired or used, or the
    claiming identity may not claim into the destination org."""


class TransportError(ClaimError):
    """The service could not be reached, or kept failing after the retries ran out."""


class UntrustedAnswerError(TransportError):
    """The service's answer went past a bound the client keeps on what a service controls: the
    pages of a listing, the time a call takes, the size of an answer. Nothing of it is used."""


class EndlessListingError(UntrustedAnswerError):
    """A listing went on past its page budget, or handed out a page token it had handed out
    before."""


class DeadlineExceededError(UntrustedAnswerError):
    """A call was not answered in full within the client's deadline (an answer dripped slowly
    keeps every single read within its timeout)."""


class AnswerTooLargeError(UntrustedAnswerError):
    """An answer was larger than the client reads; it stopped reading there."""


class PulumiCliError(ClaimError):
    """The pulumi CLI is missing, or a command of it failed (its `error:` words are kept)."""


class LandingError(ClaimError):
    """The landing program could not be previewed or applied; the moves stay as they are."""


def _hint_for(status: int) -> str | None:
    if _is_redirect(status):
        return (
            "Set --api-url (or PULUMI_BACKEND_URL) to the service's API itself "
            "(for Pulumi Cloud: https://api.pulumi.com); redirects are not followed."
        )
    return {
        401: "Check PULUMI_ACCESS_TOKEN (destination) and PULUMI_CLAIM_SOURCE_TOKEN (source).",
        403: "The identity needs a role in this org (admin of both orgs for a transfer).",
        404: "Check the org, project and stack names, and that this identity can see them.",
        429: "The service is rate limiting; wait a little and run again.",
    }.get(status)


def service_error(status: int, message: str, *, method: str, path: str) -> ServiceError:
    """The most specific `ServiceError` subclass for an HTTP status."""
    cls: type[ServiceError] = {
        401: AuthenticationError,
        403: PermissionDeniedError,
        404: NotFoundError,
        409: ConflictError,
    }.get(status, RedirectedError if _is_redirect(status) else ServiceError)
    return cls(status, message, method=method, path=path)


def _is_redirect(status: int) -> bool:
    return 300 <= status < 400


def outcome_unknown(error: ClaimError) -> bool:
    """A lost answer or a server error: the call may or may not have been applied, so the
    caller looks at the service to learn which."""
    return isinstance(error, TransportError) or (
        isinstance(error, ServiceError) and error.status >= 500
    )
