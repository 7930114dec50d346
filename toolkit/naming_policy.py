"""A sweep's naming policy: how each agent's entity is renamed where its name is taken.

A YAML file with a template per kind, or the suffix rule of `resolve --suffix`:

    stacks: "{stack}-{agent}"
    environments: "{environment}-{agent_id}"
    # or, for every kind:  suffix: "-agent"

Placeholders: `{agent}` the agent's login, `{agent_id}` its short id (the login without its
`agent-` prefix), `{project}`, `{stack}` (stacks), `{environment}` (environments), `{name}`
(the entity's own name, either kind). A template makes the entity's new name; the project
stays. Reading the policy checks its shape and its placeholders; `new_name` is pure.

It may also hold a `landing:` section, as a resolution map does (`toolkit.landing_spec`),
whose tag values may name `{agent}`, `{agent_id}` and `{claimer}` (the claiming identity's
login): `landing: {tags: {claimed-by: "{claimer}", claimed-from: "{agent}"}}`.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import yaml

from toolkit.errors import InvalidInputError, did_you_mean
from toolkit.landing_spec import LandingSpec, parse_landing

PolicyKind = Literal["stacks", "environments"]

POLICY_KINDS: tuple[PolicyKind, ...] = ("stacks", "environments")

DEFAULT_TEMPLATES: dict[PolicyKind, str] = {
    "stacks": "{stack}-{agent}",
    "environments": "{environment}-{agent}",
}
"""Without a policy file: each taken name gets the agent's login, unique per account."""

AGENT_PREFIX = "agent-"
"""How the service begins an agent's login; `{agent_id}` is what follows it."""

_LANDING_PLACEHOLDERS = frozenset({"agent", "agent_id", "claimer"})
"""What a landing tag's value may name."""

_PLACEHOLDERS: dict[str, frozenset[str]] = {
    "stacks": frozenset({"agent", "agent_id", "project", "stack", "name"}),
    "environments": frozenset({"agent", "agent_id", "project", "environment", "name"}),
}

_FIX = (
    'Write the policy as `stacks: "{stack}-{agent}"` and `environments: '
    '"{environment}-{agent}"` (placeholders: agent, agent_id, project, and stack or '
    'environment, or name), or as `suffix: "-agent"`; see the Sweeps page of the docs.'
)


@dataclass(frozen=True)
class NamingPolicy:
    """A template per kind (`DEFAULT_TEMPLATES` where the file names none)."""

    templates: dict[PolicyKind, str]
    identity: str
    """What the policy was made from (a digest of its file's text, or `default`): part of
    each claim's run key, so that a sweep run again continues the same runs."""
    landing: LandingSpec | None = None
    """What to land after each claim, its tag values still templates (`landing_for`)."""

    @classmethod
    def default(cls) -> NamingPolicy:
        return cls(dict(DEFAULT_TEMPLATES), "default")

    def new_name(self, kind: PolicyKind, *, agent: str, project: str, name: str) -> str:
        """The name the policy gives an entity of `kind` named `project/name` of `agent`."""
        values = {
            "agent": agent,
            "agent_id": agent.removeprefix(AGENT_PREFIX),
            "project": project,
            "name": name,
            "stack" if kind == "stacks" else "environment": name,
        }
        return self.templates[kind].format_map(values)

    def landing_for(self, *, agent: str, claimer: str) -> LandingSpec | None:
        """The landing of `agent`'s claim by `claimer`: the policy's, its tags filled in."""
        if self.landing is None:
            return None
        values = {"agent": agent, "agent_id": agent.removeprefix(AGENT_PREFIX), "claimer": claimer}
        tags = {name: value.format_map(values) for name, value in self.landing.tags.items()}
        return replace(self.landing, tags=tags)

    def describe(self) -> str:
        """The policy in one line, for reports."""
        return ", ".join(f"{kind}: {template}" for kind, template in self.templates.items())


def read_naming_policy(path: Path) -> NamingPolicy:
    """The policy in the YAML file at `path`; refused with every problem of it listed."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInputError(
            f"cannot read the naming policy {path}: {error}", hint=_FIX
        ) from None
    return parse_naming_policy(text, origin=str(path))


def parse_naming_policy(text: str, *, origin: str = "naming policy") -> NamingPolicy:
    """The policy in `text` (YAML); refused with every problem listed."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise InvalidInputError(f"{origin} is not YAML: {error}", hint=_FIX) from None
    if not isinstance(document, dict) or not document:
        raise InvalidInputError(f"{origin} holds no policy: a mapping is expected", hint=_FIX)
    problems: list[str] = []
    templates = dict(DEFAULT_TEMPLATES)
    suffix = document.get("suffix")
    landing, landing_problems = parse_landing(document.get("landing"))
    problems += landing_problems
    if landing is not None and landing.stack is not None:
        problems.append(
            "landing.stack: a sweep lands each account in a landing stack of its own, named "
            "after the agent's org; remove it"
        )
    for tag, value in landing.tags.items() if landing else ():
        problems += [
            f"landing.tags.{tag}: {problem}"
            for problem in _template_problems(value, _LANDING_PLACEHOLDERS)
        ]
    for key, value in document.items():
        if key in ("suffix", "landing"):
            continue
        if key not in POLICY_KINDS:
            known = (*POLICY_KINDS, "suffix", "landing")
            problems.append(f"unknown key {key!r}{did_you_mean(key, known)}")
        elif suffix is not None:
            problems.append(f"{key!r} and 'suffix' together: use one or the other")
        elif not isinstance(value, str) or not value:
            problems.append(f"{key}: a template (text) is expected")
        else:
            problems += [
                f"{key}: {problem}" for problem in _template_problems(value, _PLACEHOLDERS[key])
            ]
            templates[key] = value
    if suffix is not None:
        if not isinstance(suffix, str) or not suffix:
            problems.append("suffix: a text such as -agent is expected")
        else:
            fields = {"stacks": "{stack}", "environments": "{environment}"}
            escaped = suffix.replace("{", "{{").replace("}", "}}")
            templates = {kind: fields[kind] + escaped for kind in POLICY_KINDS}
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise InvalidInputError(f"{origin} is not a naming policy:\n{listed}", hint=_FIX)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return NamingPolicy(templates, f"sha256:{digest}", landing)


def _template_problems(template: str, placeholders: frozenset[str]) -> list[str]:
    """What is wrong with `template`: placeholders not among `placeholders`, conversions,
    formats."""
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as error:
        return [f"{template!r} is not a template: {error} (write {{{{ and }}}} for braces)"]
    problems = []
    for _literal, field, format_spec, conversion in fields:
        if field is None:
            continue
        if field not in placeholders:
            known = sorted(placeholders)
            problems.append(
                f"unknown placeholder {{{field}}}{did_you_mean(field, known)}; "
                f"known: {', '.join(known)}"
            )
        elif format_spec or conversion:
            problems.append(f"{{{field}}} takes no conversion or format")
    return problems
