"""A contract model's own validation, giving the Avro datum (plain dicts) instead of model instances.

The publisher SDK validates each lead it is given as a dict and then only encodes it: the model
instances (one per nested record) and pydantic's whitespace stripping, which makes a new string of
every string, were most of its cost (#16). `DatumValidator` derives a second pydantic-core
validator from the model's own core schema, with the same fields, constraints, enums, defaults and
Python validators (the very same functions), changed in two ways only:

- each model becomes a typed dict with the model's extra-field rule, so the result is a dict ready
  for the Avro writer (model-valued default factories give the model's dict form; a model-level
  "after" validator sees the dict through an attribute view);
- strings are not stripped: a string with leading or trailing whitespace (the Unicode White_Space
  that pydantic-core's strip removes, `\\s` of its Rust regex) is refused instead.

So it accepts a subset of what the model accepts and gives the same values. Anything it refuses
(whitespace to strip, a nested model instance where a dict is usual, any invalid input) returns
None, and the caller validates with the model: errors are always the model's own, word for word.
A schema construct this derivation does not know makes it give up at build time (`usable` is
False) rather than guess.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError, SchemaValidator

#: A string pydantic-core's strip_whitespace would leave as it is (Rust `trim`, `\s` = White_Space).
UNSTRIPPED = r"^(?:\S(?s:.*\S)?)?$"

_OPAQUE = frozenset({"cls", "members", "metadata", "function", "default", "default_factory", "expected",
                     "serialization"})
_KNOWN = frozenset({
    "any", "none", "bool", "int", "float", "str", "bytes", "date", "datetime", "enum", "literal", "list",
    "nullable", "default", "function-after", "function-before", "function-plain", "model", "model-fields",
    "model-field", "definitions", "definition-ref",
})


class Unsupported(Exception):
    pass


class _View:
    """A dict's keys as attributes (the dict is its `__dict__`): what a model-level "after" validator reads."""


def _after_on_dict(function: dict[str, Any]) -> dict[str, Any]:
    fn: Callable[..., Any] = function["function"]
    with_info = function.get("type") == "with-info"

    def on_dict(data: dict[str, Any], *info: Any) -> dict[str, Any]:
        view = _View()
        view.__dict__ = data  # no copy: attribute reads are plain instance-dict lookups
        try:
            result = fn(view, *info) if with_info else fn(view)
        except AttributeError:  # it reads more of `self` than its fields: leave it to the model
            raise PydanticCustomError("DATUM_PATH", "left to the model") from None
        if result is not view:  # it wanted to return another value: leave that case to the model
            raise PydanticCustomError("DATUM_PATH", "left to the model")
        return data

    return {**function, "function": on_dict}


def _dict_factory(model: type[BaseModel]) -> Callable[[], dict[str, Any]]:
    def factory() -> dict[str, Any]:
        return model().model_dump(mode="python")  # a fresh one each time, as the model's factory makes

    return factory


def _derive(node: Any) -> Any:
    if isinstance(node, list):
        return [_derive(item) for item in node]
    if not isinstance(node, dict):
        return node
    kind = node.get("type")
    if kind is not None and kind not in _KNOWN:
        raise Unsupported(str(kind))
    out = {key: (value if key in _OPAQUE else _derive(value)) for key, value in node.items()}
    if "config" in out:
        config = dict(out["config"])
        config.pop("str_strip_whitespace", None)
        out["config"] = config
    if kind == "str":
        if out.get("pattern") is not None or out.get("strip_whitespace") is False:
            raise Unsupported("str with its own pattern or strip rule")
        out["strip_whitespace"] = False
        out["pattern"] = UNSTRIPPED
    elif kind == "model":
        inner = out["schema"]
        if (inner.get("type") != "model-fields" or inner.get("computed_fields") or out.get("custom_init")
                or out.get("root_model") or out.get("post_init") or inner.get("extras_schema") is not None):
            raise Unsupported(f"model {out.get('cls')}")
        config = out.get("config", {})
        fields = {}
        for name, field in inner["fields"].items():
            if field.get("type") != "model-field" or field.get("validation_alias") or field.get("serialization_alias"):
                raise Unsupported(f"field {name}")
            schema = field["schema"]
            fields[name] = {"type": "typed-dict-field", "schema": schema, "required": schema.get("type") != "default"}
        derived: dict[str, Any] = {"type": "typed-dict", "fields": fields, "config": config,
                                   "extra_behavior": config.get("extra_fields_behavior", "ignore")}
        if "ref" in out:
            derived["ref"] = out["ref"]
        return derived
    elif kind == "default":
        factory = out.get("default_factory")
        if out.get("default_factory_takes_data"):
            raise Unsupported("default factory taking data")
        if isinstance(factory, type) and issubclass(factory, BaseModel):
            out["default_factory"] = _dict_factory(factory)
        elif factory is not None and factory is not list:
            raise Unsupported(f"default factory {factory!r}")
        if isinstance(out.get("default"), (BaseModel, list, dict)):
            raise Unsupported("mutable default")
    elif kind in ("function-after", "function-before", "function-plain"):
        on_model = isinstance(out.get("schema"), dict) and out["schema"].get("type") == "typed-dict"
        if on_model and kind == "function-after":
            out["function"] = _after_on_dict(out["function"])
        elif on_model:
            raise Unsupported("model-level validator other than after")
    return out


class DatumValidator:
    """Validates a mapping as `model` would, giving its Avro datum; None where the model must decide."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model
        try:
            self._validator: SchemaValidator | None = SchemaValidator(_derive(model.__pydantic_core_schema__))
        except Exception:  # noqa: BLE001 - whatever the derivation trips on (a schema of a newer pydantic), the model decides
            self._validator = None

    @property
    def usable(self) -> bool:
        return self._validator is not None

    def validate(self, data: Mapping[str, Any], context: Any = None) -> dict[str, Any] | None:
        """The datum the model would dump for `data`, or None: then `model.model_validate` decides (and explains)."""
        if self._validator is None:
            return None
        try:
            datum: dict[str, Any] = self._validator.validate_python(data, context=context)
        except ValidationError:
            return None
        except Exception:  # noqa: BLE001 - a validator meeting a dict where the model gives it an instance: the model decides
            return None
        return datum
