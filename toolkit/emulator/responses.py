"""How the emulator's HTTP layer answers: JSON bodies from the toolkit's wire models."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from toolkit.models import WireModel


def json_response(body: WireModel | dict[str, Any], *, status: int = 200) -> JSONResponse:
    """A wire model in the service's JSON (camelCase, no unset optionals), or a plain body."""
    return JSONResponse(body.to_wire() if isinstance(body, WireModel) else body, status_code=status)
