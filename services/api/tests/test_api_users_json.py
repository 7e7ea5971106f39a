"""GET /v1/users/me answers without a model: byte for byte what UserOut would give."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi import Response

from bulwark.users.v1 import users_pb2
from bulwark_api.jsonout import json_response
from bulwark_api.routes.users import user_json, user_out


@pytest.mark.parametrize("micros", [0, 5000, 996266])
def test_user_json_is_user_out(micros: int) -> None:
    user = users_pb2.User(
        id="4311e122-3f1e-41ca-ad2c-e80fc3e4d4f1",
        username="zoë",
        email="zoë@example.com",
        roles=["admin", "user"],
        disabled=True,
    )
    user.created_at.FromDatetime(datetime(2026, 12, 1, 13, 10, 46, micros, tzinfo=UTC))
    sub = Response()
    sub.headers["RateLimit-Remaining"] = "7"
    out = json_response(user_json(user), sub)
    assert out.body == user_out(user).model_dump_json().encode()
    assert out.headers["content-type"] == "application/json"
    assert out.headers["ratelimit-remaining"] == "7"
