"""The error root carries hint and retryable; Pydantic errors become one line without the input."""

import pytest
from pydantic import BaseModel, Field, ValidationError

from openfirst.core.errors import ConfigError, OpenFirstError, describe_validation_error


def test_root_fields():
    err = ConfigError("bad", hint="do this")
    assert isinstance(err, OpenFirstError) and str(err) == "bad (hint: do this)" and err.retryable is False
    assert OpenFirstError("x", retryable=True).retryable is True


class Opts(BaseModel):
    n: int = Field(ge=1)
    name: str


def test_validation_error_is_one_line_naming_fields_not_values():
    with pytest.raises(ValidationError) as err:
        Opts(n=-5, name=["secret-value"])
    line = describe_validation_error(err.value)
    assert "n: Input should be greater than or equal to 1" in line and "name:" in line
    assert "secret-value" not in line and "\n" not in line
    assert describe_validation_error(err.value, limit=1).endswith("and 1 more")
