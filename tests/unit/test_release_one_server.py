"""`lab release` of a role of one server (``count: 1``), on the fakes of ``release_fakes``:
what the old generation ran is read from its only server."""

from __future__ import annotations

from release_fakes import LAB_YML, MakeCycle

ONE_WEB = LAB_YML.replace("count: 2", "count: 1")


def test_a_role_of_one_server_remembers_what_its_server_ran(make_cycle: MakeCycle) -> None:
    cycle = make_cycle(ONE_WEB)
    del cycle.world.servers["web-2"], cycle.world.pool["web-2"]
    cycle.world.servers["web-1"].image = "lab/cycle-web:v1"  # started from a baked image

    report = cycle.release()

    assert report.outcome == "promoted"
    assert (report.old, len(report.new)) == (["web-1"], 1)
    assert report.previous == {"vars": {"version": "v1"}, "image": "lab/cycle-web:v1"}
    assert cycle.saved()["previous"] == report.previous


def test_a_role_of_one_server_on_lab_yml_s_image_remembers_no_image(
        make_cycle: MakeCycle) -> None:
    cycle = make_cycle(ONE_WEB)
    del cycle.world.servers["web-2"], cycle.world.pool["web-2"]

    report = cycle.release()

    assert (report.outcome, report.old) == ("promoted", ["web-1"])
    assert report.previous == {"vars": {"version": "v1"}, "image": None}
