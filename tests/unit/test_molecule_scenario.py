"""molecule.yml read as Molecule reads it, and refused in one line naming file and field; the
role under test named as Molecule names it; the test sequence lab runs of it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lab.cli import app
from lab.errors import ConfigError, ExitStatus, UsageError
from lab.molecule import find_scenario
from lab.molecule.cycle import plan
from lab.molecule.scenario import interpolate, load_scenario, role_under_test

runner = CliRunner(env={"LAB_FILE": None})
D = "driver: {name: docker}\n"

TWO_PLATFORMS = """\
driver:
  name: docker
platforms:
  - name: web-a
    image: geerlingguy/docker-debian12-ansible:latest
    groups: [web]
    children: [frontend]
    privileged: true           # Molecule's business: ignored
  - name: db-a
    image: debian:12
provisioner:
  name: ansible
  env: {COLOUR: blue, RETRIES: 3}
  inventory:
    group_vars: {web: {greeting: hi}}
verifier:
  name: testinfra
lint: yamllint .               # Molecule's business: ignored
"""


def role(where: Path, molecule_yml: str = TWO_PLATFORMS, scenario: str = "default",
         files: tuple[str, ...] = ("converge.yml",), meta: str | None = None) -> Path:
    """A role folder with one scenario; ``files`` are written empty beside molecule.yml."""
    directory = where / "molecule" / scenario
    directory.mkdir(parents=True)
    (directory / "molecule.yml").write_text(molecule_yml)
    for name in files:
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text("")
    if meta is not None:
        (where / "meta").mkdir()
        (where / "meta" / "main.yml").write_text(meta)
    return where


def test_reads_what_lab_acts_on(tmp_path: Path) -> None:
    scenario = load_scenario(role(tmp_path / "myrole", files=("converge.yml", "prepare.yml")))

    assert [p.name for p in scenario.platforms] == ["web-a", "db-a"]
    assert scenario.platforms[0].groups == ["web"]
    assert scenario.platforms[0].children == ["frontend"]
    assert scenario.config.driver.name == "docker"
    assert scenario.verifier.name == "testinfra"
    assert scenario.env == {"COLOUR": "blue", "RETRIES": "3"}
    assert scenario.playbooks["converge"] == scenario.directory / "converge.yml"
    assert scenario.playbooks["prepare"] == scenario.directory / "prepare.yml"
    assert scenario.playbooks["side_effect"] is None
    assert scenario.sequence[:5] == ["dependency", "cleanup", "destroy", "syntax", "create"]
    assert scenario.role.name == "myrole"


def test_playbooks_env_and_cfg_named_in_the_file(tmp_path: Path) -> None:
    text = (D + "platforms: [{name: a, image: debian:12}]\n"
            "provisioner:\n  name: ansible\n  playbooks: {converge: ../shared/play.yml}\n"
            "  env: {A: old, B: kept}\n  config_options: {defaults: {forks: 5}}\n")
    newer = text + ("ansible:\n  playbooks: {converge: ../shared/newer.yml}\n  env: {A: new}\n"
                    "  cfg: {defaults: {timeout: 30}}\n")
    older = load_scenario(role(tmp_path / "older", text, files=("../shared/play.yml",)))
    scenario = load_scenario(role(tmp_path / "newer", newer, files=("../shared/newer.yml",)))

    assert older.playbooks["converge"] == older.directory / "../shared/play.yml"
    assert scenario.playbooks["converge"] == scenario.directory / "../shared/newer.yml"
    assert scenario.env == {"A": "new", "B": "kept"}
    assert scenario.cfg == {"defaults": {"forks": 5, "timeout": 30}}


@pytest.mark.parametrize(("text", "expected"), [
    (D + "platforms: []\n", "molecule/default/molecule.yml: platforms: must have at least 1 item"),
    ("driver: {name: docker}\n", "molecule/default/molecule.yml: platforms: is required"),
    (D + "platforms: [{image: debian:12}]\n",
     "molecule/default/molecule.yml: platforms[0].name: is required"),
    (D + "platforms: [{name: a, image: [x]}]\n",
     "molecule/default/molecule.yml: platforms[0].image: must be a string"),
    (D + "platforms: [{name: a}, {name: a}]\n", "two platforms are named 'a'"),
    ("platforms: [{name: a}]\n",
     "molecule/default/molecule.yml: driver.name: lab makes a scenario's instances as its own "
     "containers, from driver docker or podman platforms; got 'default'"),
    ("driver: {name: ec2}\nplatforms: [{name: a}]\n",
     "molecule/default/molecule.yml: driver.name: lab makes a scenario's instances as its own "
     "containers, from driver docker or podman platforms; got 'ec2'"),
    (D + "platforms: [{name: a}]\nverifier: {name: goss}\n",
     "molecule/default/molecule.yml: verifier.name: must be one of 'ansible' or 'testinfra'"),
    (D + "platforms: [{name: a}]\nscenario: {test_sequence: [create, converge, explode]}\n",
     "molecule/default/molecule.yml: scenario.test_sequence: unknown action 'explode'"),
    (D + "platforms: [{name: a, groups: web}]\n",
     "molecule/default/molecule.yml: platforms[0].groups: must be a list"),
    ("platforms: [{name: a}\n", "molecule/default/molecule.yml:2:1: invalid YAML"),
    ("- just\n- a list\n", "molecule/default/molecule.yml: must be a mapping of fields"),
])
def test_bad_input_is_one_line_naming_file_and_field(tmp_path: Path, monkeypatch:
                                                     pytest.MonkeyPatch, text: str,
                                                     expected: str) -> None:
    monkeypatch.chdir(tmp_path)
    role(tmp_path, text)

    with pytest.raises(ConfigError) as raised:
        load_scenario(tmp_path)

    assert expected in str(raised.value)
    assert "\n" not in str(raised.value)
    assert raised.value.exit_code == ExitStatus.BAD_INPUT


def test_through_the_cli_bad_input_exits_2_with_one_line(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    role(tmp_path, D + "platforms: [{name: a, image: debian:12}]\nverifier: {name: goss}\n")

    result = runner.invoke(app, ["test"])

    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == ["error: molecule/default/molecule.yml: verifier.name: must be one of "
                     "'ansible' or 'testinfra', got 'goss'"]


def test_an_unknown_scenario_names_the_ones_there_are(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    role(tmp_path, scenario="alpha")

    result = runner.invoke(app, ["test"])
    named = runner.invoke(app, ["test", "--scenario", "beta"])

    assert result.exit_code == named.exit_code == 2
    assert "molecule/default/molecule.yml: not found (scenarios here: alpha; choose one with " \
           "--scenario)" in result.output
    assert "molecule/beta/molecule.yml: not found" in named.output


def test_a_folder_with_a_lab_is_a_lab(tmp_path: Path) -> None:
    (tmp_path / "lab.yml").write_text("name: x\nservers: {web: {}}\n")
    role(tmp_path)

    assert find_scenario(tmp_path / "lab.yml") is None
    with pytest.raises(UsageError, match="--scenario runs a role's Molecule scenario"):
        find_scenario(tmp_path / "lab.yml", "default")


def test_a_folder_with_neither_keeps_lab_yml_s_own_error(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    assert find_scenario(Path("lab.yml")) is None
    result = runner.invoke(app, ["test"])
    assert result.exit_code == 2
    assert "lab.yml: not found (run `lab init`" in result.output


def test_a_scenario_name_is_a_folder_name(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        load_scenario(tmp_path, "../elsewhere")


def test_variables_are_read_as_molecule_reads_them(tmp_path: Path) -> None:
    text = (D + "platforms:\n  - name: ${NAME:-inst}\n    image: \"docker-${DISTRO:-debian12}\"\n"
            "    groups: [$MOLECULE_SCENARIO_NAME]\n")
    project = role(tmp_path, text)

    default = load_scenario(project, environ={})
    given = load_scenario(project, environ={"DISTRO": "debian13", "NAME": "x"})

    assert (default.platforms[0].name, default.platforms[0].image) == ("inst", "docker-debian12")
    assert default.platforms[0].groups == ["default"]
    assert (given.platforms[0].name, given.platforms[0].image) == ("x", "docker-debian13")


def test_interpolation_forms() -> None:
    env = {"SET": "v", "EMPTY": ""}
    assert interpolate("$SET ${SET} ${UNSET} $$SET", env) == "v v  $SET"
    assert interpolate("${EMPTY:-d} ${EMPTY-d} ${UNSET-d}", env) == "d  d"


@pytest.mark.parametrize(("folder", "meta", "name"), [
    ("ansible-role-motd", "galaxy_info: {namespace: acme, role_name: motd}\n", "acme.motd"),
    ("ansible-role-motd", "galaxy_info: {author: acme, role_name: motd}\n", "acme.motd"),
    ("ansible-role-motd", "galaxy_info: {author: Jane Doe, role_name: motd}\n", "motd"),
    ("ansible-motd", "galaxy_info: {namespace: acme}\n", "acme.motd"),
    ("acme.motd", None, "motd"),
    ("motd", "dependencies: []\n", "motd"),
])
def test_the_role_is_named_as_molecule_names_it(tmp_path: Path, folder: str, meta: str | None,
                                               name: str) -> None:
    project = tmp_path / folder
    project.mkdir()
    if meta is not None:
        (project / "meta").mkdir()
        (project / "meta" / "main.yml").write_text(meta)

    assert role_under_test(project).name == name


def test_a_bad_meta_main_yml_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "main.yml").write_text("galaxy_info: {namespace: 3}\n")

    with pytest.raises(ConfigError, match=r"^meta/main.yml: galaxy_info.namespace: must be a "
                                          "string, got int$"):
        role_under_test(tmp_path)


# the sequence lab runs ------------------------------------------------------------------------


def test_molecule_s_default_sequence(tmp_path: Path) -> None:
    scenario = load_scenario(role(tmp_path, files=("converge.yml", "prepare.yml",
                                                   "tests/test_x.py")))

    todo = plan(scenario)

    assert todo.steps == ["create", "prepare", "converge", "idempotence", "verify"]
    assert todo.destroy
    assert "side_effect: no side_effect.yml in molecule/default, skipped as Molecule skips " \
           "it" in todo.notes
    assert "not run by lab yet: dependency, cleanup, syntax (in scenario.test_sequence)" \
        in todo.notes


def test_the_scenario_s_own_sequence_is_honoured(tmp_path: Path) -> None:
    text = (D + "platforms: [{name: a, image: debian:12}]\nscenario:\n  test_sequence: [destroy, "
            "create, converge, side_effect, verify, idempotence, lint, destroy]\n")
    scenario = load_scenario(role(tmp_path, text, files=("side_effect.yml", "verify.yml")))

    todo = plan(scenario)

    assert todo.steps == ["create", "converge", "side_effect", "verify", "idempotence"]
    assert todo.notes == ["converge: no converge.yml in molecule/default; lab applies role "
                          f"{tmp_path.name} to all instances",
                          "not run by lab yet: lint (in scenario.test_sequence)"]


def test_without_a_final_destroy_the_instances_are_kept(tmp_path: Path) -> None:
    text = D + "platforms: [{name: a, image: debian:12}]\nscenario: {test_sequence: [converge]}\n"
    todo = plan(load_scenario(role(tmp_path, text)))

    assert todo.steps == ["create", "converge"]
    assert not todo.destroy
    assert todo.notes[0].startswith("create: not in scenario.test_sequence")


@pytest.mark.parametrize(("verifier", "files", "note"), [
    ("testinfra", (), "verify: no test_*.py in molecule/default/tests, skipped"),
    ("ansible", (), "verify: no verify.yml in molecule/default, skipped"),
    ("{name: ansible, enabled: false}", ("verify.yml",), "verify: the verifier is disabled"),
])
def test_a_verifier_with_nothing_to_run_is_skipped_with_a_note(tmp_path: Path, verifier: str,
                                                              files: tuple[str, ...],
                                                              note: str) -> None:
    text = D + f"platforms: [{{name: a, image: debian:12}}]\nverifier: {verifier}\n"
    if not verifier.startswith("{"):
        text = D + f"platforms: [{{name: a, image: debian:12}}]\nverifier: {{name: {verifier}}}\n"
    todo = plan(load_scenario(role(tmp_path, text, files=("converge.yml", *files))))

    assert "verify" not in todo.steps
    assert any(n.startswith(note) for n in todo.notes), todo.notes
