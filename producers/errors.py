"""Exceptions of the publisher SDK."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from leadbus.models import reason_code


@dataclass(frozen=True)
class FieldError:
    """One invalid field: its dotted path, a stable reason code and a human message."""

    field: str
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message} [{self.code}]"


class InvalidLead(ValueError):
    """The lead failed validation; nothing was published."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("invalid lead: " + "; ".join(str(e) for e in errors))

    @property
    def fields(self) -> list[str]:
        return [e.field for e in self.errors]

    @classmethod
    def from_validation(cls, exc: ValidationError) -> InvalidLead:
        return cls([field_error(err) for err in exc.errors(include_url=False)])


def field_error(err: object) -> FieldError:
    """A pydantic error as a FieldError; custom errors keep their own code, built-ins get ours."""
    assert isinstance(err, dict)
    path = ".".join(str(p) for p in err.get("loc", ())) or "<lead>"
    return FieldError(path, reason_code(str(err.get("type", ""))), str(err.get("msg", "invalid")))


class PublishError(RuntimeError):
    """The broker did not confirm a lead within the time allowed, or refused it."""
