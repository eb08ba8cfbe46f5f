"""CEL validation rules (x-kubernetes-validations) attached to the models' JSON schemas.

The API server enforces them at admission; each model repeats the rule as a pydantic validator so
that `pulp-operator render` and the reconciler reject the same input with the same message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError


@dataclass(frozen=True)
class Rule:
    rule: str
    message: str


def rules(*items: Rule) -> dict[str, Any]:
    """json_schema_extra that adds the rules to a model's schema."""
    return {"x-kubernetes-validations": [{"rule": r.rule, "message": r.message} for r in items]}


def describe_validation_error(error: ValidationError, prefix: str) -> str:
    """One line naming the first invalid field."""
    first = error.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    where = f"{prefix}.{loc}" if loc else prefix
    more = len(error.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{where}: {message}{suffix}"
