"""A sweep's naming policy: how each agent's entity is renamed where its name is taken.

A YAML file with a template per kind, or the suffix rule of `resolve --suffix`:

    stacks: "{stack}-{agent}"
    environments: "{environment}-{agent_id}"
    # or, for every kind:  suffix: "-agent"

Placeholders: `{agent}` the agent's login, `{agent_id}` its short id (the login without its
`agent-` prefix), `{project}`, `{stack}` (stacks), `{environment}` (environments), `{name}`
(the entity's own name, either kind). A template makes the entity's new name; the project
stays. Reading the policy checks its shape and its placeholders; `new_name` is pure.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from toolkit.errors import InvalidInputError, did_you_mean

PolicyKind = Literal["stacks", "environments"]

POLICY_KINDS: tuple[PolicyKind, ...] = ("stacks", "environments")

DEFAULT_TEMPLATES: dict[PolicyKind, str] = {
    "stacks": "{stack}-{agent}",
    "environments": "{environment}-{agent}",
}
"""Without a policy file: each taken name gets the agent's login, unique per account."""

AGENT_PREFIX = "agent-"
"""How the service begins an agent's login; `{agent_id}` is what follows it."""

_PLACEHOLDERS: dict[PolicyKind, frozenset[str]] = {
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
    for key, value in document.items():
        if key == "suffix":
            continue
        if key not in POLICY_KINDS:
            known = (*POLICY_KINDS, "suffix")
            problems.append(f"unknown key {key!r}{did_you_mean(key, known)}")
        elif suffix is not None:
            problems.append(f"{key!r} and 'suffix' together: use one or the other")
        elif not isinstance(value, str) or not value:
            problems.append(f"{key}: a template (text) is expected")
        else:
            problems += [f"{key}: {problem}" for problem in _template_problems(key, value)]
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
    return NamingPolicy(templates, f"sha256:{digest}")


def _template_problems(kind: PolicyKind, template: str) -> list[str]:
    """What is wrong with `template` for `kind`: unknown placeholders, conversions, formats."""
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as error:
        return [f"{template!r} is not a template: {error} (write {{{{ and }}}} for braces)"]
    problems = []
    for _literal, field, format_spec, conversion in fields:
        if field is None:
            continue
        if field not in _PLACEHOLDERS[kind]:
            known = sorted(_PLACEHOLDERS[kind])
            problems.append(
                f"unknown placeholder {{{field}}}{did_you_mean(field, known)}; "
                f"known: {', '.join(known)}"
            )
        elif format_spec or conversion:
            problems.append(f"{{{field}}} takes no conversion or format")
    return problems
