"""The job file: several claims for a scheduler (cron, CI, a Kubernetes CronJob), checked.

A job file (YAML or JSON; camelCase keys, as in world files and resolution maps) lists claims.
Each names its orgs, its resolution map (a path relative to the job file) or a rename suffix,
its strategy, and the environment variables its tokens are read from: never a token, which is
refused wherever it appears. `load_job` checks the whole file before anything runs, listing
every problem with the claim it belongs to; it calls no service. `toolkit.jobs.run_job` runs
the checked job.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from toolkit.choices import (
    EnvironmentChoice,
    MigrateVia,
    Strategy,
    StrategyName,
    chosen_strategy,
)
from toolkit.credentials import Credentials, checked_token, load_credentials, variable_token_fix
from toolkit.entities import EntityKey, Inventory
from toolkit.errors import ChoiceError, ClaimError, JobFileError, ResolutionMapError
from toolkit.landing_spec import LandingSpec, parse_landing
from toolkit.plan import ClaimTarget
from toolkit.redaction import redact
from toolkit.resolution_map import ResolutionMap, parse_accept, read_resolution_map
from toolkit.resolver import suggest_resolution_map
from toolkit.sides import Sides
from toolkit.strategies.migrate import check_migrate_via
from toolkit.user_documents import DocumentError, parse_document

if TYPE_CHECKING:
    from collections.abc import Sequence

TokenRole = Literal["destination", "source", "claim"]

DEFAULT_TOKEN_VARIABLES: dict[TokenRole, str] = {
    "destination": "PULUMI_ACCESS_TOKEN",
    "source": "PULUMI_CLAIM_SOURCE_TOKEN",
    "claim": "PULUMI_CLAIM_TOKEN",
}
"""Where a claim's tokens come from when its `tokens` names no variable: as for `commit`."""

_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ACCESS_TOKEN = re.compile(r"pul-[0-9a-fA-F]{16}")
"""How a Pulumi access token begins (`pul-` and 40 hex digits): a value like it is refused."""


# --- The file's shape -----------------------------------------------------------------------


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class TokenVariables(_Entry):
    """The environment variables a claim's tokens are read from (names, never values)."""

    destination: str | None = None
    source: str | None = None
    claim: str | None = None

    @field_validator("destination", "source", "claim")
    @classmethod
    def _names_a_variable(cls, value: str | None) -> str | None:
        if value is not None and not _VARIABLE_NAME.fullmatch(value):
            raise PydanticCustomError(
                "not_a_variable",
                "must name an environment variable (letters, digits and _), never hold a token",
            )
        return value


class ClaimEntry(_Entry):
    """One claim of a job file, as written."""

    name: str = Field(min_length=1)
    source_org: str = Field(alias="from", min_length=1)
    destination_org: str = Field(alias="to", min_length=1)
    source_backend: str | None = Field(default=None, alias="sourceBackend")
    destination_backend: str | None = Field(default=None, alias="destinationBackend")
    resolutions: str | None = Field(default=None, min_length=1)
    """A resolution map file, relative to the job file."""
    suffix: str | None = None
    """Instead of a map: rename each of the claim's conflicts to its name + this suffix."""
    strategy: StrategyName = "auto"
    concurrency: int | None = Field(default=None, ge=1)
    delete_source: bool = Field(default=False, alias="deleteSource")
    migrate_via: MigrateVia | None = Field(default=None, alias="migrateVia")
    """How migrate reaches both sides (`--migrate-via`)."""
    environments: EnvironmentChoice = "report"
    """What becomes of the source's ESC environments (`--environments`)."""
    tokens: TokenVariables = TokenVariables()
    landing: Any = None
    """The claim's `landing:` section (`toolkit.landing.parse_landing` checks it)."""
    accept: Any = None
    """The claim's `accept:` section, as a resolution map has it
    (`toolkit.resolution_map.parse_accept` checks it)."""


class _JobDocument(_Entry):
    """The file's top level; each claim is checked on its own, so every claim's problems show."""

    api_url: str | None = Field(default=None, alias="apiUrl", min_length=1)
    claims: list[Any] = Field(min_length=1)


def in_job_words(error: ClaimError) -> ClaimError:
    """`error`, naming the choices it is about as a job file does (`migrateVia`)."""
    return error.spelled(_key_of) if isinstance(error, ChoiceError) else error


def _key_of(field: str) -> str:
    """How a claim of a job file names the choice a library error calls `field`
    (`ChoiceError`): `migrate_via` is `migrateVia`."""
    known = ClaimEntry.model_fields.get(field)
    return (known.alias if known else None) or field


_KEYS = {
    field.alias or name
    for model in (_JobDocument, ClaimEntry, TokenVariables)
    for name, field in model.model_fields.items()
}
"""Every key a job file may hold, to suggest the one meant by an unknown key."""


# --- The checked job ------------------------------------------------------------------------


@dataclass(frozen=True)
class MapFile:
    """A claim's resolution map, read when the job was loaded."""

    path: Path
    resolution_map: ResolutionMap
    text: str


@dataclass(frozen=True)
class JobClaim:
    """One claim of a checked job: everything it needs to run, its tokens included."""

    name: str
    target: ClaimTarget
    strategy: Strategy | None
    """None: `auto`."""
    concurrency: int | None
    delete_source: bool
    migrate_via: MigrateVia | None
    environments: EnvironmentChoice
    map_file: MapFile | None
    suffix: str | None
    landing: LandingSpec | None
    """The claim's landing: section, else its map's; None: no landing."""
    accepted: frozenset[EntityKey]
    """The claim's accept: section, else its map's: the known failures that do not fail it."""
    credentials: Credentials
    token_origins: Mapping[TokenRole, str]
    """Where each token comes from, in words (`$ACME_TOKEN`); never a value."""


@dataclass(frozen=True)
class Job:
    """A checked job file: its claims in file order, each ready to run."""

    path: Path
    api_url: str
    claims: tuple[JobClaim, ...]

    @property
    def secrets(self) -> list[str]:
        """Every token and passphrase the claims hold, to mask in whatever the job prints."""
        return [secret for claim in self.claims for secret in claim.credentials.secrets]

    def describe(self) -> str:
        """What `job run` would do, as `job check` prints it; names variables, never tokens."""
        lines = [
            f"job {self.path}: {len(self.claims)} claim(s) at {self.api_url}, run in this order"
        ]
        for number, claim in enumerate(self.claims, 1):
            target = claim.target
            source = f"{target.source_org}" + (
                f" at {target.source_backend}" if target.source_backend else ""
            )
            destination = f"{target.destination_org}" + (
                f" at {target.destination_backend}" if target.destination_backend else ""
            )
            lines.append(f"{number}. {claim.name}: {source} -> {destination}")
            lines.append(f"   strategy: {claim.strategy or 'auto'}")
            if claim.map_file is not None:
                renames = len(claim.map_file.resolution_map.renames)
                lines.append(f"   resolutions: {claim.map_file.path} ({renames} rename(s))")
            elif claim.suffix is not None:
                lines.append(
                    f"   resolutions: each conflict renamed to its name + {claim.suffix!r}"
                )
            else:
                lines.append("   resolutions: none (any conflict blocks the claim)")
            if claim.concurrency is not None:
                lines.append(f"   concurrency: {claim.concurrency}")
            if claim.landing is not None:
                spec = claim.landing
                teams = ", ".join(f"{team} {level}" for team, level in spec.teams.items())
                lines.append(
                    f"   landing: stack {spec.stack_name(target.source_org)}, "
                    f"{len(spec.tags)} tag(s), teams: {teams or 'none'}"
                )
            if claim.environments == "copy":
                lines.append("   environments: each is copied into the destination and verified")
            if claim.delete_source:
                lines.append(
                    "   deleteSource: each source stack is removed once its copy is verified"
                )
            origins = claim.token_origins
            lines.append(
                f"   tokens: destination {origins['destination']}, source {origins['source']}, "
                f"claim {origins['claim']}"
            )
        return "\n".join(lines) + "\n"


def load_job(
    path: Path, *, api_url: str | None = None, environ: Mapping[str, str] | None = None
) -> Job:
    """The job file at `path`, checked whole: its shape, its maps, and every token variable it
    names set in `environ` (default: the process environment). Raises `JobFileError` listing
    every problem found. The API URL is `api_url` when given, else the file's `apiUrl`, else
    `PULUMI_BACKEND_URL`, else https://api.pulumi.com."""
    environ = os.environ if environ is None else environ
    origin = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise JobFileError(origin, [f"cannot read it: {reason}"]) from None
    document = _parse(text, origin)
    if not isinstance(document, dict):
        raise JobFileError(origin, ["expected a mapping with the list of claims under claims:"])
    problems = _secret_problems(document, ())
    refused = {location for location, _ in problems}
    try:
        _JobDocument.model_validate(document)
    except ValidationError as error:
        problems += _problems(error.errors(), (), refused)
    file_url, raw_claims = document.get("apiUrl"), document.get("claims")
    url = api_url or (file_url if isinstance(file_url, str) else None)
    url = url or environ.get("PULUMI_BACKEND_URL")
    claims: list[JobClaim] = []
    names: dict[str, int] = {}
    for index, raw in enumerate(raw_claims if isinstance(raw_claims, list) else []):
        here: Location = ("claims", index)
        entry, errors = _claim_entry(raw)
        problems += _problems(errors, here, refused)
        if entry is None:
            continue
        if entry.name in names:
            problems.append((here, f"the name is given to claims[{names[entry.name]}] too"))
        names.setdefault(entry.name, index)
        wrong_tokens = any(error["loc"][:1] == ("tokens",) for error in errors)
        claim, claim_problems = _check_claim(
            entry, path.parent, url, environ, check_tokens=not wrong_tokens
        )
        problems += [(here, problem) for problem in claim_problems]
        if claim is not None:
            claims.append(claim)
    if problems:
        problems.sort(key=lambda problem: _claim_index(problem[0]))
        said = [redact(_at(document, location, message)) for location, message in problems]
        raise JobFileError(origin, said)
    return Job(path=path, api_url=claims[0].credentials.api_url, claims=tuple(claims))


def _claim_entry(raw: object) -> tuple[ClaimEntry | None, list[ErrorDetails]]:
    """The claim as written, and what is wrong with its keys. When some keys are wrong, the
    entry is read without them (None if that fails too), so that the rest of the claim is
    checked as well and every problem shows at once."""
    try:
        return ClaimEntry.model_validate(raw), []
    except ValidationError as error:
        errors = error.errors()
    if not isinstance(raw, dict):
        return None, errors
    wrong = {error["loc"][0] for error in errors if error["loc"]}
    try:
        rest = ClaimEntry.model_validate({k: v for k, v in raw.items() if k not in wrong})
    except ValidationError:
        return None, errors
    return rest, errors


def _claim_index(location: Location) -> int:
    """Which claim `location` is in (-1: none), to list the problems in the file's order."""
    if location[:1] == ("claims",) and len(location) > 1 and isinstance(location[1], int):
        return location[1]
    return -1


def _check_claim(
    entry: ClaimEntry,
    folder: Path,
    api_url: str | None,
    environ: Mapping[str, str],
    *,
    check_tokens: bool,
) -> tuple[JobClaim | None, list[str]]:
    """The claim ready to run, or None; and what is wrong with it. `check_tokens` false: the
    claim's tokens are wrong as written already, so their variables are not looked at."""
    problems: list[str] = []
    if entry.resolutions is not None and entry.suffix is not None:
        problems.append("give resolutions or suffix, not both")
    if entry.delete_source and (
        entry.strategy == "claim-api"
        or (entry.strategy == "transfer" and entry.environments != "copy")
    ):
        problems.append(
            f"deleteSource applies to strategy migrate only ({entry.strategy} moves the stack), "
            "and to environments copied with environments: copy"
        )
    if entry.suffix is not None and (suffix_problem := _suffix_problem(entry.suffix)):
        problems.append(suffix_problem)
    target: ClaimTarget | None = None
    try:
        target = ClaimTarget(
            entry.source_org,
            entry.destination_org,
            entry.source_backend,
            entry.destination_backend,
        )
    except ClaimError as error:
        problems.append(error.message)
    map_file: MapFile | None = None
    if entry.resolutions is not None:
        map_file, map_problems = _read_map(folder / Path(entry.resolutions).expanduser())
        problems += map_problems
    landing, landing_problems = parse_landing(entry.landing)
    problems += landing_problems
    map_landing = map_file.resolution_map.landing if map_file is not None else None
    if landing is not None and map_landing is not None:
        problems.append("give a landing: section in the claim or in its resolution map, not both")
    accepted, accept_problems = parse_accept(entry.accept)
    problems += accept_problems
    map_accepted = map_file.resolution_map.accepted if map_file is not None else frozenset()
    if entry.accept is not None and map_accepted:
        problems.append("give an accept: section in the claim or in its resolution map, not both")
    if not check_tokens:
        return None, problems
    credentials, origins, token_problems = _credentials(entry.tokens, api_url, environ)
    problems += token_problems
    if target is not None and credentials is not None:
        sides = Sides.of(target, credentials)
        try:
            check_migrate_via(
                chosen_strategy(entry.strategy), sides.source, sides.destination, entry.migrate_via
            )
        except ChoiceError as error:
            problems.append(error.spelled(_key_of).message)
    if problems or target is None or credentials is None:
        return None, problems
    claim = JobClaim(
        name=entry.name,
        target=target,
        strategy=chosen_strategy(entry.strategy),
        concurrency=entry.concurrency,
        delete_source=entry.delete_source,
        migrate_via=entry.migrate_via,
        environments=entry.environments,
        map_file=map_file,
        suffix=entry.suffix,
        landing=landing or map_landing,
        accepted=accepted or map_accepted,
        credentials=credentials,
        token_origins=origins,
    )
    return claim, []


def _read_map(path: Path) -> tuple[MapFile | None, list[str]]:
    try:
        resolution_map, text = read_resolution_map(path)
    except ResolutionMapError as error:
        return None, [f"resolutions: {problem}" for problem in error.problems]
    except ClaimError as error:
        return None, [f"resolutions: {error.message}"]
    problems = [f"resolutions: {problem}" for problem in resolution_map.problems]
    return MapFile(path, resolution_map, text), problems


def _suffix_problem(suffix: str) -> str | None:
    """Why the resolver would refuse `suffix`, asked of the resolver itself."""
    nothing = Inventory.from_entities("", [])
    try:
        suggest_resolution_map([], source=nothing, destination=nothing, suffix=suffix)
    except ClaimError as error:
        return f"suffix: {error.message}"
    return None


def _credentials(
    tokens: TokenVariables, api_url: str | None, environ: Mapping[str, str]
) -> tuple[Credentials | None, dict[TokenRole, str], list[str]]:
    """The claim's credentials, read as `commit` reads them except that each variable `tokens`
    names stands in for the usual one; where each token comes from; and what is missing or
    cannot be a token (`checked_token`, naming the variable it was read from)."""
    env = dict(environ)
    origins: dict[TokenRole, str] = {}
    problems: list[str] = []
    for role, usual in DEFAULT_TOKEN_VARIABLES.items():
        named = getattr(tokens, role)
        variable = named or usual
        if named is not None and not environ.get(named):
            problems.append(f"tokens.{role}: the environment variable {named} is not set")
            continue
        if not environ.get(variable):
            continue
        try:
            env[usual] = checked_token(
                environ[variable], variable, fix=variable_token_fix(variable)
            )
        except ClaimError as error:
            problems.append(f"tokens.{role}: {error.message}")
            continue
        origins[role] = f"${variable}"
    if problems:
        return None, origins, problems
    try:
        credentials = load_credentials(api_url, env, discover_claim_file=False)
    except ClaimError as error:
        # The destination token is missing (tokens names no variable), or the pulumi CLI's
        # login holds one that cannot be a token.
        return (
            None,
            origins,
            [
                f"{error.message}. {error.hint or ''} Or name the variable that holds the token "
                "as tokens.destination."
            ],
        )
    origins.setdefault("destination", f"the pulumi CLI's login for {credentials.api_url}")
    origins.setdefault("source", "the destination's token")
    origins.setdefault("claim", "none")
    return credentials, origins, []


# --- Reading the file and saying what is wrong ------------------------------------------------


def _parse(text: str, origin: str) -> object:
    try:
        return parse_document(text)
    except DocumentError as error:
        raise JobFileError(origin, [str(error)]) from None


Location = tuple[int | str, ...]


def _secret_problems(document: object, location: Location) -> list[tuple[Location, str]]:
    """Every place the document holds (or would hold) a token, and why; the value is never
    repeated."""
    if isinstance(document, dict):
        found: list[tuple[Location, str]] = []
        for key, value in document.items():
            here = (*location, key)
            if isinstance(key, str) and _is_token_key(key):
                found.append(
                    (
                        here,
                        f"a key named {key!r} would hold a token; the job file names the "
                        "environment variables that hold them (tokens: {destination: VARIABLE, "
                        "source: VARIABLE, claim: VARIABLE})",
                    )
                )
            else:
                found += _secret_problems(value, here)
        return found
    if isinstance(document, list):
        return [
            problem
            for index, item in enumerate(document)
            for problem in _secret_problems(item, (*location, index))
        ]
    if isinstance(document, str) and _ACCESS_TOKEN.match(document):
        return [
            (
                location,
                "the value looks like a Pulumi access token (pul-...); the job file names "
                "environment variables, never tokens: put the token in one and name it under "
                "tokens",
            )
        ]
    return []


def _is_token_key(key: str) -> bool:
    """`token`, `accessToken`, `claim-token`, ...: a key that would hold a token's value."""
    return key.replace("-", "").replace("_", "").lower().endswith("token")


def _problems(
    errors: Sequence[ErrorDetails], base: Location, refused: set[Location]
) -> list[tuple[Location, str]]:
    """Pydantic's errors (at `base` in the document) in the file's words, leaving out places
    refused as secrets already."""
    said = []
    for error in errors:
        location = (*base, *error["loc"])
        if not any(location[: len(place)] == place for place in refused):
            said.append((location, _message(error)))
    return said


def _at(document: object, location: Location, message: str) -> str:
    """`message` about the place at `location`, said with the claim's name when it is in one:
    `claim 'a' (claims[0]): tokens.source: ...`."""
    claims = document.get("claims") if isinstance(document, dict) else None
    label = ""
    index = _claim_index(location)
    if isinstance(claims, list) and 0 <= index < len(claims):
        label, location = _label(claims[index], index), location[2:]
    return ": ".join(part for part in (label, _where(location), message) if part)


def _message(error: ErrorDetails) -> str:
    if error["type"] == "missing":
        return "required"
    if error["type"] == "model_type":
        return "expected a mapping of keys and values"
    if error["type"] == "extra_forbidden":
        key = str(error["loc"][-1])
        return f"unknown key{_did_you_mean(key)}"
    return error["msg"]


def _did_you_mean(key: str) -> str:
    """` (did you mean deleteSource?)` for `delete-source`, `delete_source`, `deletSource`."""
    plain = {known.lower(): known for known in _KEYS}
    meant = plain.get(key.replace("-", "").replace("_", "").lower())
    if meant is None:
        close = difflib.get_close_matches(key, sorted(_KEYS), n=1)
        meant = close[0] if close else None
    return f" (did you mean {meant}? keys are camelCase)" if meant else ""


def _label(raw: object, index: int) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    if isinstance(name, str) and name and not _ACCESS_TOKEN.match(name):
        return f"claim {name!r} (claims[{index}])"
    return f"claims[{index}]"


def _where(location: Location) -> str:
    return "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" if i else str(part)
        for i, part in enumerate(location)
    )
