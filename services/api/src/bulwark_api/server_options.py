"""The uvicorn options of api's servers, in a module of their own (no imports) so that the
benchmarks' reference servers run with the same ones at no import cost: only the
application differs."""

from __future__ import annotations

from typing import Any

SERVER_OPTIONS: dict[str, Any] = {
    "log_config": None,  # keep our JSON handler
    "access_log": False,
    "proxy_headers": False,  # X-Forwarded-For is honoured only from API_TRUSTED_PROXIES
    "server_header": False,
    "timeout_graceful_shutdown": 10,
}
