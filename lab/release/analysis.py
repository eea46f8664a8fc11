"""Canary analysis: each step of a release judged on numbers, every verdict kept with them.

At the end of a step, each rule lab.yml's ``release:`` sets is judged on what was measured in
that step alone: the error rate users saw (the probe), the new servers' own failures (the
balancer's counters, which see failures a retry hid from users), the new generation's p99
latency against a limit in ms, and against the old generation's p99 measured in the same
step. A rule with no data to judge is *inconclusive*, never passed: a step in which the new
generation took fewer than ``min_requests`` requests proves nothing about it.

Every verdict carries its value, its limit and the number of requests it rests on, so a
release record says why it went on or came back, in figures (``lab release``'s step table,
``lab history --json``, ``lab report``).
"""

from __future__ import annotations

from lab.balancers.base import Tally
from lab.config import ReleasePolicy
from lab.release.journal import FAILED, INCONCLUSIVE, PASSED, Verdict
from lab.release.probe import Window

# Latencies on one laptop are a few ms and jump by more than 2x with the machine's load; a
# relative limit never asks the new generation to be closer to the old one than this.
NOISE_MS = 25.0


APART = "the generations' answers could not be told apart (no server names, one version)"


def judge(policy: ReleasePolicy, users: Window, own: Tally | None, new: Window | None,
          old: Window, old_measured: str) -> list[Verdict]:
    """The verdicts of one step.

    ``users``: every answer of the step (the probe); ``own``: the new servers' own counters
    (None where the balancer cannot tell); ``new`` and ``old``: the answers of each
    generation, ``new`` None when they could not be told apart (the latency rules then have
    no data, and the least number of requests is counted on all of them); ``old_measured``
    says where ``old`` comes from (this step, or before the release when the old generation
    takes no traffic any more).
    """
    if new is None:
        return _judge_together(policy, users, own)
    seen = own.requests if own is not None else new.requests
    verdicts = [_at_most("error rate", users.error_rate, policy.max_error_rate,
                         users.requests, "%")]
    if own is not None:
        verdicts.append(_at_most("new servers' errors", own.error_rate, policy.max_error_rate,
                                 own.requests, "%"))
    if policy.max_p99_ms is not None:
        verdicts.append(_at_most("p99", new.p99_ms, policy.max_p99_ms, new.requests, "ms"))
    if policy.max_p99_ratio is not None:
        limit = max(policy.max_p99_ratio * old.p99_ms, old.p99_ms + NOISE_MS)
        note = (f"{policy.max_p99_ratio:g}x old p99 {old.p99_ms:.1f} ms {old_measured}"
                f" ({old.requests} requests), at least +{NOISE_MS:g} ms")
        verdict = _at_most("p99 vs old", new.p99_ms, limit, new.requests, "ms", note)
        if not old.requests:
            verdict.outcome = INCONCLUSIVE
        verdicts.append(verdict)
    if policy.min_requests:
        verdicts.append(Verdict("requests", seen, policy.min_requests, seen,
                                PASSED if seen >= policy.min_requests else INCONCLUSIVE))
    return verdicts


def _judge_together(policy: ReleasePolicy, users: Window, own: Tally | None) -> list[Verdict]:
    """A step whose answers say nothing of who gave them (an ALB in front of a page without
    a version): latency per generation is unknown, requests are counted on all answers."""
    nothing = Window(seconds=users.seconds)
    verdicts = [v for v in judge(policy, users, own, nothing, nothing, "")
                if v.rule != "requests"]
    for verdict in verdicts:
        if verdict.rule.startswith("p99"):
            verdict.note = APART
    if policy.min_requests:
        seen = own.requests if own is not None else users.requests
        verdicts.append(Verdict("requests", seen, policy.min_requests, seen,
                                PASSED if seen >= policy.min_requests else INCONCLUSIVE,
                                note="" if own is not None else f"all answers: {APART}"))
    return verdicts


def _at_most(rule: str, value: float, limit: float, requests: int, unit: str,
             note: str = "") -> Verdict:
    """``value`` may be at most ``limit``; with no request behind it, nothing is known."""
    outcome = INCONCLUSIVE if not requests else PASSED if value <= limit else FAILED
    return Verdict(rule, round(value, 4 if unit == "%" else 1), round(limit, 4), requests,
                   outcome, unit, note)


def first(verdicts: list[Verdict], outcome: str) -> Verdict | None:
    """The first verdict with ``outcome``: the one a refused step is named for."""
    return next((v for v in verdicts if v.outcome == outcome), None)


__all__ = ["FAILED", "INCONCLUSIVE", "NOISE_MS", "PASSED", "first", "judge"]
