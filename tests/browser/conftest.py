"""Browser tests: real headless Chromium (Debian's /usr/bin/chromium, installed by
tools/checks/apt-install.sh from `make test`) driven by Playwright for Python, which
never downloads a browser here. Pages are served by a tiny HTTP server per origin."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")


# Module scope, not session: Playwright's sync API keeps an event loop running in the main
# thread while it is open, and later tests that call asyncio.run() would fail.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            "the browser tests need Debian's chromium at /usr/bin/chromium: run "
            "`make browser` (make test does) or `apt-get install chromium`",
            pytrace=False,
        )
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
    yield b
    b.close()


class PageServer:
    """Serves fixed HTML pages from one origin: http://localhost:<port> (or another host)."""

    def __init__(self, host_name: str = "localhost") -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path.split("?")[0])
                if body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://{host_name}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return self.origin + path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def page_server() -> Iterator[Callable[..., PageServer]]:
    started: list[PageServer] = []

    def make(host_name: str = "localhost") -> PageServer:
        started.append(PageServer(host_name))
        return started[-1]

    yield make
    for s in started:
        s.close()
