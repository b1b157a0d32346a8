"""The lenient-but-typed base of every emulator request schema, and the check that words its errors."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import PydanticCustomError

#: The reason of a body that breaks its schema, in Novita's words (other vendors word it their own way).
INVALID_BODY = "INVALID_REQUEST_BODY"


class BodyError(ValueError):
    """A refused submit body: the vendor's ``reason`` code and a message naming every bad field."""

    def __init__(self, message: str, reason: str = INVALID_BODY) -> None:
        super().__init__(message)
        self.reason = reason


class VendorSchema(BaseModel):
    """JSON types as documented (no ``"512"`` for an integer); unknown keys ignored; ``{}`` optional is absent."""

    model_config = ConfigDict(extra="ignore", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_optional_objects_are_absent(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fields = cls.model_fields
        return {
            key: value
            for key, value in data.items()
            if not (value == {} and key in fields and not fields[key].is_required())
        }


def vendor_error(reason: str, message: str) -> PydanticCustomError:
    """A field error that carries the vendor's own reason code (e.g. ``INVALID_IMAGE_FORMAT``)."""
    return PydanticCustomError(reason, message)


def base64_bytes(value: str) -> bytes:
    """Plain or data-URI base64 decoded; a `vendor_error` when it is not base64."""
    payload = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raise vendor_error("INVALID_IMAGE_FORMAT", "is not valid base64") from None


def check(schema: type[VendorSchema], body: Any) -> dict[str, Any]:
    """``body`` as sent when ``schema`` accepts it; else a `BodyError` naming each field (``a.b[0].c: ...``)."""
    if not isinstance(body, dict):
        raise BodyError("body: must be a JSON object")
    try:
        schema.model_validate(body)
    except ValidationError as error:
        problems = error.errors(include_url=False, include_input=False)
        reasons = [problem["type"] for problem in problems if problem["type"].isupper()]
        text = "; ".join(_problem(problem["loc"], problem["msg"]) for problem in problems)
        raise BodyError(text, reasons[0] if reasons else INVALID_BODY) from None
    return body


def _problem(parts: tuple[int | str, ...], message: str) -> str:
    """``request.loras[5]: message``; a whole-body check names its own fields in its message."""
    message = message.removeprefix("Value error, ")
    location = ""
    for part in parts:
        location += f"[{part}]" if isinstance(part, int) else f".{part}" if location else str(part)
    return f"{location}: {message}" if location else message
