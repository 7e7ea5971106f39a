"""Answers serialised once by orjson, for hot routes whose values are already typed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from fastapi.responses import Response
from pydantic import BaseModel


def json_response(
    body: Any, sub: Response, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """`body` as JSON, with the headers the dependencies set on `sub` (the rate limit's):
    FastAPI copies those only into responses it builds itself. No model in between (the
    route's response_model still documents the shape); naive datetimes are UTC (SQLite's),
    written with a Z like pydantic does."""
    out = Response(
        orjson.dumps(body, option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )
    out.headers.raw.extend(sub.headers.raw)
    return out


def created_secret(body: BaseModel, sub: Response, location: str) -> Response:
    """201 for a new credential whose secret this answer alone shows: never stored by a
    cache (`no-store`), with the new resource's `Location`."""
    return json_response(
        body.model_dump(mode="json"),
        sub,
        201,
        headers={"Cache-Control": "no-store", "Location": location},
    )
