"""The query page's HTTP server: standard library only, stateless.

Every request reads etcd afresh (control/fleet_snapshot.py) and renders a page
(ui/render.py); nothing is kept between requests but the remembered logins, so any
number of `duckfleet ui` processes can serve the same fleet, and one may be
restarted at any moment.

    GET  /                      running and recent queries
    GET  /query/<id>            one query: stages, tasks, timeline, cancel button
    POST /query/<id>/cancel     cancel it fleet-wide (admins; the form's token)
    GET  /workers               the workers and their slots

An error is a page with a plain message and its status code: 401 asks for a login,
403 says what is not allowed, 404 names what is missing, 503 says etcd cannot be
reached; anything unexpected is a 500 saying so, its traceback in this process's
log only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from html import escape
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from duckfleet.auth import Unauthenticated
from duckfleet.control.errors import ControlError, QueryNotFound, StoreUnavailable
from duckfleet.control.fleet_snapshot import FleetReader
from duckfleet.control.queries import QueryStore
from duckfleet.control.records import EndReason, QueryState, QueryStatus
from duckfleet.control.store import Store
from duckfleet.ids import QueryId
from duckfleet.ui import render
from duckfleet.ui.access import CancelTokens, Logins, Viewer

log = logging.getLogger("duckfleet.ui")

MAX_FORM_BYTES = 4096
SERVER_NAME = "duckfleet-ui"


class PageError(Exception):
    """An answer other than 200: its status and the message the person reads."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def cancelled_status(viewer: Viewer) -> QueryStatus:
    who = f" by {viewer.user}" if viewer.user else ""
    return QueryStatus(
        QueryState.CANCELLED,
        error=f"cancelled{who} on the query page",
        reason=EndReason.CLIENT,
    )


class QueryPages:
    """What each route answers: (status, HTML, extra headers). Reads etcd, renders."""

    def __init__(
        self,
        store: Store,
        logins: Logins,
        tokens: CancelTokens | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.reader = FleetReader(store)
        self.queries = QueryStore(store)
        self.logins = logins
        self.tokens = tokens or CancelTokens()
        self.clock = clock

    def viewer(self, authorization: str | None) -> Viewer:
        try:
            return self.logins.viewer(authorization)
        except Unauthenticated as exc:
            raise PageError(HTTPStatus.UNAUTHORIZED, str(exc)) from None

    def get(self, path: str, viewer: Viewer) -> str:
        parts = [unquote(p) for p in path.strip("/").split("/") if p]
        now = self.clock()
        if not parts:
            visible = [q for q in self.reader.queries() if viewer.sees(q.record)]
            return render.queries_page(visible, viewer, now)
        if parts == ["workers"]:
            return render.workers_page(self.reader.workers(), viewer, now)
        if len(parts) == 2 and parts[0] == "query":
            detail = self._visible_query(QueryId(parts[1]), viewer)
            token = self.tokens.token(viewer, detail.query.record.id)
            return render.query_page(detail, viewer, now, token)
        raise PageError(HTTPStatus.NOT_FOUND, f"no page {path!r}: see / for the queries")

    def _visible_query(self, q: QueryId, viewer: Viewer) -> Any:
        try:
            detail = self.reader.query(q)
        except QueryNotFound as exc:
            raise PageError(HTTPStatus.NOT_FOUND, str(exc)) from None
        if not viewer.sees(detail.query.record):  # the same answer as a missing one
            raise PageError(HTTPStatus.NOT_FOUND, f"query {q} is unknown or not yours")
        return detail

    def cancel(self, path: str, viewer: Viewer, form: dict[str, list[str]]) -> str:
        """Cancel the query fleet-wide; the page to go to next."""
        parts = [unquote(p) for p in path.strip("/").split("/") if p]
        if len(parts) != 3 or parts[0] != "query" or parts[2] != "cancel":
            raise PageError(HTTPStatus.NOT_FOUND, f"no form at {path!r}")
        q = QueryId(parts[1])
        self._visible_query(q, viewer)
        if not viewer.may_cancel:
            raise PageError(HTTPStatus.FORBIDDEN, "only admins may cancel queries")
        token = (form.get("token") or [""])[0]
        if not self.tokens.valid(viewer, q, token):
            raise PageError(
                HTTPStatus.FORBIDDEN,
                "the cancel form is stale or was not sent from the query page: "
                "open the query's page again and press Cancel there",
            )
        status = self.queries.end(q, cancelled_status(viewer))
        log.info("query=%s cancel by %s on the query page: %s", q, viewer.user or "-", status.state)
        return render.query_href(q)


class _Handler(BaseHTTPRequestHandler):
    server_version = SERVER_NAME
    sys_version = ""
    pages: QueryPages  # set on the subclass UiServer makes

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _answer(self, status: int, html: str, headers: dict[str, str] | None = None) -> None:
        body = html.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
            "form-action 'self'; frame-ancestors 'none'",
        )
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self, work: Callable[[Viewer], tuple[int, str, dict[str, str]]]) -> None:
        viewer: Viewer | None = None
        try:
            viewer = self.pages.viewer(self.headers.get("Authorization"))
            status, html, headers = work(viewer)
        except PageError as exc:
            status, headers = int(exc.status), {}
            if exc.status == HTTPStatus.UNAUTHORIZED:
                headers = {"WWW-Authenticate": 'Basic realm="duckfleet", charset="UTF-8"'}
            html = render.error_page(status, exc.message, viewer)
        except StoreUnavailable as exc:
            status, headers = int(HTTPStatus.SERVICE_UNAVAILABLE), {"Retry-After": "2"}
            html = render.error_page(status, f"etcd cannot be reached: {exc}", viewer)
        except ControlError as exc:
            status, headers = int(HTTPStatus.CONFLICT), {}
            html = render.error_page(status, str(exc), viewer)
        except Exception:
            log.exception("%s %s failed", self.command, self.path)
            status, headers = int(HTTPStatus.INTERNAL_SERVER_ERROR), {}
            html = render.error_page(
                status, "the query page failed to answer; its log says why", viewer
            )
        try:
            self._answer(status, html, headers)
        except OSError:  # the browser went away
            pass

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        self._handle(lambda viewer: (200, self.pages.get(path, viewer), {}))

    do_HEAD = do_GET

    def do_POST(self) -> None:
        path = urlsplit(self.path).path

        def work(viewer: Viewer) -> tuple[int, str, dict[str, str]]:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_FORM_BYTES:
                raise PageError(HTTPStatus.BAD_REQUEST, "the form is malformed or too large")
            form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
            target = self.pages.cancel(path, viewer, form)
            page = render.page(
                "cancelled", f'<p><a href="{escape(target)}">back to the query</a></p>', viewer
            )
            return int(HTTPStatus.SEE_OTHER), page, {"Location": target}

        self._handle(work)


class UiServer:
    """`duckfleet ui`: ThreadingHTTPServer on (host, port) serving QueryPages."""

    def __init__(self, pages: QueryPages, host: str, port: int) -> None:
        handler = type("Handler", (_Handler,), {"pages": pages})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="ui-http", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else str(host)
        return f"http://{shown}:{port}/"

    def start(self) -> UiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
