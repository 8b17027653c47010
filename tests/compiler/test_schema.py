import pytest

from openfirst.compiler.errors import SchemaRefused
from openfirst.compiler.schema import SchemaOptions, normalise


def test_report_lists_enforced_bounded_and_recursion():
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
                       "child": {"$ref": "#/$defs/Node"}},
        "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
        "required": ["name"],
        "description": "annotations are not enforced",
    }
    norm, report = normalise(schema, SchemaOptions(max_string_length=50, max_items=7))
    enforced = {k for k, _ in report.enforced}
    assert {"type", "properties", "required", "items", "$ref"} <= enforced
    assert "description" not in enforced
    assert ("maxLength", "/properties/name", 50) in report.bounded
    assert ("maxItems", "/properties/tags", 7) in report.bounded
    assert ("maxLength", "/properties/tags/items", 50) in report.bounded
    assert norm["properties"]["name"]["maxLength"] == 50 and "maxLength" not in schema["properties"]["name"]
    assert report.recursive_refs == ["/$defs/Node"]
    assert report.exact


@pytest.mark.parametrize("schema,keyword", [({}, "{}"), (True, "{}"), (False, "false"), ([], "type")])
def test_unbounded_or_broken_schemas_are_refused_with_keyword_and_pointer(schema, keyword):
    with pytest.raises(SchemaRefused) as err:
        normalise(schema)
    assert err.value.keyword == keyword and err.value.pointer == ""


def test_faithful_mode_adds_no_bounds():
    norm, report = normalise({"type": "string"}, SchemaOptions.faithful())
    assert norm == {"type": "string"} and not report.bounded


def test_open_objects_are_closed_in_task_mode_only():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    norm, report = normalise(schema)
    assert norm["additionalProperties"] is False and ("additionalProperties", "", False) in report.bounded
    assert "additionalProperties" not in normalise(schema, SchemaOptions.faithful())[0]
