"""OpenAI strict-mode transform: required + nullable, closed objects, limits, and the way back."""

from datetime import date
from typing import Literal, Optional

import pytest
from pydantic import BaseModel, Field

from openfirst.compiler.errors import StrictSchemaError
from openfirst.compiler.strict import StrictLimits, restore, to_strict
from openfirst.compiler.validation import make_validator


class LineItem(BaseModel):
    description: str = Field(min_length=1)
    amount: float = Field(ge=0)
    sku: Optional[str] = None


class Invoice(BaseModel):
    """Extract the invoice."""

    number: str
    issued: date
    currency: Literal["EUR", "USD"] = "EUR"
    items: list[LineItem] = Field(min_length=1)
    notes: str = "none"


def walk(node):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def test_every_object_is_closed_with_all_properties_required():
    strict = to_strict(Invoice.model_json_schema())
    objects = [n for n in walk(strict.schema) if n.get("type") == "object"]
    assert len(objects) == 2
    for obj in objects:
        assert obj["additionalProperties"] is False and obj["required"] == list(obj["properties"])
    assert "default" not in str(strict.schema) and "title" not in strict.schema


def test_optional_fields_become_nullable_and_come_back_as_defaults():
    schema = Invoice.model_json_schema()
    strict = to_strict(schema)
    props = strict.schema["properties"]
    assert props["notes"]["type"] == ["string", "null"]
    assert props["currency"]["enum"] == ["EUR", "USD", None]
    assert sorted(strict.made_nullable) == ["/properties/currency", "/properties/notes"]
    line = strict.schema["$defs"]["LineItem"]["properties"]["sku"]
    assert {"type": "null"} in line["anyOf"]  # already Optional: left as it was
    answer = {"number": "7", "issued": "2026-01-02", "currency": None, "notes": None,
              "items": [{"description": "x", "amount": 1.5, "sku": None}]}
    back = restore(answer, schema)
    assert back == {"number": "7", "issued": "2026-01-02", "items": [{"description": "x", "amount": 1.5, "sku": None}]}
    assert Invoice.model_validate(back).currency == "EUR"


def test_constraints_strict_mode_lacks_are_post_validated_not_dropped_silently():
    strict = to_strict(Invoice.model_json_schema())
    assert ("minLength", "/$defs/LineItem/properties/description") in strict.post_validated
    assert strict.schema["properties"]["issued"]["format"] == "date"  # a strict-mode format is kept
    assert strict.schema["properties"]["items"]["minItems"] == 1
    valid = make_validator(Invoice.model_json_schema())
    assert not valid({"number": "7", "issued": "2026-01-02", "items": [{"description": "", "amount": 1}]})


@pytest.mark.parametrize("schema,keyword", [
    ({"type": "object", "properties": {"m": {"type": "object", "additionalProperties": {"type": "integer"}}}},
     "additionalProperties"),
    ({"type": "object", "properties": {"x": {"not": {"type": "string"}}}}, "not"),
    ({"type": "object", "properties": {"x": {"type": "string"}}, "if": {}, "then": {}}, "if"),
    ({"type": "object", "properties": {"t": {"type": "array", "prefixItems": [{"type": "string"}]}}}, "prefixItems"),
    ({"type": "object", "properties": {"x": {}}}, "{}"),
    ({"type": "array", "items": {"type": "string"}}, "type"),
])
def test_what_strict_mode_cannot_express_is_refused_with_keyword_and_pointer(schema, keyword):
    with pytest.raises(StrictSchemaError) as err:
        to_strict(schema)
    assert err.value.keyword == keyword


def test_limits_are_checked_before_sending():
    deep = {"type": "string"}
    for i in range(11):
        deep = {"type": "object", "properties": {f"l{i}": deep}}
    with pytest.raises(StrictSchemaError, match="nest deeper"):
        to_strict(deep)
    big_enum = {"type": "object", "properties": {"c": {"enum": [f"value-number-{i:05d}" for i in range(1001)]}}}
    with pytest.raises(StrictSchemaError, match="enum"):
        to_strict(big_enum)
    many = {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(30)}}
    with pytest.raises(StrictSchemaError, match="30 properties"):
        to_strict(many, StrictLimits(max_properties=20))
    to_strict(many)  # within OpenAI's default limits
