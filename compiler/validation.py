"""jsonschema is the source of truth for validity (formats asserted, as the program requires)."""

from __future__ import annotations

from typing import Any, Callable

from openfirst.compiler.errors import SchemaRefused


def _format_checker():
    """Every format jsonschema knows, whatever the draft (a draft-04 schema's `date` is still checked)."""
    global _CHECKER
    if _CHECKER is None:
        import jsonschema

        _CHECKER = jsonschema.FormatChecker()
    return _CHECKER


_CHECKER = None


def check_schema(schema: Any) -> None:
    """Refuse a schema that jsonschema itself considers invalid (slow: done once per task)."""
    import jsonschema
    from jsonschema.validators import validator_for

    cls = validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise SchemaRefused(f"invalid JSON Schema: {exc.message}", keyword=str(exc.validator),
                            pointer="/" + "/".join(map(str, exc.absolute_path))) from exc


def _validator(schema: Any):
    """jsonschema's validator for the schema's draft (2020-12 by default), every format asserted."""
    import jsonschema
    from jsonschema.validators import validator_for

    cls = validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema, format_checker=_format_checker())


def make_validator(schema: Any) -> Callable[[Any], bool]:
    """A predicate for `schema`; an instance that makes jsonschema itself fail counts as invalid."""
    validator = _validator(schema)

    def ok(instance: Any) -> bool:
        try:
            return validator.is_valid(instance)
        except Exception:  # noqa: BLE001 - a broken $ref or regex: treat as invalid, never crash the run
            return False

    return ok


def validation_errors(schema: Any, instance: Any, limit: int = 5) -> list[str]:
    errs = []
    for e in _validator(schema).iter_errors(instance):
        errs.append(f"{'/' + '/'.join(map(str, e.absolute_path))}: {e.message}")
        if len(errs) >= limit:
            break
    return errs
