"""Validation against the task's JSON Schema: invalid schemas refused, instances checked, errors located."""

import pytest

from openfirst.compiler.errors import SchemaRefused
from openfirst.compiler.validation import check_schema, make_validator, validation_errors

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer", "maximum": 5}, "d": {"type": "string",
                                                                                       "format": "date"}},
          "required": ["n"]}


def test_an_invalid_schema_is_refused_with_its_keyword():
    check_schema(SCHEMA)
    with pytest.raises(SchemaRefused, match="invalid JSON Schema"):
        check_schema({"type": "object", "properties": {"n": {"type": "integr"}}})


def test_instances_are_checked_with_formats_asserted_and_errors_located():
    ok = make_validator(SCHEMA)
    assert ok({"n": 3, "d": "2024-05-01"}) and not ok({"n": 9}) and not ok({"n": 1, "d": "yesterday"})
    assert validation_errors(SCHEMA, {"n": 9}) == ["/n: 9 is greater than the maximum of 5"]
    assert len(validation_errors(SCHEMA, {"n": "x", "d": 1}, limit=1)) == 1
    assert make_validator({"$ref": "#/nowhere"})({"n": 1}) is False  # a broken $ref is invalid, not a crash
