"""`lab init`: writes a complete example lab that loads, and never overwrites by surprise."""

from __future__ import annotations

import random
import string
from pathlib import Path

import pytest

from lab.config import LAB_NAME, load_config
from lab.errors import UsageError
from lab.scaffold import example_dir, init_lab, lab_name_for

EXPECTED_FILES = ["lab.yml", "Vagrantfile", "playbooks/web.yml", "tests/test_web.py"]


def relative(paths: list[Path], root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in paths)


def test_init_writes_the_example(tmp_path: Path) -> None:
    lab = tmp_path / "demo"
    written = init_lab(lab)
    assert sorted(relative(written, lab)) == sorted(EXPECTED_FILES)
    assert all(p.is_file() for p in written)
    for name in EXPECTED_FILES[1:]:
        assert (lab / name).read_bytes() == (example_dir() / name).read_bytes()
    text = (lab / "lab.yml").read_text()
    assert "__NAME__" not in text
    assert "name: demo\n" in text


def test_written_lab_loads(tmp_path: Path) -> None:
    lab = tmp_path / "demo"
    init_lab(lab)
    config = load_config(lab / "lab.yml")
    assert config.name == "demo"
    assert config.directory == lab.resolve()
    assert config.servers["web"].playbook == Path("playbooks/web.yml")


def test_explicit_name(tmp_path: Path) -> None:
    init_lab(tmp_path / "Some Dir", name="shop")
    assert load_config(tmp_path / "Some Dir" / "lab.yml").name == "shop"


def test_init_into_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab = tmp_path / "here-lab"
    lab.mkdir()
    monkeypatch.chdir(lab)
    init_lab(Path("."))
    assert load_config("lab.yml").name == "here-lab"


def test_nested_directories_are_made(tmp_path: Path) -> None:
    init_lab(tmp_path / "a" / "b" / "c")
    assert (tmp_path / "a" / "b" / "c" / "playbooks" / "web.yml").is_file()


@pytest.mark.parametrize(
    ("directory", "name"),
    [
        ("demo", "demo"),
        ("My Lab!", "my-lab"),
        ("Web_Server 2", "web-server-2"),
        ("123abc", "abc"),
        ("9 lives", "lives"),
        ("--x--", "x"),
        ("a--b", "a-b"),
        ("---", "demo"),
        ("42", "demo"),
        ("ÄÖÜ", "demo"),
        ("café", "caf"),
        ("a" * 40, "a" * 32),
        ("a" * 31 + "-b", "a" * 31),
        ("x.y.z", "x-y-z"),
    ],
)
def test_name_from_directory(tmp_path: Path, directory: str, name: str) -> None:
    assert lab_name_for(tmp_path / directory) == name
    assert LAB_NAME.match(name)


def test_derived_names_are_always_valid(tmp_path: Path) -> None:
    rng = random.Random(1234)
    alphabet = string.ascii_letters + string.digits + " -_.!$;'\"éß"
    for _ in range(500):
        raw = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 50)))
        name = lab_name_for(tmp_path / raw.replace("/", ""))
        assert LAB_NAME.match(name), (raw, name)


def test_derived_name_loads(tmp_path: Path) -> None:
    lab = tmp_path / "Odd  Name (copy)"
    init_lab(lab)
    assert load_config(lab / "lab.yml").name == "odd-name-copy"


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    lab = tmp_path / "demo"
    init_lab(lab)
    (lab / "lab.yml").write_text("# my own\n")
    (lab / "playbooks" / "web.yml").write_text("# my playbook\n")
    with pytest.raises(UsageError, match="already exists"):
        init_lab(lab)
    assert (lab / "lab.yml").read_text() == "# my own\n"
    assert (lab / "playbooks" / "web.yml").read_text() == "# my playbook\n"


def test_force_overwrites(tmp_path: Path) -> None:
    lab = tmp_path / "demo"
    init_lab(lab)
    (lab / "lab.yml").write_text("# my own\n")
    init_lab(lab, force=True)
    assert load_config(lab / "lab.yml").name == "demo"


@pytest.mark.parametrize("name", ["Bad", "a;rm -rf /", "x\nservers: {}", "../x", "", "a" * 33])
def test_bad_explicit_name_is_refused_before_writing(tmp_path: Path, name: str) -> None:
    lab = tmp_path / "demo"
    with pytest.raises(UsageError, match="lab name must be"):
        init_lab(lab, name=name)
    assert not lab.exists()
