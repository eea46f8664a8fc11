"""``lab class serve``: the class's progress page and the endpoints workspaces report to.

A Starlette app served by uvicorn, on 127.0.0.1 unless the instructor chooses otherwise:

- ``GET /`` the page (static HTML and script: the script builds the grid with
  ``textContent`` from ``GET /api/grid`` and polls it, so a name is always text);
- ``POST /api/join`` ``{code, name, token?}``: a new student joins, and gets a token;
- ``POST /api/report`` ``{code, student, token?, exercise, ...}``: a check, hint or start.

Anything that does not fit is refused with a 4xx before anything is stored: a body not
declared ``application/json`` (so another site's page cannot post one without asking), a
body over :data:`MAX_BODY` (refused from its Content-Length, without reading it), bad JSON,
a missing, unknown or oversized field, a wrong join code, a student the class does not
know, a joined student's report without their token. Every request that stores something carries
the join code, wherever the server listens.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import secrets
import socket
import sqlite3
import threading
from collections.abc import Iterator
from importlib import resources
from typing import Annotated, Any, Literal

import uvicorn
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lab.classroom.config import Classroom
from lab.classroom.store import ClassStore, LiveGrid, Report, open_store
from lab.config import describe
from lab.errors import UsageError
from lab.events import Event, Listener, ignore
from lab.state import is_loopback

MAX_BODY = 64 * 1024  # a report is a few KB; anything near this is not one
PAGE_FILES = {"/": ("page.html", "text/html"), "/page.js": ("page.js", "text/javascript"),
              "/page.css": ("page.css", "text/css")}
# The page runs its own script only, and asks nothing of any other origin.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "connect-src 'self'; img-src 'self'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_HEADERS = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

# A name shown on the page: any printable text, not blank; no control characters, nor the
# invisible ones that reorder or hide text (a name must look like what it is).
Name = Annotated[str, StringConstraints(
    min_length=1, max_length=64, strip_whitespace=True,
    pattern=r"^[^\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]+$")]
Short = Annotated[str, StringConstraints(max_length=64)]
Code = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JoinBody(_Body):
    code: Code
    name: Name
    token: Short | None = None


class Goal(_Body):
    check: Short
    status: Literal["pass", "FAIL", "not checked"]


class ReportBody(_Body):
    code: Code
    student: Name
    token: Short | None = None
    exercise: int = Field(ge=1, le=99)
    exercise_id: Annotated[str, StringConstraints(pattern=r"^[0-9]{2}-[a-z0-9-]{1,60}$")]
    kind: Literal["check", "hint", "start"]
    passed: bool | None = None
    goals: list[Goal] = Field(default_factory=list, max_length=50)
    failing: Short = ""
    feedback: Annotated[str, StringConstraints(max_length=4000)] = ""
    hints: int = Field(0, ge=0, le=1000)
    seconds: float = Field(0.0, ge=0, le=10_000_000)


class Refused(Exception):
    """A request the class does not take: its status and a one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def make_app(classroom: Classroom, hosts: list[str] | None = None) -> Starlette:
    """The page and its endpoints, over the class's class.db. ``hosts``: the only names a
    request may call the server by (on 127.0.0.1, so that another site's page cannot reach
    it through a name of its own that resolves to 127.0.0.1); None takes any."""
    store = open_store(classroom)
    live_grid = LiveGrid(classroom, store)
    code = classroom.spec.code

    def check_code(given: str) -> None:
        if not hmac.compare_digest(given.encode(), code.encode()):
            raise Refused(403, "wrong join code")

    async def join(request: Request) -> Response:
        body = JoinBody.model_validate(await _json(request))
        check_code(body.code)
        token = await run_in_threadpool(_join, store, body)
        return JSONResponse({"class": classroom.spec.name, "student": body.name,
                             "token": token})

    async def report(request: Request) -> Response:
        body = ReportBody.model_validate(await _json(request))
        check_code(body.code)
        if body.exercise not in classroom.spec.exercises:
            raise Refused(422, f"exercise: {body.exercise} is not one of this class's "
                               f"({', '.join(map(str, classroom.spec.exercises))})")
        stored = await run_in_threadpool(_store_report, store, body)
        return JSONResponse({"stored": True, "at": stored.at}, status_code=201)

    async def grid(request: Request) -> Response:
        found = await run_in_threadpool(live_grid)
        return JSONResponse(found.to_dict(), headers={"Cache-Control": "no-store"})

    async def page(request: Request) -> Response:
        name, media = PAGE_FILES[request.url.path]
        text = resources.files("lab").joinpath("data", "classroom", name).read_text("utf-8")
        return Response(text, media_type=media)

    routes = [Route("/api/join", join, methods=["POST"]),
              Route("/api/report", report, methods=["POST"]),
              Route("/api/grid", grid, methods=["GET"]),
              *(Route(path, page, methods=["GET"]) for path in PAGE_FILES)]
    checked = [] if hosts is None else [Middleware(TrustedHostMiddleware, allowed_hosts=hosts)]
    return Starlette(routes=routes, middleware=[Middleware(_Secured), *checked],
                     exception_handlers={Refused: _refused, ValidationError: _invalid})


class _Secured:
    """Every response carries :data:`SECURITY_HEADERS` (refusals and errors too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = message | {"headers": [*message.get("headers", []), *_HEADERS]}
            await send(message)

        await self.app(scope, receive, sending)


def _join(store: ClassStore, body: JoinBody) -> str | None:
    """A new name gets a token its reports must carry; the same name again only with that
    token (joining again from the same place), never someone else's joined name. A name
    class.yml lists needs no token (its reports carry the code, as the workspaces of
    `lab class up` do): its attendee joins from their laptop and gets none."""
    known = store.student(body.name)
    if known is None:
        token = secrets.token_urlsafe(16)
        try:
            store.join(body.name, token)
        except sqlite3.IntegrityError:  # the same name, joined a moment ago by another
            raise Refused(409, f"{body.name!r} has joined already: choose another name") \
                from None
        return token
    if known.origin == "class":
        return None
    if body.token and known.token and hmac.compare_digest(body.token, known.token):
        return known.token
    raise Refused(409, f"{body.name!r} has joined already: choose another name")


def _store_report(store: ClassStore, body: ReportBody) -> Report:
    known = store.student(body.student)
    if known is None:
        raise Refused(404, "unknown student: join the class first (`lab class join`)")
    if known.origin == "join" and known.token and not (
            body.token and hmac.compare_digest(body.token, known.token)):
        raise Refused(403, "this student's reports need the token their join gave")
    return store.add(Report(
        student=body.student, exercise=body.exercise, exercise_id=body.exercise_id,
        kind=body.kind, passed=body.passed if body.kind == "check" else None,
        goals=[g.model_dump() for g in body.goals], failing=body.failing,
        feedback=body.feedback, hints=body.hints, seconds=body.seconds))


async def _json(request: Request) -> Any:
    """The request's JSON body, refused when too big (by its Content-Length, before any of
    it is read; or while reading, when it has none) or not JSON."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":  # also makes a browser ask first (CORS) before sending
        raise Refused(415, "the body must be sent as Content-Type: application/json")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise Refused(413, f"the body is over {MAX_BODY} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise Refused(413, f"the body is over {MAX_BODY} bytes")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, RecursionError):  # RecursionError: arrays nested 60,000 deep
        raise Refused(400, "the body is not JSON") from None


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    # Close the connection: a body we did not read must not be taken as the next request.
    return JSONResponse({"error": str(exc)}, status_code=exc.status,
                        headers={"Connection": "close"})


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationError)
    reason = "the body must be a JSON object" if _not_an_object(exc) else describe(exc)
    return JSONResponse({"error": reason}, status_code=422)


def _not_an_object(exc: ValidationError) -> bool:
    return any(e["type"] == "model_type" and not e["loc"] for e in exc.errors())


# serving -------------------------------------------------------------------------------------


LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1", "[::1]"]


def serve(classroom: Classroom, host: str, port: int, on_event: Listener = ignore) -> None:
    """Serve the page until Ctrl-C (uvicorn stops cleanly, then re-raises the interrupt)."""
    sock = listen(host, port)
    try:
        on_event(Event("serve", f"http://{_shown(host)}:{port}",
                       data={"host": host, "port": port}))
        _server(classroom, host, port).run(sockets=[sock])
    finally:
        sock.close()


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, or a one-line error when the address cannot be had."""
    try:
        return socket.create_server((host, port), family=socket.AF_INET6 if ":" in host
                                    else socket.AF_INET, backlog=128)
    except OSError as exc:
        why = (exc.strerror or str(exc)).split(" (while")[0]  # create_server adds the address
        raise UsageError(f"cannot listen on {_shown(host)}:{port}: {why} "
                         "(choose another --host or --port)") from None


@contextlib.contextmanager
def running(classroom: Classroom, host: str = "127.0.0.1") -> Iterator[str]:
    """The page served from a thread on a free port, for as long as the block runs: its URL.
    For tests and benchmarks that want the real server in their own process."""
    sock = listen(host, 0)
    port = sock.getsockname()[1]
    server = _server(classroom, host, port)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the class's server did not start")
            threading.Event().wait(0.02)
        yield f"http://{_shown(host)}:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _server(classroom: Classroom, host: str, port: int) -> uvicorn.Server:
    hosts = [host, *LOOPBACK_NAMES] if is_loopback(host) else None
    config = uvicorn.Config(make_app(classroom, hosts), host=host, port=port, log_level="warning",
                            access_log=False, server_header=False, lifespan="off",
                            timeout_graceful_shutdown=2)
    return uvicorn.Server(config)


def _shown(host: str) -> str:
    return f"[{host}]" if ":" in host else host
