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
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from toolkit.choices import (
    EnvironmentChoice,
    MigrateVia,
    Strategy,
    StrategyName,
    chosen_strategy,
)
from toolkit.credentials import Credentials
from toolkit.entities import EntityKey, Inventory
from toolkit.errors import ChoiceError, ClaimError, JobFileError, ResolutionMapError
from toolkit.job_sweeps import JobSweep, SweepEntry, check_sweep
from toolkit.job_tokens import TokenRole, TokenVariables, job_credentials
from toolkit.landing_spec import LandingSpec, parse_landing
from toolkit.plan import ClaimTarget
from toolkit.redaction import redact
from toolkit.resolution_map import ResolutionMap, parse_accept, read_resolution_map
from toolkit.resolver import suggest_resolution_map
from toolkit.sides import Sides
from toolkit.strategy_choice import check_migrate_via
from toolkit.user_documents import DocumentError, parse_document

if TYPE_CHECKING:
    from collections.abc import Sequence

_ACCESS_TOKEN = re.compile(r"pul-[0-9a-fA-F]{16}")
"""How a Pulumi access token begins (`pul-` and 40 hex digits): a value like it is refused."""


# --- The file's shape -----------------------------------------------------------------------


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


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
    reference_orgs: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, alias="referenceOrgs"
    )
    """Other orgs searched for StackReferences to the moved stacks (`--reference-orgs`)."""
    tokens: TokenVariables = TokenVariables()
    landing: Any = None
    """The claim's `landing:` section (`toolkit.landing.parse_landing` checks it)."""
    accept: Any = None
    """The claim's `accept:` section, as a resolution map has it
    (`toolkit.resolution_map.parse_accept` checks it)."""


class _JobDocument(_Entry):
    """The file's top level; each claim is checked on its own, so every claim's problems show."""

    api_url: str | None = Field(default=None, alias="apiUrl", min_length=1)
    claims: list[Any] = Field(default_factory=list)
    sweeps: list[Any] = Field(default_factory=list)
    """`toolkit.job_sweeps`: folders of claim files, each swept into one org."""


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
    for model in (_JobDocument, ClaimEntry, SweepEntry, TokenVariables)
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
    reference_orgs: tuple[str, ...]
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
    sweeps: tuple[JobSweep, ...] = ()
    """Run after the claims, in file order."""

    @property
    def secrets(self) -> list[str]:
        """Every token and passphrase the claims and sweeps hold, to mask in whatever the job
        prints."""
        holders = [claim.credentials for claim in self.claims]
        holders += [sweep.credentials for sweep in self.sweeps]
        return [secret for credentials in holders for secret in credentials.secrets]

    def describe(self) -> str:
        """What `job run` would do, as `job check` prints it; names variables, never tokens."""
        sweeps = f" and {len(self.sweeps)} sweep(s)" if self.sweeps else ""
        lines = [
            f"job {self.path}: {len(self.claims)} claim(s){sweeps} at {self.api_url}, run in "
            "this order"
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
        for number, sweep in enumerate(self.sweeps, len(self.claims) + 1):
            first, *rest = sweep.describe()
            lines += [f"{number}. {first}", *rest]
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
        raise JobFileError(
            origin, ["expected a mapping with the list of claims under claims: (or sweeps:)"]
        )
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
    raw_sweeps = document.get("sweeps")
    sweeps: list[JobSweep] = []
    for index, raw in enumerate(raw_sweeps if isinstance(raw_sweeps, list) else []):
        here = ("sweeps", index)
        try:
            sweep_entry = SweepEntry.model_validate(raw)
        except ValidationError as error:
            problems += _problems(error.errors(), here, refused)
            continue
        sweep, sweep_problems = check_sweep(sweep_entry, path.parent, url, environ)
        problems += [(here, problem) for problem in sweep_problems]
        if sweep is not None:
            sweeps.append(sweep)
    if not raw_claims and not raw_sweeps:
        problems.append(((), "list the claims under claims: or the sweeps under sweeps:"))
    if problems:
        problems.sort(key=lambda problem: _claim_index(problem[0]))
        said = [redact(_at(document, location, message)) for location, message in problems]
        raise JobFileError(origin, said)
    first = claims[0].credentials if claims else sweeps[0].credentials
    return Job(path=path, api_url=first.api_url, claims=tuple(claims), sweeps=tuple(sweeps))


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
    """Which claim `location` is in (-1: none; sweeps after every claim), to list the
    problems in the file's order."""
    if location[:1] in (("claims",), ("sweeps",)) and len(location) > 1:
        index = location[1]
        if isinstance(index, int):
            return index if location[0] == "claims" else 1_000_000 + index
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
    credentials, origins, token_problems = job_credentials(entry.tokens, api_url, environ)
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
        reference_orgs=tuple(dict.fromkeys(entry.reference_orgs)),
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
    section = location[0] if location else None
    entries = document.get(section) if isinstance(document, dict) and section else None
    label = ""
    index = location[1] if len(location) > 1 else None
    if isinstance(entries, list) and isinstance(index, int) and 0 <= index < len(entries):
        label, location = _label(entries[index], str(section), index), location[2:]
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


def _label(raw: object, section: str, index: int) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    if isinstance(name, str) and name and not _ACCESS_TOKEN.match(name):
        return f"{section.removesuffix('s')} {name!r} ({section}[{index}])"
    return f"{section}[{index}]"


def _where(location: Location) -> str:
    return "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" if i else str(part)
        for i, part in enumerate(location)
    )
