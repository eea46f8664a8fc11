"""lab.yml validation: every bad file gives ONE line naming the file and the field."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from lab.config import DEFAULT_IMAGE, LAB_NAME, ROLE_NAME, LabConfig, load_config
from lab.errors import ConfigError, ExitStatus
from lab.scaffold import example_dir

VALID = "name: demo\nservers:\n  web: {}\n"


@pytest.fixture
def lab_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty lab directory that is also the working directory, so the label is lab.yml."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def config_error(lab_dir: Path, text: str) -> str:
    """Write ``text`` as lab.yml, load it and return the error message (which must come)."""
    (lab_dir / "lab.yml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config("lab.yml")
    message = str(caught.value)
    assert caught.value.exit_code == ExitStatus.BAD_INPUT == 2
    assert "\n" not in message and "\r" not in message, f"not one line: {message!r}"
    assert "\x1b" not in message, f"raw escape sequence in {message!r}"
    assert "Traceback" not in message
    return message


# One bad thing per file: (id, lab.yml, field the message must name, words it must contain).
FIELD_CASES = [
    # missing or empty required fields
    ("no-name", "servers: {web: {}}\n", "name", "is required"),
    ("no-servers", "name: demo\n", "servers", "is required"),
    ("servers-empty", "name: demo\nservers: {}\n", "servers", "at least 1"),
    ("servers-null", "name: demo\nservers:\n", "servers", "must be a mapping"),
    # wrong types
    ("servers-list", "name: demo\nservers: [web]\n", "servers", "must be a mapping, got a list"),
    ("role-string", "name: demo\nservers: {web: big}\n", "servers.web", "must be a mapping"),
    ("role-null", "name: demo\nservers: {web: }\n", "servers.web", "must be a mapping"),
    ("name-int", "name: 42\nservers: {web: {}}\n", "name", "must be a string, got 42"),
    ("name-empty", "name:\nservers: {web: {}}\n", "name", "must be a string, got nothing"),
    ("name-list", "name: [a]\nservers: {web: {}}\n", "name", "must be a string"),
    ("name-date", "name: 2024-01-01\nservers: {web: {}}\n", "name", "must be a string"),
    ("count-word", "name: demo\nservers: {web: {count: two}}\n", "servers.web.count",
     "must be a whole number, got 'two'"),
    ("count-quoted", "name: demo\nservers: {web: {count: '2'}}\n", "servers.web.count",
     "must be a whole number"),
    ("count-float", "name: demo\nservers: {web: {count: 2.5}}\n", "servers.web.count",
     "must be a whole number, got 2.5"),
    ("count-bool", "name: demo\nservers: {web: {count: true}}\n", "servers.web.count",
     "must be a whole number, got True"),
    ("count-yaml11-on", "name: demo\nservers: {web: {count: on}}\n", "servers.web.count",
     "must be a whole number"),
    ("count-list", "name: demo\nservers: {web: {count: [2]}}\n", "servers.web.count",
     "must be a whole number"),
    ("ports-scalar", "name: demo\nservers: {web: {ports: 80}}\n", "servers.web.ports",
     "must be a list, got 80"),
    ("tests-string", "name: demo\nservers: {web: {tests: t.py}}\n", "servers.web.tests",
     "must be a list"),
    ("vars-list", "name: demo\nservers: {web: {}}\nvars: [1]\n", "vars", "must be a mapping"),
    ("release-null", "name: demo\nservers: {web: {}}\nrelease:\n", "release", "must be a mapping"),
    ("image-int", "name: demo\nservers: {web: {}}\nimage: 5\n", "image", "must be a string"),
    ("target-unknown", "name: demo\ntarget: k8s\nservers: {web: {}}\n", "target",
     "must be one of 'docker', 'vagrant' or 'aws', got 'k8s'"),
    ("balancer-kind", "name: demo\nservers: {web: {}}\nbalancer: {kind: nginx, routes_to: web}\n",
     "balancer.kind", "must be one of 'alb', 'haproxy'"),
    ("listen-quoted", "name: demo\nservers: {web: {}}\n"
     "balancer: {listen: '8080', routes_to: web}\n",
     "balancer.listen", "must be a whole number"),
    # counts and ports out of range
    ("count-zero", "name: demo\nservers: {web: {count: 0}}\n", "servers.web.count",
     "must be >= 1, got 0"),
    ("count-negative", "name: demo\nservers: {web: {count: -3}}\n", "servers.web.count",
     "must be >= 1, got -3"),
    ("count-too-many", "name: demo\nservers: {web: {count: 21}}\n", "servers.web.count",
     "must be <= 20, got 21"),
    ("count-huge", "name: demo\nservers: {web: {count: 99999999999999999999999}}\n",
     "servers.web.count", "must be <= 20"),
    ("port-zero", "name: demo\nservers: {web: {ports: [80, 0]}}\n", "servers.web.ports[1]",
     "must be >= 1, got 0"),
    ("port-too-big", "name: demo\nservers: {web: {ports: [65536]}}\n", "servers.web.ports[0]",
     "must be <= 65535, got 65536"),
    ("port-negative", "name: demo\nservers: {web: {ports: [-80]}}\n", "servers.web.ports[0]",
     "must be >= 1"),
    ("port-name", "name: demo\nservers: {web: {ports: [http]}}\n", "servers.web.ports[0]",
     "must be a whole number, got 'http'"),
    ("port-bool", "name: demo\nservers: {web: {ports: [true]}}\n", "servers.web.ports[0]",
     "must be a whole number"),
    ("port-float", "name: demo\nservers: {web: {ports: [80.0]}}\n", "servers.web.ports[0]",
     "must be a whole number"),
    ("health-port", "name: demo\nservers: {web: {health: {port: 0}}}\n",
     "servers.web.health.port", "must be >= 1"),
    ("health-path", "name: demo\nservers: {web: {health: {path: health}}}\n",
     "servers.web.health.path", "starting with '/'"),
    ("health-path-space", "name: demo\nservers: {web: {health: {path: '/a b'}}}\n",
     "servers.web.health.path", "starting with '/'"),
    ("listen-privileged", "name: demo\nservers: {web: {}}\n"
     "balancer: {listen: 80, routes_to: web}\n",
     "balancer.listen", "must be >= 1024, got 80"),
    ("listen-too-big", "name: demo\nservers: {web: {}}\n"
     "balancer: {listen: 70000, routes_to: web}\n",
     "balancer.listen", "must be <= 65535"),
    # unknown keys, at every level
    ("unknown-top", "name: demo\nservers: {web: {}}\nsevrers: 1\n", "sevrers", "unknown field"),
    ("unknown-role", "name: demo\nservers: {web: {cuont: 2}}\n", "servers.web.cuont",
     "unknown field"),
    ("unknown-health", "name: demo\nservers: {web: {health: {url: /}}}\n",
     "servers.web.health.url", "unknown field"),
    ("unknown-balancer", "name: demo\nservers: {web: {}}\nbalancer: {routes_to: web, tls: 1}\n",
     "balancer.tls", "unknown field"),
    ("unknown-release", "name: demo\nservers: {web: {}}\nrelease: {stepz: [100]}\n",
     "release.stepz", "unknown field"),
    ("directory-is-not-a-field", "name: demo\nservers: {web: {}}\ndirectory: /etc\n", "directory",
     "unknown field"),
    # release steps
    ("steps-not-to-100", "name: demo\nservers: {web: {}}\nrelease: {steps: [10, 50]}\n",
     "release.steps", "end at 100, got [10, 50]"),
    ("steps-falling", "name: demo\nservers: {web: {}}\nrelease: {steps: [50, 10, 100]}\n",
     "release.steps", "must rise strictly"),
    ("steps-repeated", "name: demo\nservers: {web: {}}\nrelease: {steps: [50, 50, 100]}\n",
     "release.steps", "must rise strictly"),
    ("steps-zero", "name: demo\nservers: {web: {}}\nrelease: {steps: [0, 100]}\n",
     "release.steps", "percentage from 1 to 100"),
    ("steps-over-100", "name: demo\nservers: {web: {}}\nrelease: {steps: [50, 150]}\n",
     "release.steps", "percentage from 1 to 100"),
    ("steps-empty", "name: demo\nservers: {web: {}}\nrelease: {steps: []}\n", "release.steps",
     "at least 1"),
    ("steps-scalar", "name: demo\nservers: {web: {}}\nrelease: {steps: 100}\n", "release.steps",
     "must be a list"),
    ("steps-word", "name: demo\nservers: {web: {}}\nrelease: {steps: [ten, 100]}\n",
     "release.steps[0]", "must be a whole number"),
    ("steps-bool", "name: demo\nservers: {web: {}}\nrelease: {steps: [true, 100]}\n",
     "release.steps[0]", "must be a whole number"),
    ("step-seconds-zero", "name: demo\nservers: {web: {}}\nrelease: {step_seconds: 0}\n",
     "release.step_seconds", "must be > 0"),
    ("step-seconds-inf", "name: demo\nservers: {web: {}}\nrelease: {step_seconds: .inf}\n",
     "release.step_seconds", "must be <= 3600"),
    ("error-rate-above-1", "name: demo\nservers: {web: {}}\nrelease: {max_error_rate: 2}\n",
     "release.max_error_rate", "must be <= 1"),
    ("error-rate-nan", "name: demo\nservers: {web: {}}\nrelease: {max_error_rate: .nan}\n",
     "release.max_error_rate", "must be"),
    ("error-rate-bool", "name: demo\nservers: {web: {}}\nrelease: {max_error_rate: yes}\n",
     "release.max_error_rate", "must be a number"),
    ("pause-first", "name: demo\nservers: {web: {}}\nrelease: {steps: [pause, 100]}\n",
     "release.steps", "a pause holds the share of the step before it"),
    ("pause-zero", "name: demo\nservers: {web: {}}\nrelease: {steps: [50, {pause: 0s}, 100]}\n",
     "release.steps[1]", "a pause lasts from 1s to 24h"),
    ("pause-unit", "name: demo\nservers: {web: {}}\nrelease: {steps: [50, {pause: 3x}, 100]}\n",
     "release.steps[1]", "a pause lasts from 1s to 24h (30s, 5m, 1h), got '3x'"),
    ("step-word", "name: demo\nservers: {web: {}}\nrelease: {steps: [50, wait, 100]}\n",
     "release.steps[1]", "must be a whole number (a percent), pause or {pause: 30s}, got 'wait'"),
    ("pause-last-no-100", "name: demo\nservers: {web: {}}\nrelease: {steps: [50, pause]}\n",
     "release.steps", "must rise strictly and end at 100, got [50]"),
    ("p99-zero", "name: demo\nservers: {web: {}}\nrelease: {max_p99_ms: 0}\n",
     "release.max_p99_ms", "must be > 0"),
    ("p99-inf", "name: demo\nservers: {web: {}}\nrelease: {max_p99_ms: .inf}\n",
     "release.max_p99_ms", "must be <= 600000"),
    ("p99-ratio-below-1", "name: demo\nservers: {web: {}}\nrelease: {max_p99_ratio: 0.5}\n",
     "release.max_p99_ratio", "must be >= 1"),
    ("min-requests-negative", "name: demo\nservers: {web: {}}\nrelease: {min_requests: -1}\n",
     "release.min_requests", "must be >= 0"),
    ("inconclusive-word", "name: demo\nservers: {web: {}}\nrelease: {inconclusive: shrug}\n",
     "release.inconclusive", "'fail'"),
    # the balancer must route to a role that exists
    ("routes-to-no-role", "name: demo\nservers: {web: {}}\nbalancer: {routes_to: db}\n",
     "balancer.routes_to", "must name a role in servers (web), got 'db'"),
    ("routes-to-missing", "name: demo\nservers: {web: {}}\nbalancer: {listen: 8080}\n",
     "balancer.routes_to", "is required"),
    # files named by a role must exist
    ("playbook-missing", "name: demo\nservers: {web: {playbook: playbooks/nope.yml}}\n",
     "servers.web.playbook", "file not found: playbooks/nope.yml"),
    ("playbook-is-a-directory", "name: demo\nservers: {web: {playbook: .}}\n",
     "servers.web.playbook", "file not found"),
    ("tests-missing", "name: demo\nservers: {web: {tests: [tests/nope.py]}}\n",
     "servers.web.tests[0]", "file not found: tests/nope.py"),
]


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [pytest.param(text, field, words, id=case) for case, text, field, words in FIELD_CASES],
)
def test_bad_field_is_named_on_one_line(lab_dir: Path, text: str, field: str, words: str) -> None:
    message = config_error(lab_dir, text)
    assert message.startswith(f"lab.yml: {field}: "), message
    assert words in message, message


def test_count_zero_message_is_exact(lab_dir: Path) -> None:
    message = config_error(lab_dir, "name: demo\nservers:\n  web:\n    count: 0\n")
    assert message == "lab.yml: servers.web.count: must be >= 1, got 0"


@pytest.mark.parametrize(
    "name",
    [
        "a;rm -rf /",
        "../x",
        "..",
        "a/b",
        "Web",
        "DEMO",
        "$(id)",
        "`id`",
        "a b",
        "a\tb",
        "ab\n",  # '$' in a regex also matches before a final newline
        "-a",
        "a-",
        "1abc",
        "a_b",
        "a.b",
        "café",
        "",
        "a" * 33,
    ],
)
def test_unsafe_lab_name_is_refused(lab_dir: Path, name: str) -> None:
    quoted = name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace(
        "\t", "\\t"
    )
    message = config_error(lab_dir, f'name: "{quoted}"\nservers: {{web: {{}}}}\n')
    assert message.startswith("lab.yml: name: must be 1-32 lowercase letters"), message
    assert repr(name) in message, message
    assert not LAB_NAME.match(name)


@pytest.mark.parametrize("name", ["a", "ab", "a1", "my-lab", "a" * 32, "x-1-y"])
def test_safe_lab_names_are_accepted(lab_dir: Path, name: str) -> None:
    (lab_dir / "lab.yml").write_text(f"name: {name}\nservers: {{web: {{}}}}\n")
    assert load_config("lab.yml").name == name


@pytest.mark.parametrize(
    "role",
    ["web-1", "Web", "1web", "_web", "we b", "wéb", "web\n", "web;id", "a" * 21],
)
def test_bad_role_name_is_refused(lab_dir: Path, role: str) -> None:
    quoted = role.replace("\n", "\\n")
    message = config_error(lab_dir, f'name: demo\nservers:\n  "{quoted}": {{}}\n')
    assert message.startswith("lab.yml: servers: role names must be"), message
    assert repr(role) in message, message
    assert not ROLE_NAME.match(role)


def test_role_name_that_is_a_number_is_refused(lab_dir: Path) -> None:
    message = config_error(lab_dir, "name: demo\nservers:\n  1: {}\n")
    assert message.startswith("lab.yml: servers"), message
    assert "must be a string" in message


@pytest.mark.parametrize(
    ("key", "shown"),
    [("a\nb", "'a\\nb'"), ("a\rb", "'a\\rb'"), ("\x1b[31mred", "'\\x1b[31mred'")],
)
def test_hostile_unknown_key_is_quoted_not_printed_raw(lab_dir: Path, key: str,
                                                       shown: str) -> None:
    escaped = key.encode("unicode_escape").decode().replace("\\x1b", "\\e")
    message = config_error(lab_dir, f'name: demo\nservers: {{web: {{}}}}\n"{escaped}": 1\n')
    assert message.startswith(f"lab.yml: {shown}: unknown field"), message


def test_two_problems_report_the_first_and_count_the_rest(lab_dir: Path) -> None:
    message = config_error(lab_dir, "name: Demo\nservers: {web: {count: 0, ports: [0]}}\n")
    assert message.startswith("lab.yml: name: "), message
    assert message.endswith("(and 2 more problems)"), message


# Whole-file problems: the message names the file (and the line for YAML errors).


@pytest.mark.parametrize(
    ("text", "start"),
    [
        pytest.param("", "lab.yml: must be a mapping of fields, got nothing", id="empty"),
        pytest.param("# only a comment\n", "lab.yml: must be a mapping of fields, got nothing",
                     id="comment-only"),
        pytest.param("- name: demo\n- servers: {}\n",
                     "lab.yml: must be a mapping of fields, got a list", id="list"),
        pytest.param("just a string\n", "lab.yml: must be a mapping of fields, got a string",
                     id="string"),
        pytest.param("42\n", "lab.yml: must be a mapping of fields, got 42", id="number"),
    ],
)
def test_file_that_is_not_a_mapping(lab_dir: Path, text: str, start: str) -> None:
    assert config_error(lab_dir, text) == start


@pytest.mark.parametrize(
    ("text", "where"),
    [
        pytest.param("name: [unclosed\nservers: {}\n", "lab.yml:2:8", id="unclosed-list"),
        pytest.param("name: demo\n\tservers: {}\n", "lab.yml:2:1", id="tab-indent"),
        pytest.param("name: demo\n  servers: {web: {}}\n", "lab.yml:2:10", id="bad-indent"),
        pytest.param("name: demo\nservers: {web: {}}\n---\nname: other\n", "lab.yml:3:1",
                     id="two-documents"),
    ],
)
def test_invalid_yaml_names_file_line_and_column(lab_dir: Path, text: str, where: str) -> None:
    message = config_error(lab_dir, text)
    assert message.startswith(f"{where}: invalid YAML: "), message


def test_yaml_tags_are_not_executed(lab_dir: Path) -> None:
    marker = lab_dir / "pwned"
    message = config_error(
        lab_dir, f"!!python/object/apply:os.system ['touch {marker}']\n"
    )
    assert message.startswith("lab.yml:1:1: invalid YAML: could not determine a constructor")
    assert not marker.exists()


def test_file_that_is_not_utf8(lab_dir: Path) -> None:
    (lab_dir / "lab.yml").write_bytes(b"\xff\xfename: demo\n")
    with pytest.raises(ConfigError) as caught:
        load_config("lab.yml")
    assert str(caught.value).startswith("lab.yml: cannot be read: ")
    assert "\n" not in str(caught.value)


def test_missing_file_says_how_to_make_one(lab_dir: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config("lab.yml")
    assert str(caught.value) == "lab.yml: not found (run `lab init` to create an example lab)"


def test_directory_instead_of_file_is_not_found(lab_dir: Path) -> None:
    (lab_dir / "lab.yml").mkdir()
    with pytest.raises(ConfigError, match=r"^lab\.yml: not found"):
        load_config("lab.yml")


def test_file_elsewhere_is_named_by_its_path(lab_dir: Path) -> None:
    (lab_dir / "sub").mkdir()
    (lab_dir / "sub" / "lab.yml").write_text("name: demo\nservers: {web: {count: 0}}\n")
    with pytest.raises(ConfigError) as caught:
        load_config("sub/lab.yml")
    assert str(caught.value) == "sub/lab.yml: servers.web.count: must be >= 1, got 0"


def test_target_override_is_validated_like_the_file(lab_dir: Path) -> None:
    (lab_dir / "lab.yml").write_text(VALID)
    assert load_config("lab.yml", target="vagrant").target == "vagrant"
    with pytest.raises(ConfigError, match=r"^lab\.yml: target: must be one of"):
        load_config("lab.yml", target="k8s")


# Valid files.


def test_minimal_config_gets_defaults(lab_dir: Path) -> None:
    (lab_dir / "lab.yml").write_text(VALID)
    config = load_config("lab.yml")
    assert isinstance(config, LabConfig)
    assert config.name == "demo"
    assert config.target == "docker"
    assert config.image == DEFAULT_IMAGE
    assert list(config.servers) == ["web"]
    web = config.servers["web"]
    assert (web.count, web.playbook, web.tests, web.ports, web.health) == (1, None, [], [], None)
    assert config.balancer is None
    assert config.release.steps == [10, 50, 100]
    assert config.vars == {}
    assert config.directory == lab_dir.resolve()
    assert config.state_dir == lab_dir.resolve() / ".lab"


def test_full_config_is_read_as_written(lab_dir: Path) -> None:
    (lab_dir / "play.yml").write_text("- hosts: all\n")
    (lab_dir / "t").mkdir()
    (lab_dir / "t" / "test_a.py").write_text("")
    (lab_dir / "lab.yml").write_text(
        """
name: shop-2
target: docker
image: example/image:1
servers:
  web:
    count: 3
    playbook: play.yml
    tests: [t/test_a.py]
    ports: [80, 443]
    health: {path: /healthz, port: 8081}
  db_main: {count: 1}
balancer: {kind: haproxy, listen: 9090, routes_to: web}
release: {steps: [25, 100], step_seconds: 0.5, max_error_rate: 0}
vars: {version: v2, nested: {a: [1, 2]}}
"""
    )
    config = load_config("lab.yml")
    assert config.name == "shop-2"
    assert config.image == "example/image:1"
    assert list(config.servers) == ["web", "db_main"]
    web = config.servers["web"]
    assert web.count == 3
    assert web.playbook == Path("play.yml")
    assert web.tests == [Path("t/test_a.py")]
    assert web.ports == [80, 443]
    assert web.health is not None and (web.health.path, web.health.port) == ("/healthz", 8081)
    assert config.balancer is not None
    assert (config.balancer.listen, config.balancer.routes_to) == (9090, "web")
    assert config.release.steps == [25, 100]
    assert config.release.step_seconds == 0.5
    assert config.release.max_error_rate == 0
    assert config.vars == {"version": "v2", "nested": {"a": [1, 2]}}


def test_example_lab_is_valid(lab_dir: Path) -> None:
    for source in example_dir().rglob("*"):
        if source.is_file() and "__pycache__" not in source.parts:
            target = lab_dir / source.relative_to(example_dir())
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    text = (lab_dir / "lab.yml").read_text().replace("__NAME__", "example")
    (lab_dir / "lab.yml").write_text(text)
    config = load_config("lab.yml")
    assert config.name == "example"
    assert config.servers["web"].count == 2
    assert config.release.steps[-1] == 100


def test_config_is_frozen(lab_dir: Path) -> None:
    (lab_dir / "lab.yml").write_text(VALID)
    config = load_config("lab.yml")
    with pytest.raises(ValueError):
        config.name = "other"  # type: ignore[misc]


def test_a_lab_beside_keeps_the_files_and_moves_name_state_and_port(tmp_path: Path) -> None:
    """What `lab test` runs on: the same lab.yml, under another name, state and port."""
    config = LabConfig.model_validate({"name": "shop", "servers": {"web": {}},
                                       "balancer": {"routes_to": "web", "listen": 8080}})
    config.located(tmp_path)

    beside = config.beside("shop-t", tmp_path / "other", listen=9191)
    same_port = config.beside("shop-u", tmp_path / "third")

    assert (beside.name, beside.directory, beside.state_dir) == (
        "shop-t", tmp_path, tmp_path / "other")
    assert beside.balancer is not None and beside.balancer.listen == 9191
    assert beside.balancer.routes_to == "web"
    assert same_port.balancer == config.balancer and same_port.state_dir == tmp_path / "third"
    assert (config.name, config.state_dir) == ("shop", tmp_path / ".lab")  # untouched


def test_choices_are_listed_as_a_person_writes_them() -> None:
    from lab.config import _one_of

    assert _one_of(["docker"]) == "'docker'"
    assert _one_of(["docker", "aws"]) == "'docker' or 'aws'"
    assert _one_of(["docker", "aws", "vagrant"]) == "'docker', 'aws' or 'vagrant'"


@pytest.mark.parametrize(("data", "message"), [
    ({"servers": {"web": {"count": datetime.date(2026, 1, 1)}}},
     "servers.web.count: must be a whole number, got 2026-01-01"),  # YAML's date, as written
    ({"servers": {"web": {"playbook": 5}}},
     "servers.web.playbook: input is not a valid path for <class 'pathlib.Path'>, got 5"),
])
def test_messages_show_the_value_as_written(data: dict, message: str) -> None:
    from pydantic import ValidationError

    from lab.config import describe

    with pytest.raises(ValidationError) as caught:
        LabConfig.model_validate({"name": "a", **data})
    assert describe(caught.value) == message


def test_long_values_are_cut_at_sixty_characters() -> None:
    from lab.config import _short

    assert _short("x" * 58) == repr("x" * 58)  # 60 characters with its quotes: whole
    assert _short("x" * 59) == repr("x" * 59)[:57] + "..."


def test_a_role_without_a_health_check_is_checked_on_its_first_port() -> None:
    from lab.config import HealthCheck

    config = LabConfig.model_validate({"name": "a", "servers": {
        "web": {"ports": [8080, 9090]}, "db": {}}})
    assert config.health_of("web") == HealthCheck(path="/", port=8080)
    assert config.health_of("db") == HealthCheck(path="/", port=80)


def test_a_file_yaml_cannot_even_read_is_named_without_a_position(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A control character stops YAML's reader, whose error has no line or problem."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lab.yml").write_text("name: a\x07\n")

    with pytest.raises(ConfigError) as caught:
        load_config("lab.yml")

    assert str(caught.value) == "lab.yml: invalid YAML: not valid YAML"


def test_a_name_that_is_no_target_is_no_attribute() -> None:
    config = LabConfig.model_validate({"name": "a", "servers": {"web": {}}})

    with pytest.raises(AttributeError):
        config.nosuch  # noqa: B018
    assert config.vagrant is not None  # a registered target's settings, its defaults
