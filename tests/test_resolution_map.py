"""The resolution map file: its two forms, what is refused on reading, and the written form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.entities import as_rename, describe, entity_key, target_of
from toolkit.errors import InvalidInputError, ResolutionMapError
from toolkit.landing_spec import LandingSpec
from toolkit.models import (
    RenameEntity,
    TransferEntityEnvironment,
    TransferEntityInsightsAccount,
    TransferEntityRegistryPackage,
    TransferEntityStack,
)
from toolkit.resolution_map import (
    MAX_MAP_BYTES,
    MAX_MAP_ENTRIES,
    ResolutionMap,
    format_resolution_map,
    load_resolution_map,
    parse_resolution_map,
)


def stack(name: str) -> TransferEntityStack:
    project, stack_name = name.split("/")
    return TransferEntityStack(project_name=project, stack_name=stack_name)


def account(name: str) -> TransferEntityInsightsAccount:
    return TransferEntityInsightsAccount(name=name)


# --- Parsing the two forms of a map ------------------------------------------------------------


FRIENDLY = """
stacks:
  web/dev: web/dev-agent
  api/dev: platform/api-dev
environments:
  default/secrets: default/secrets-agent
insightsAccounts:
  aws-main: aws-main-agent
"""

WIRE = [
    {
        "kind": "TransferEntityStackRename",
        "projectName": "web",
        "stackName": "dev",
        "renameAs": {"kind": "TransferEntityStack", "projectName": "web", "stackName": "dev-agent"},
    },
    {
        "kind": "TransferEntityStackRename",
        "projectName": "api",
        "stackName": "dev",
        "renameAs": {"projectName": "platform", "stackName": "api-dev"},
    },
    {
        "kind": "TransferEntityEnvironmentRename",
        "projectName": "default",
        "environmentName": "secrets",
        "renameAs": {"projectName": "default", "environmentName": "secrets-agent"},
    },
    {
        "kind": "TransferEntityInsightsAccountRename",
        "name": "aws-main",
        "renameAs": {"name": "aws-main-agent"},
    },
]


def test_friendly_and_wire_forms_parse_to_the_same_renames() -> None:
    friendly = parse_resolution_map(FRIENDLY)
    wire_json = parse_resolution_map(json.dumps(WIRE, indent="\t"))
    assert friendly.problems == wire_json.problems == ()
    assert friendly.renames == wire_json.renames
    assert [(describe(r), describe(target_of(r))) for r in friendly.renames] == [
        ("stack web/dev", "stack web/dev-agent"),
        ("stack api/dev", "stack platform/api-dev"),
        ("ESC environment default/secrets", "ESC environment default/secrets-agent"),
        ("Insights account aws-main", "Insights account aws-main-agent"),
    ]


def test_wire_form_in_yaml_and_friendly_form_in_json_are_read_too() -> None:
    wire_yaml = "\n".join(
        [
            "- kind: TransferEntityStackRename",
            "  projectName: web",
            "  stackName: dev",
            "  resourceCount: 3",
            "  lastUpdate: 2026-11-20T10:00:00Z",
            "  renameAs: {projectName: web, stackName: dev-agent}",
        ]
    )
    friendly_json = '{\n\t"stacks": {\n\t\t"web/dev": "web/dev-agent"\n\t}\n}'
    (from_yaml,) = parse_resolution_map(wire_yaml).renames
    (from_json,) = parse_resolution_map(friendly_json).renames
    assert entity_key(from_yaml) == entity_key(from_json)
    assert target_of(from_yaml) == target_of(from_json)
    assert from_yaml.resource_count == 3  # type: ignore[union-attr]


def test_an_empty_document_is_an_empty_map() -> None:
    assert parse_resolution_map("") == ResolutionMap.empty()
    assert parse_resolution_map("# nothing to rename\n") == ResolutionMap.empty()
    assert parse_resolution_map("stacks:\n") == ResolutionMap.empty()
    assert parse_resolution_map("[]") == ResolutionMap.empty()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("stacks: {web/dev: [", "not valid YAML or JSON"),
        ("just some text", "expected sections"),
        ("42", "expected sections"),
        ("stack: {web/dev: web/dev-agent}", 'unknown section "stack"'),
        ("stacks: [web/dev]", "section stacks must map project/stack"),
        ("- kind: TransferEntityStackRename\n  lastUpdate: 2026-13-45\n", "not valid YAML"),
    ],
)
def test_an_unreadable_document_is_refused_at_once(text: str, expected: str) -> None:
    with pytest.raises(ResolutionMapError) as refused:
        parse_resolution_map(text, origin="map.yaml")
    (problem,) = refused.value.problems
    assert problem.startswith("map.yaml: ")
    assert expected in problem


def test_every_unknown_section_is_listed() -> None:
    with pytest.raises(ResolutionMapError) as refused:
        parse_resolution_map("stackz: {}\nenvs: {}\nstacks: {}\n")
    assert len(refused.value.problems) == 2
    assert '"stackz"' in refused.value.problems[0]
    assert '"envs"' in refused.value.problems[1]


def test_malformed_entries_are_collected_not_raised() -> None:
    parsed = parse_resolution_map(
        "\n".join(
            [
                "stacks:",
                "  web: web/dev-agent",
                "  web/dev: 12",
                "  web/prod: web/prod/x",
                "  web/qa: web/qa-2",
                "  api/dev:",
                "insightsAccounts:",
                "  aws-main: {name: x}",
                "  true: x",
            ]
        )
    )
    assert [describe(r) for r in parsed.renames] == ["stack web/qa"]
    assert len(parsed.problems) == 6
    assert '"web" is not of the form project/stack' in parsed.problems[0]
    assert "both sides must be text" in parsed.problems[1]
    assert '"web/prod/x" is not of the form project/stack' in parsed.problems[2]
    assert '"api/dev"' in parsed.problems[3]
    assert '"aws-main"' in parsed.problems[4]
    assert "quote names YAML would read as" in parsed.problems[5]


def test_malformed_wire_entries_are_collected_not_raised() -> None:
    entries: list[object] = [
        "web/dev",
        {"kind": "TransferEntityStack", "projectName": "web", "stackName": "dev"},
        {"kind": "TransferEntityStackRename", "projectName": "web", "stackName": "dev"},
        {"projectName": "web", "stackName": "dev"},
        {"kind": "TransferEntityFooRename"},
        WIRE[0],
    ]
    parsed = parse_resolution_map(json.dumps(entries))
    assert len(parsed.renames) == 1
    assert len(parsed.problems) == 5
    for number, problem in enumerate(parsed.problems, start=1):
        assert problem.startswith(f"resolution map: entry {number}")
    assert "not a rename; use TransferEntityStackRename" in parsed.problems[1]
    assert "renameAs: Field required" in parsed.problems[2]
    assert "no kind" in parsed.problems[3]


def test_load_names_the_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(InvalidInputError) as refused:
        load_resolution_map(missing)
    assert str(missing) in str(refused.value)
    assert not isinstance(refused.value, ResolutionMapError)


def test_load_reads_a_file_and_names_it_in_problems(tmp_path: Path) -> None:
    path = tmp_path / "map.yaml"
    path.write_text("stacks:\n  web/dev: web/dev-agent\n  web: x\n", encoding="utf-8")
    loaded = load_resolution_map(path)
    assert [describe(r) for r in loaded.renames] == ["stack web/dev"]
    (problem,) = loaded.problems
    assert problem.startswith(f"{path}: stacks: ")


# --- Maps beyond any sane size, and files that are no text --------------------------------------


def test_a_file_over_10_mb_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as file:
        file.truncate(MAX_MAP_BYTES + 1)  # sparse: no 10 MB written, none parsed
    with pytest.raises(ResolutionMapError, match="larger than 10 MB"):
        load_resolution_map(path)
    path.write_bytes(b"stacks:\n  web/dev: web/dev-agent\n".ljust(MAX_MAP_BYTES, b" "))
    assert len(load_resolution_map(path).renames) == 1


@pytest.mark.parametrize("form", ["friendly", "wire"])
def test_more_than_100000_entries_are_refused_before_any_is_read(form: str) -> None:
    count = MAX_MAP_ENTRIES + 1
    if form == "friendly":
        names = {f"web/s{number}": f"web/s{number}-agent" for number in range(count)}
        text = json.dumps({"stacks": names})
    else:
        text = json.dumps([{}] * count)  # entries that would each be a problem
    with pytest.raises(ResolutionMapError, match="100,001 entries, more than the 100,000") as e:
        parse_resolution_map(text)
    assert len(e.value.problems) == 1


def test_a_binary_file_is_refused_as_no_text(tmp_path: Path) -> None:
    path = tmp_path / "map.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(ResolutionMapError, match=r"not UTF-8 text \(byte 0x89 at offset 0\)"):
        load_resolution_map(path)


def test_yaml_aliases_are_refused_so_a_few_bytes_cannot_expand_to_millions() -> None:
    levels = ["- &l0 [x, x, x, x, x, x, x, x, x, x]"] + [
        f"- &l{level} [{', '.join([f'*l{level - 1}'] * 10)}]" for level in range(1, 9)
    ]
    with pytest.raises(ResolutionMapError, match="aliases"):
        parse_resolution_map("\n".join(levels))
    with pytest.raises(ResolutionMapError, match="aliases"):
        parse_resolution_map("base: &b {web/dev: web/x}\nstacks:\n  <<: *b\n")


@pytest.mark.parametrize("text", ["[" * 100_000, '{"stacks": ' * 100_000, "- [" * 5_000])
def test_a_document_nested_too_deeply_is_refused(text: str) -> None:
    with pytest.raises(ResolutionMapError):
        parse_resolution_map(text)


# --- Formatting ------------------------------------------------------------------------------


def test_format_writes_the_friendly_form_with_a_header() -> None:
    text = format_resolution_map(parse_resolution_map(FRIENDLY).renames)
    assert text.startswith("# ")
    assert "  web/dev: web/dev-agent\n" in text
    assert "  api/dev: platform/api-dev\n" in text
    assert "environments:" in text
    assert "insightsAccounts:" in text
    assert parse_resolution_map(text) == parse_resolution_map(FRIENDLY)


def test_format_quotes_names_yaml_would_read_as_something_else() -> None:
    renames = (
        as_rename(account("true"), account("null")),
        as_rename(account("1.0"), account("2026-11-01")),
        as_rename(account(".hidden"), account("-x")),
        as_rename(account("0x1F"), account("1_000")),
    )
    text = format_resolution_map(renames)
    assert '"true": "null"' in text
    assert '"1.0": "2026-11-01"' in text
    assert parse_resolution_map(text).renames == renames


def test_format_round_trips_the_longest_names() -> None:
    longest = (as_rename(stack("p" * 100 + "/" + "s" * 100), stack("q" * 100 + "/" + "t" * 100)),)
    assert parse_resolution_map(format_resolution_map(longest)).renames == longest


_NAMES = st.from_regex(r"[A-Za-z0-9_.-]{1,100}", fullmatch=True)


@st.composite
def _renames(draw: st.DrawFn) -> list[RenameEntity]:
    """Renames of every kind with valid names, grouped by kind as the friendly form lists them."""
    pairs = st.tuples(_NAMES, _NAMES)
    stacks = draw(st.lists(st.tuples(pairs, pairs), max_size=4))
    environments = draw(st.lists(st.tuples(pairs, pairs), max_size=3))
    accounts = draw(st.lists(st.tuples(_NAMES, _NAMES), max_size=3))
    packages = draw(st.lists(st.tuples(st.tuples(_NAMES, _NAMES, _NAMES), _NAMES), max_size=2))
    return [
        *(
            as_rename(
                TransferEntityStack(project_name=p, stack_name=s),
                TransferEntityStack(project_name=tp, stack_name=ts),
            )
            for (p, s), (tp, ts) in stacks
        ),
        *(
            as_rename(
                TransferEntityEnvironment(project_name=p, environment_name=e),
                TransferEntityEnvironment(project_name=tp, environment_name=te),
            )
            for (p, e), (tp, te) in environments
        ),
        *(as_rename(account(a), account(b)) for a, b in accounts),
        *(
            as_rename(
                TransferEntityRegistryPackage(source=s, publisher=p, name=n),
                TransferEntityRegistryPackage(source=s, publisher=p, name=new),
            )
            for (s, p, n), new in packages
        ),
    ]


@settings(max_examples=60, deadline=None)
@given(_renames())
def test_format_then_parse_gives_back_the_same_renames(renames: list[RenameEntity]) -> None:
    parsed = parse_resolution_map(format_resolution_map(renames))
    assert parsed.problems == ()
    assert list(parsed.renames) == renames


# --- The landing: section ----------------------------------------------------------------


def test_a_landing_section_is_read_beside_the_renames() -> None:
    text = (
        "stacks:\n  web/dev: web/dev-agent\n"
        "landing:\n  stack: claim-landing\n  tags: {cost-center: cc-42}\n"
        "  teams: {platform-team: write}\n"
    )
    parsed = parse_resolution_map(text, origin="map.yaml")
    assert len(parsed.renames) == 1
    assert parsed.landing == LandingSpec(
        stack="claim-landing", tags={"cost-center": "cc-42"}, teams={"platform-team": "write"}
    )
    assert parse_resolution_map("stacks: {}\n").landing is None


def test_every_problem_of_a_landing_section_refuses_the_map() -> None:
    text = "landing:\n  teams: {a: owner, b: read}\n  tags: {n: 1}\n  tags2: x\n"
    with pytest.raises(ResolutionMapError) as raised:
        parse_resolution_map(text, origin="map.yaml")
    assert raised.value.problems == [
        "map.yaml: landing: unknown key 'tags2'; expected stack, tags, teams",
        "map.yaml: landing.tags: 'n': 1 is not text (quote it)",
        "map.yaml: landing.teams: 'a': 'owner' is not one of read, write, admin",
    ]
    with pytest.raises(ResolutionMapError, match="landing is given more than once"):
        parse_resolution_map("landing: {}\nlanding: {}\n", origin="map.yaml")
