"""pulumi-claim: move Pulumi stacks from one Pulumi Cloud organization into another.

What a Python caller needs is importable from here. Each name is loaded on first use, so that
`import toolkit` (and with it `pulumi-claim --help`) does not pay for aiohttp and pydantic.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from toolkit.claim import CommitResult, commit_claim, plan_claim, suggest_resolutions
    from toolkit.credentials import Credentials, load_credentials
    from toolkit.errors import (
        AgentTokenExpiredError,
        AnswerTooLargeError,
        AuthenticationError,
        ChoiceError,
        ClaimError,
        ClaimRefusedError,
        ConflictError,
        DeadlineExceededError,
        EndlessListingError,
        InvalidInputError,
        JobFileError,
        LandingError,
        NotFoundError,
        PermissionDeniedError,
        PlanMismatchError,
        PulumiCliError,
        RedirectedError,
        ResolutionMapError,
        RunLockedError,
        RunsFolderError,
        ServiceError,
        TransportError,
        UntrustedAnswerError,
    )
    from toolkit.job_file import Job, load_job
    from toolkit.jobs import JobResult, run_job
    from toolkit.landing_spec import LandingSpec
    from toolkit.naming_policy import NamingPolicy, parse_naming_policy, read_naming_policy
    from toolkit.plan import ClaimPlan, ClaimTarget
    from toolkit.resolution_map import ResolutionMap, load_resolution_map, parse_resolution_map
    from toolkit.runs import ClaimRequest, RunOutcome, commit_request
    from toolkit.sides import Sides
    from toolkit.strategies import StopSignal
    from toolkit.sweep import SweepRequest, run_sweep
    from toolkit.sweep_result import SweepResult, SweepRow

    __version__: str

_HOMES = {
    "toolkit.claim": ("CommitResult", "commit_claim", "plan_claim", "suggest_resolutions"),
    "toolkit.credentials": ("Credentials", "load_credentials"),
    "toolkit.errors": (
        "AgentTokenExpiredError",
        "AnswerTooLargeError",
        "AuthenticationError",
        "ChoiceError",
        "ClaimError",
        "ClaimRefusedError",
        "ConflictError",
        "DeadlineExceededError",
        "EndlessListingError",
        "InvalidInputError",
        "JobFileError",
        "LandingError",
        "NotFoundError",
        "PermissionDeniedError",
        "PlanMismatchError",
        "PulumiCliError",
        "RedirectedError",
        "ResolutionMapError",
        "RunLockedError",
        "RunsFolderError",
        "ServiceError",
        "TransportError",
        "UntrustedAnswerError",
    ),
    "toolkit.job_file": ("Job", "load_job"),
    "toolkit.jobs": ("JobResult", "run_job"),
    "toolkit.landing_spec": ("LandingSpec",),
    "toolkit.plan": ("ClaimPlan", "ClaimTarget"),
    "toolkit.resolution_map": ("ResolutionMap", "load_resolution_map", "parse_resolution_map"),
    "toolkit.runs": ("ClaimRequest", "RunOutcome", "commit_request"),
    "toolkit.sides": ("Sides",),
    "toolkit.strategies": ("StopSignal",),
    "toolkit.naming_policy": ("NamingPolicy", "parse_naming_policy", "read_naming_policy"),
    "toolkit.sweep": ("SweepRequest", "run_sweep"),
    "toolkit.sweep_result": ("SweepResult", "SweepRow"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "AgentTokenExpiredError",
    "AnswerTooLargeError",
    "AuthenticationError",
    "ChoiceError",
    "ClaimError",
    "ClaimPlan",
    "ClaimRefusedError",
    "ClaimRequest",
    "ClaimTarget",
    "CommitResult",
    "ConflictError",
    "Credentials",
    "DeadlineExceededError",
    "EndlessListingError",
    "InvalidInputError",
    "Job",
    "JobFileError",
    "JobResult",
    "LandingError",
    "LandingSpec",
    "NamingPolicy",
    "NotFoundError",
    "PermissionDeniedError",
    "PlanMismatchError",
    "PulumiCliError",
    "RedirectedError",
    "ResolutionMap",
    "ResolutionMapError",
    "RunLockedError",
    "RunOutcome",
    "RunsFolderError",
    "ServiceError",
    "Sides",
    "StopSignal",
    "SweepRequest",
    "SweepResult",
    "SweepRow",
    "TransportError",
    "UntrustedAnswerError",
    "__version__",
    "commit_claim",
    "commit_request",
    "load_credentials",
    "load_job",
    "load_resolution_map",
    "parse_naming_policy",
    "parse_resolution_map",
    "plan_claim",
    "read_naming_policy",
    "run_job",
    "run_sweep",
    "suggest_resolutions",
]


def __getattr__(name: str) -> object:
    """Load an exported name from its home module on first use (PEP 562), then keep it."""
    if name == "__version__":
        from importlib.metadata import version

        value: object = version("pulumi-claim")
    elif name in _HOME_OF:
        value = getattr(import_module(_HOME_OF[name]), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
