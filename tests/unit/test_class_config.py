"""class.yml: its defaults and validation, `lab class init`, and the class commands' errors
for bad input (exit 2, one line) that come before any server is touched."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from lab.classroom.config import (
    DEFAULT_PORT,
    exercise_numbers,
    load_class,
    new_code,
    write_class,
)
from lab.cli import app
from lab.course.exercises import course
from lab.errors import ConfigError, UsageError

runner = CliRunner(env={"LAB_FILE": None})


def write(tmp_path: Path, **fields: object) -> Path:
    data = {"name": "autumn", "code": "k7f3-q9x2", "students": ["alice", "bob"],
            "exercises": [1, 2]} | fields
    (tmp_path / "class.yml").write_text(yaml.safe_dump({k: v for k, v in data.items()
                                                        if v is not None}))
    return tmp_path


def test_defaults(tmp_path: Path) -> None:
    classroom = load_class(write(tmp_path))
    spec = classroom.spec
    assert (spec.target, spec.serve.host, spec.serve.port) == ("docker", "127.0.0.1",
                                                                DEFAULT_PORT)
    assert classroom.workspace("alice") == tmp_path.resolve() / "alice"
    assert load_class(tmp_path / "class.yml").directory == tmp_path.resolve()


def test_a_count_of_students_names_them(tmp_path: Path) -> None:
    spec = load_class(write(tmp_path, students=3)).spec
    assert spec.students == ["student-01", "student-02", "student-03"]


@pytest.mark.parametrize(("fields", "says"), [
    ({"students": 0}, "students: a count of students is 1 to 200, got 0"),
    ({"students": 201}, "1 to 200, got 201"),
    ({"students": ["alice", "Bob"]}, "got 'Bob'"),
    ({"students": ["alice", "bob smith"]}, "got 'bob smith'"),
    ({"students": ["alice", "../etc"]}, "got '../etc'"),
    ({"students": ["alice", "alice"]}, "two students have the same name"),
    ({"students": []}, "students: must have at least 1 item"),
    ({"code": None}, "code: is required"),
    ({"code": "abc"}, "code:"),
    ({"exercises": []}, "exercises: must have at least 1 item"),
    ({"serve": {"port": 80}}, "serve.port: must be >= 1024"),
    ({"seats": 3}, "seats: unknown field"),
])
def test_a_bad_class_yml_names_the_field(tmp_path: Path, fields: dict, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_class(write(tmp_path, **fields))
    assert str(caught.value).startswith(f"{tmp_path / 'class.yml'}: ")
    assert says in str(caught.value)


def test_write_class_has_a_fresh_code_and_never_overwrites(tmp_path: Path) -> None:
    first = write_class(tmp_path, "autumn", 2, [1])
    second = write_class(tmp_path / "other", "autumn", 2, [1])
    assert first.spec.code != second.spec.code
    assert load_class(tmp_path).spec == first.spec  # what was written loads back the same
    with pytest.raises(UsageError, match="already exists"):
        write_class(tmp_path, "autumn", 3, [1])
    assert load_class(tmp_path).spec.code == first.spec.code


def test_new_codes_are_easy_to_read_out() -> None:
    codes = {new_code() for _ in range(50)}
    assert len(codes) == 50
    for code in codes:
        assert len(code) == 9 and code[4] == "-"
        assert not set(code) & set("01ilo")


def test_exercise_numbers() -> None:
    every = [e.number for e in course()]
    assert exercise_numbers(None) == every
    assert exercise_numbers("1-8") == [n for n in every if n <= 8]
    assert exercise_numbers("2,1,2") == [2, 1]
    with pytest.raises(UsageError, match="no exercise 99"):
        exercise_numbers("99")
    with pytest.raises(UsageError, match="--exercises"):
        exercise_numbers("one")
    with pytest.raises(UsageError, match="no exercise in 90-99"):
        exercise_numbers("90-99")


# the CLI's errors ----------------------------------------------------------------------------


def test_init_writes_class_yml_and_refuses_a_second(tmp_path: Path) -> None:
    done = runner.invoke(app, ["class", "init", str(tmp_path), "--students", "alice,bob",
                               "--exercises", "1-2", "--name", "autumn"])
    assert done.exit_code == 0, done.output
    spec = load_class(tmp_path).spec
    assert (spec.name, spec.students, spec.exercises) == ("autumn", ["alice", "bob"], [1, 2])
    assert spec.code in done.output
    again = runner.invoke(app, ["class", "init", str(tmp_path), "--count", "3"])
    assert again.exit_code == 2
    assert "already exists" in again.output
    assert load_class(tmp_path).spec == spec


@pytest.mark.parametrize("args", [
    ["--students", "alice,Bob"], ["--students", "a", "--count", "2"], ["--count", "0"],
    ["--exercises", "99"], ["--target", "aws"],
])
def test_init_refuses_bad_input(tmp_path: Path, args: list[str]) -> None:
    result = runner.invoke(app, ["class", "init", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "class.yml").exists()


@pytest.mark.parametrize("command", [["up"], ["destroy"], ["reset", "alice"]])
def test_a_bad_class_yml_is_one_line_and_exit_2(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "class.yml").write_text("name: autumn\nstudents: [alice]\nexercises: [1]\n")
    result = runner.invoke(app, ["class", *command, str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == f"error: {tmp_path / 'class.yml'}: code: is required"


def test_an_unknown_student_is_exit_2_naming_the_known_ones(tmp_path: Path) -> None:
    write(tmp_path)
    for command in (["reset", "dave", str(tmp_path)],
                    ["up", str(tmp_path), "--students", "alice,dave"]):
        result = runner.invoke(app, ["class", *command])
        assert result.exit_code == 2, result.output
        assert "no student 'dave'" in result.output
        assert "(students: alice, bob)" in result.output


def test_reset_of_a_student_without_a_workspace_says_how_to_make_it(tmp_path: Path) -> None:
    write(tmp_path)
    result = runner.invoke(app, ["class", "reset", "bob", str(tmp_path)])
    assert result.exit_code == 2
    assert "lab class up --students bob" in result.output


def test_an_exercise_outside_the_class_is_refused(tmp_path: Path) -> None:
    write(tmp_path)
    result = runner.invoke(app, ["class", "up", str(tmp_path), "--exercise", "3"])
    assert result.exit_code == 2
    assert "class.yml exercises: 1, 2" in result.output
