"""The per-second series a release keeps: the probe's seconds add up to its whole window, and
the balancer's readings become a share per second and the new servers' failures per second."""

from __future__ import annotations

from lab.balancers.base import Member, Tally
from lab.release.probe import Probe, Sample
from lab.release.timeline import Recorder


def probe_with(samples: list[Sample]) -> Probe:
    probe = Probe("http://127.0.0.1:9/")  # never started: the samples are given
    probe.samples = samples
    return probe


def test_series_holds_exactly_what_the_window_counts() -> None:
    samples = [Sample(100.0 + i * 0.13, ok=i % 7 != 0, latency=0.001 * (i % 5),
                      version="v1" if i < 20 else "v2") for i in range(40)]
    probe = probe_with(samples)

    seconds = probe.series(100.0, 105.5)
    whole = probe.window(100.0, 105.5)

    assert len(seconds) == 6 and seconds[-1].seconds == 0.5
    assert sum(s.requests for s in seconds) == whole.requests == 40
    assert sum(s.errors for s in seconds) == whole.errors
    for version in ("v1", "v2"):
        assert sum(s.versions.get(version, 0) for s in seconds) == whole.versions[version]
    # Each second holds the samples taken in it: 0.13 s apart, 8 in the first second.
    assert seconds[0].requests == 8


def member(name: str, share: float) -> Member:
    return Member(name=name, health="UP", healthy=True, share=share, serving=True)


def test_shares_hold_until_the_balancer_says_otherwise() -> None:
    recorder = Recorder(origin=0.0)
    recorder.now = iter([0.1, 2.2, 2.7, 4.5]).__next__  # type: ignore[method-assign]
    pool = ["old-1", "new-1"]
    for share_new in (0.0, 0.1, 0.5, 1.0):
        recorder.reading({pool[0]: member(pool[0], 1 - share_new),
                          pool[1]: member(pool[1], share_new)}, ["new-1"], ["old-1"])

    recorded = recorder.to_dict([probe_with([]).window(0, 1)] * 6)
    seconds = recorded["seconds"]

    assert [s["share_new"] for s in seconds] == [0.0, 0.0, 0.5, 0.5, 1.0, 1.0]
    # The step line itself keeps every change at its time, even one held under a second.
    assert recorded["shares"] == [[0.1, 0.0, 1.0], [2.2, 0.1, 0.9], [2.7, 0.5, 0.5],
                                  [4.5, 1.0, 0.0]]
    assert [s["share_old"] for s in seconds] == [1.0, 1.0, 0.5, 0.5, 0.0, 0.0]


def test_canary_counts_become_per_second_and_start_again_with_each_step() -> None:
    recorder = Recorder(origin=0.0)
    recorder.now = iter([0.5, 1.5, 1.9, 2.5, 3.5]).__next__  # type: ignore[method-assign]
    readings = [(10, Tally(10, 0)), (10, Tally(20, 1)), (10, Tally(30, 3)),
                (50, Tally(15, 0)), (50, Tally(40, 5))]
    for step, counts in readings:
        recorder.reading({}, ["new-1"], ["old-1"], step, counts)

    seconds = recorder.to_dict([probe_with([]).window(0, 1)] * 4)["seconds"]

    assert [s["canary_requests"] for s in seconds] == [10, 20, 15, 25]
    assert [s["canary_failed"] for s in seconds] == [0, 3, 0, 5]


def test_a_phase_band_ends_when_its_phase_does() -> None:
    recorder = Recorder(origin=0.0)
    recorder.now = iter([1.0, 2.0, 3.5]).__next__  # type: ignore[method-assign]
    recorder.moment("phase", "create")
    recorder.moment("created", "new generation", detail="web-3")
    recorder.phase_ended("create", ok=True)

    events = recorder.to_dict([])["events"]

    assert events == [{"t": 1.0, "kind": "phase", "label": "create", "ok": True, "end": 3.5},
                      {"t": 2.0, "kind": "created", "label": "new generation",
                       "detail": "web-3"}]
