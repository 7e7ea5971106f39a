"""The `bare` reference server of the edge benchmark (one uvicorn worker like api): one
FastAPI endpoint answering static JSON, what the framework alone costs. The I/O floors are
in raw.py (they replaced the old floor through api's own engine, which measured api against
its own driver choices).

    python -m bulwark_devstack.bench.apps bare --port N"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from fastapi import FastAPI

# bulwark_api ships no py.typed: checked as source by `make lint`, untyped when mypy is
# pointed at tools/ alone; the ignore covers both.
from bulwark_api.server_options import (  # type: ignore[import-untyped, unused-ignore]
    SERVER_OPTIONS,
)

PATH = "/v1/items/{item_id}"
STATIC: dict[str, Any] = {
    "id": "00000000-0000-0000-0000-000000000000",
    "name": "static",
    "description": None,
}


def bare_app() -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get(PATH)
    async def get_item(item_id: str) -> dict[str, Any]:
        return STATIC

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bulwark-bench-app", description=__doc__)
    parser.add_argument("kind", choices=["bare"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    app = bare_app()
    # The server options of bulwark-api serve, so only the application differs.
    uvicorn.run(app, host="127.0.0.1", port=args.port, **SERVER_OPTIONS)


if __name__ == "__main__":
    main()
