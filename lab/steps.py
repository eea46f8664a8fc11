"""Named steps with expected outcomes, timings and events: one runner for every story lab tells.

`lab test` runs its phases (create, provision, idempotence, verify, destroy), `lab demo` its
story (v1 up, v2 promoted, a broken v3 rolled back), a release its phases (create ... promote),
and the exercise grader will run its checks, all through :class:`Steps`: each step has a name,
the outcome it should have, the outcome it had, how long it took and one line saying what went
wrong. Every result lab produces has the same face (:class:`Result`: ``ok`` and a one-line
``problem``), so any of them can be a step's body.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from lab.errors import LabError
from lab.events import Event, Listener, ignore

OK = "ok"
FAILED = "failed"


@runtime_checkable
class Result(Protocol):
    """What any check or operation reports: whether it passed, and if not, one line for a
    person saying what went wrong (provision, drift, idempotence, verify, `lab test`)."""

    @property
    def ok(self) -> bool: ...

    @property
    def problem(self) -> str: ...


@dataclass(frozen=True)
class Outcome:
    """What a step's body found: its outcome word (``ok``, ``failed``, ``promoted``,
    ``rolled-back``...), one line of detail, and figures worth showing."""

    value: str = OK
    detail: str = ""
    figures: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, found: object) -> Outcome:
        """A body may return an Outcome, a :class:`Result`, or a problem line ("" when all
        is well); anything else it returns (what it made) means it went well."""
        if isinstance(found, Outcome):
            return found
        if isinstance(found, str):
            return cls(FAILED, found) if found else cls()
        if isinstance(found, Result):
            return cls() if found.ok else cls(FAILED, found.problem)
        return cls()


@dataclass
class Step:
    name: str
    expected: str
    outcome: str
    seconds: float
    detail: str = ""
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome == self.expected

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}


class Steps:
    """Runs named steps in order and keeps what each did.

    By default a step is skipped once an earlier one failed (``always`` runs it anyway: a
    clean-up). A :class:`LabError` in a body is that step's failure; anything else (Ctrl-C, a
    bug) is recorded and let through, unless ``catch=False``, which lets every exception
    through after recording it (a release rolls back on it).
    """

    def __init__(self, on_event: Listener = ignore) -> None:
        self.on_event = on_event
        self.done: list[Step] = []

    @property
    def ok(self) -> bool:
        return bool(self.done) and all(step.ok for step in self.done)

    @property
    def problem(self) -> str:
        """The first step that did not go as expected, in one line."""
        for step in self.done:
            if not step.ok:
                what = step.detail or f"{step.outcome}, expected {step.expected}"
                return f"{step.name} failed: {what}"
        return ""

    def run(self, name: str, body: Callable[[], Any], expected: str = OK, *,
            always: bool = False, catch: bool = True) -> Step | None:
        """Run ``body`` as the step ``name``; None when skipped after an earlier failure."""
        if not always and self.done and not self.ok:
            return None
        self.on_event(Event("phase", f"{name}..."))
        started = time.monotonic()
        try:
            outcome = Outcome.of(body())
        except LabError as exc:
            self._record(name, expected, Outcome(f"error: {exc}", str(exc)), started)
            if not catch:
                raise
            return self.done[-1]
        except BaseException as exc:
            self._record(name, expected, Outcome("error", repr(exc)), started)
            raise
        return self._record(name, expected, outcome, started)

    def run_together(self, bodies: dict[str, Callable[[], Any]]) -> list[Step]:
        """Run independent steps at the same time; each is recorded, in the order given, as
        :meth:`run` would record it (all skipped, [] returned, after an earlier failure).

        The first body runs in this thread, so Ctrl-C reaches it as it reaches :meth:`run`;
        the others each run in a thread of their own, and are waited for before anything,
        a Ctrl-C included, goes on: no step is left running behind the next one.
        """
        if self.done and not self.ok:
            return []
        (first, first_body), *others = bodies.items()
        with ThreadPoolExecutor(max_workers=max(1, len(others))) as pool:
            started = [pool.submit(self._timed, name, body) for name, body in others]
            ran = [self._timed(first, first_body), *(future.result() for future in started)]
        steps = [self._add(Step(name, OK, outcome.value, seconds, outcome.detail,
                                outcome.figures)) for name, (outcome, seconds, _) in
                 zip(bodies, ran, strict=True)]
        raised = next((error for _, _, error in ran if error is not None), None)
        if raised is not None:
            raise raised
        return steps

    def _timed(self, name: str, body: Callable[[], Any]
               ) -> tuple[Outcome, float, BaseException | None]:
        """``body``'s outcome and seconds; what it raised beyond a LabError, to raise later."""
        self.on_event(Event("phase", f"{name}..."))
        started = time.monotonic()
        try:
            return Outcome.of(body()), time.monotonic() - started, None
        except LabError as exc:
            return Outcome(f"error: {exc}", str(exc)), time.monotonic() - started, None
        except BaseException as exc:
            return Outcome("error", repr(exc)), time.monotonic() - started, exc

    def _record(self, name: str, expected: str, outcome: Outcome, started: float) -> Step:
        return self._add(Step(name, expected, outcome.value, time.monotonic() - started,
                              outcome.detail, outcome.figures))

    def _add(self, step: Step) -> Step:
        self.done.append(step)
        name, expected = step.name, step.expected
        if step.ok:
            verdict = OK if step.outcome == OK else f"{step.outcome}, as expected"
        else:
            verdict = "FAILED" if expected == OK else f"FAILED ({step.outcome}, expected " \
                                                    f"{expected})"
        self.on_event(Event("phase", f"{name} {verdict} ({step.seconds:.1f} s)",
                            data={"step": step.to_dict()}))
        return step
