"""Samples for the contract tests: the toolkit's wire models next to the official SDK's.

Instances of each side are generated from that side's own type declarations (pydantic field
annotations here, the SDK's `__swagger_types__` there), so neither side's idea of the shape
leaks into the samples of the other. The SDK is untyped, hence the `Any`s on its side.
"""

from __future__ import annotations

import base64
import inspect
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from hypothesis import strategies as st
from pulumi_cloud_sdk import models as sdk_models
from pulumi_cloud_sdk._support import PulumiAutoModelEncoder, PulumiModelEncoder
from pydantic import AwareDatetime
from pydantic.fields import FieldInfo

from toolkit import models as toolkit_models
from toolkit.models import WireModel

DISCRIMINATOR = "kind"
"""The wire field naming the kind of a transfer entity; the SDK keeps it on the class. (A
`kind` of a model outside a discriminated family, like a team's, is an ordinary field.)"""

_SDK_DISCRIMINATOR_ATTRIBUTE = "__DISCRIMINATOR_VALUE__"
_PRIMITIVES: dict[str, Any] = {
    "str": str,
    "bytes": str,
    # (bytes travel as base64 text, which the toolkit's models keep as it is)
    "int": int,
    "bool": bool,
    "datetime": datetime,
    "Any": Any,
}


# --- What each side declares ------------------------------------------------------------


def wire_models() -> list[type[WireModel]]:
    """Every wire model `toolkit.models` defines, by name."""
    found = [
        cls
        for _, cls in inspect.getmembers(toolkit_models, inspect.isclass)
        if issubclass(cls, WireModel)
        and cls is not WireModel
        and cls.__module__.startswith(f"{toolkit_models.__name__}.")
    ]
    return sorted(found, key=lambda cls: cls.__name__)


def sdk_model(name: str) -> Any | None:
    """The SDK's model class of that name, or None when the SDK has none."""
    cls = getattr(sdk_models, name, None)
    if inspect.isclass(cls) and issubclass(cls, PulumiAutoModelEncoder):
        return cls
    return None


@dataclass(frozen=True)
class SdkField:
    """One field of an SDK model: Python attribute, JSON key, declared type, whether its
    constructor requires it, and the value it holds when absent."""

    attribute: str
    wire_name: str
    type_name: str
    required: bool
    default: Any


def sdk_fields(cls: Any) -> dict[str, SdkField]:
    """The SDK model's fields by JSON key, its discriminator left out."""
    types, wire_names, _ = PulumiModelEncoder.infer_types_from_annotations(cls)
    parameters = inspect.signature(cls.__init__).parameters
    fields = {}
    for attribute, type_name in types.items():
        if attribute == _SDK_DISCRIMINATOR_ATTRIBUTE:
            continue
        parameter = parameters.get(attribute)
        required = parameter is not None and parameter.default is inspect.Parameter.empty
        default = None if parameter is None or required else parameter.default
        fields[wire_names[attribute]] = SdkField(
            attribute, wire_names[attribute], type_name, required, default
        )
    return fields


def sdk_discriminator(cls: Any) -> str | None:
    """The `kind` an SDK model writes, or None for a model outside a discriminated family."""
    types, _, _ = PulumiModelEncoder.infer_types_from_annotations(cls)
    if _SDK_DISCRIMINATOR_ATTRIBUTE not in types:
        return None
    return str(getattr(cls, _SDK_DISCRIMINATOR_ATTRIBUTE))


def wire_name(model: type[WireModel], field: str) -> str:
    return model.model_fields[field].alias or field


def toolkit_fields(model: type[WireModel]) -> dict[str, FieldInfo]:
    """The toolkit model's fields by JSON key."""
    return {wire_name(model, name): info for name, info in model.model_fields.items()}


def always_written(field: FieldInfo) -> bool:
    """Whether the toolkit writes the field in every document (`to_wire` drops only None)."""
    return field.is_required() or field.get_default(call_default_factory=True) is not None


def enum_values(sdk_type: str) -> set[str] | None:
    """The values of the SDK enum named `sdk_type`, or None when it names no enum."""
    cls = getattr(sdk_models, sdk_type, None)
    if inspect.isclass(cls) and issubclass(cls, Enum):
        return {member.value for member in cls}
    return None


def unwrap(annotation: Any) -> Any:
    """A field annotation without `Annotated[...]` metadata and without `| None`."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, UnionType):
        members = [member for member in get_args(annotation) if member is not NoneType]
        if len(members) == 1:
            return unwrap(members[0])
    return annotation


def union_members(annotation: Any) -> list[type[WireModel]] | None:
    """The models of a union of wire models (the transfer entity kinds), else None."""
    if get_origin(annotation) not in (Union, UnionType):
        return None
    return [unwrap(member) for member in get_args(annotation) if member is not NoneType]


def corresponds(annotation: Any, sdk_type: str) -> bool:
    """Whether a toolkit field annotation reads and writes the same JSON as the SDK type."""
    annotation = unwrap(annotation)
    members = union_members(annotation)
    if members is not None:
        family = polymorphic_family(sdk_model(sdk_type))
        return family is not None and sorted(m.__name__ for m in members) == sorted(family)
    origin = get_origin(annotation)
    if origin is list:
        inner = re.fullmatch(r"list\[(.+)\]", sdk_type)
        return inner is not None and corresponds(get_args(annotation)[0], inner.group(1))
    if origin is dict:
        key, value = get_args(annotation)
        inner = re.fullmatch(r"dict\[str, (.+)\]", sdk_type)
        return key is str and inner is not None and corresponds(value, inner.group(1))
    if origin is Literal:
        return set(get_args(annotation)) == enum_values(sdk_type)
    if annotation is AwareDatetime:
        return sdk_type == "datetime"
    if inspect.isclass(annotation) and issubclass(annotation, WireModel):
        return annotation.__name__ == sdk_type
    return _PRIMITIVES.get(sdk_type) is annotation


def polymorphic_family(cls: Any) -> dict[str, Any] | None:
    """For an abstract SDK base (TransferEntity): its concrete classes by `kind`; else None."""
    if cls is None or not hasattr(cls, "_ensure_discriminator_hierarchy"):
        return None
    family: dict[str, Any] = cls._ensure_discriminator_hierarchy()
    if sdk_discriminator(cls) in family:
        return None
    return family


# --- Values ------------------------------------------------------------------------------

_texts = st.text(max_size=12)
_binaries = st.binary(max_size=12)
_counts = st.integers(min_value=0, max_value=2**53)

moments = st.builds(
    lambda moment, minutes: moment.replace(tzinfo=timezone(timedelta(minutes=minutes))),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1)),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
)
"""Aware instants at any whole-minute UTC offset, as RFC 3339 allows."""


_MOST_ITEMS = 2
"""Lists and maps stay short: nesting (claims of entities of renames) multiplies sizes."""
_json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | _counts | _texts,
    lambda inner: (
        st.lists(inner, max_size=_MOST_ITEMS) | st.dictionaries(_texts, inner, max_size=_MOST_ITEMS)
    ),
    max_leaves=6,
)
"""Any JSON document: what a field the SDK leaves untyped (`Any`) may hold."""


def _fewest_items(minimal: bool) -> int:
    return 0 if minimal else 1


# --- Toolkit instances, from the pydantic declarations -----------------------------------


def toolkit_instances(model: type[WireModel], *, minimal: bool) -> st.SearchStrategy[Any]:
    """Instances of `model`: every field set, or (`minimal`) only what either side requires.

    Where the SDK narrows a plain `str` to an enum, values come from the enum, so the
    samples are documents the SDK accepts.
    """
    sdk_cls = sdk_model(model.__name__)
    declared = sdk_fields(sdk_cls) if sdk_cls is not None else {}
    values: dict[str, st.SearchStrategy[Any]] = {}
    for name, info in model.model_fields.items():
        counterpart = declared.get(wire_name(model, name))
        required = info.is_required() or (counterpart is not None and counterpart.required)
        if minimal and not required:
            continue
        sdk_type = counterpart.type_name if counterpart is not None else None
        values[name] = _toolkit_values(info.annotation, sdk_type, minimal=minimal)
    return st.fixed_dictionaries(values).map(lambda fields: model(**fields))


def _toolkit_values(annotation: Any, sdk_type: str | None, *, minimal: bool) -> Any:
    annotation = unwrap(annotation)
    members = union_members(annotation)
    if members is not None:
        return st.one_of([toolkit_instances(member, minimal=minimal) for member in members])
    origin = get_origin(annotation)
    inner = _inner_sdk_types(sdk_type)
    if origin is list:
        item = _toolkit_values(get_args(annotation)[0], inner, minimal=minimal)
        return st.lists(item, min_size=_fewest_items(minimal), max_size=_MOST_ITEMS)
    if origin is dict:
        value = _toolkit_values(get_args(annotation)[1], inner, minimal=minimal)
        return st.dictionaries(_texts, value, min_size=_fewest_items(minimal), max_size=_MOST_ITEMS)
    if origin is Literal:
        return st.sampled_from(get_args(annotation))
    if inspect.isclass(annotation) and issubclass(annotation, WireModel):
        return toolkit_instances(annotation, minimal=minimal)
    if annotation is AwareDatetime:
        return moments
    if annotation is str and sdk_type == "bytes":
        return _binaries.map(lambda raw: base64.b64encode(raw).decode())
    if annotation is str:
        allowed = enum_values(sdk_type) if sdk_type is not None else None
        return st.sampled_from(sorted(allowed)) if allowed else _texts
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        return _counts
    if annotation is Any:
        return _json_values
    raise TypeError(f"no sample values for {annotation!r}")


def _inner_sdk_types(sdk_type: str | None) -> str | None:
    """The element type of an SDK `list[X]` or value type of a `dict[str, X]`."""
    if sdk_type is None:
        return None
    inner = re.fullmatch(r"(?:list\[|dict\[str, )(.+)\]", sdk_type)
    return inner.group(1) if inner else None


# --- SDK instances, from the SDK's declarations, built with its constructors ---------------


def sdk_instances(cls: Any, *, minimal: bool) -> st.SearchStrategy[Any]:
    """SDK objects made by `cls(...)`: its required arguments, plus (unless `minimal`) the
    optional ones the toolkit's model of the same name knows."""
    family = polymorphic_family(cls)
    if family is not None:
        return st.one_of([sdk_instances(member, minimal=minimal) for member in family.values()])
    counterpart = getattr(toolkit_models, cls.__name__, None)
    known = (
        {wire_name(counterpart, name) for name in counterpart.model_fields}
        if counterpart is not None
        else set()
    )
    arguments = {
        field.attribute: _sdk_values(field.type_name, minimal=minimal)
        for field in sdk_fields(cls).values()
        if field.required or (not minimal and field.wire_name in known)
    }
    return st.fixed_dictionaries(arguments).map(lambda kwargs: cls(**kwargs))


def _sdk_values(type_name: str, *, minimal: bool) -> st.SearchStrategy[Any]:
    if type_name.startswith("list["):
        item = _sdk_values(type_name[len("list[") : -1], minimal=minimal)
        return st.lists(item, min_size=_fewest_items(minimal), max_size=_MOST_ITEMS)
    if type_name.startswith("dict[str, "):
        value = _sdk_values(type_name[len("dict[str, ") : -1], minimal=minimal)
        return st.dictionaries(_texts, value, min_size=_fewest_items(minimal), max_size=_MOST_ITEMS)
    if type_name == "bytes":
        return _binaries
    primitive = _PRIMITIVES.get(type_name)
    if primitive is str:
        return _texts
    if primitive is int:
        return _counts
    if primitive is bool:
        return st.booleans()
    if primitive is datetime:
        return moments
    if primitive is Any:
        return _json_values
    cls = getattr(sdk_models, type_name)
    if issubclass(cls, Enum):
        return st.sampled_from(list(cls))
    return sdk_instances(cls, minimal=minimal)


# --- Comparing a toolkit instance with an SDK object -------------------------------------


def differences(ours: Any, sdk: Any, where: str = "") -> list[str]:
    """Where a toolkit value and an SDK value disagree, field by field (empty: they agree).

    A field both sides hold at their own default is absent on both: the SDK has no way to
    say "absent" for a bool (it holds False) and the toolkit reads a `null` list as empty.
    """
    if isinstance(ours, WireModel):
        model = type(ours)
        if type(sdk).__name__ != model.__name__:
            return [f"{where}: toolkit {model.__name__}, SDK {type(sdk).__name__}"]
        declared = sdk_fields(type(sdk))
        found = []
        for name, info in model.model_fields.items():
            key = wire_name(model, name)
            value = getattr(ours, name)
            if key == DISCRIMINATOR and sdk_discriminator(type(sdk)) is not None:
                if value != sdk_discriminator(type(sdk)):
                    found.append(f"{where}.{key}: {value!r}")
                continue
            sdk_value = getattr(sdk, declared[key].attribute)
            absent = value == info.get_default(call_default_factory=True)
            if absent and sdk_value == declared[key].default:
                continue
            found += differences(value, sdk_value, f"{where}.{key}")
        return found
    if isinstance(ours, list) and isinstance(sdk, list) and len(ours) == len(sdk):
        return [
            difference
            for index, (mine, theirs) in enumerate(zip(ours, sdk, strict=True))
            for difference in differences(mine, theirs, f"{where}[{index}]")
        ]
    if isinstance(ours, dict) and isinstance(sdk, dict) and ours.keys() == sdk.keys():
        return [
            difference
            for key in ours
            for difference in differences(ours[key], sdk[key], f"{where}[{key!r}]")
        ]
    if isinstance(sdk, Enum):
        sdk = sdk.value
    if isinstance(ours, str) and isinstance(sdk, bytes):
        agree = ours == base64.b64encode(sdk).decode()
    elif isinstance(ours, datetime) and isinstance(sdk, datetime):
        agree = ours.utcoffset() is not None and sdk.utcoffset() is not None and ours == sdk
    else:
        agree = type(ours) is type(sdk) and ours == sdk
    return [] if agree else [f"{where}: toolkit {ours!r}, SDK {sdk!r}"]
