"""Each kind of mistake in lab.yml, and the one line that names it (lab/config.py's
``describe``): the field's path, what was expected, what was found, how many more problems."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.config import load_config
from lab.errors import ConfigError

WEB = "name: c\nservers: {web: {}}\n"
MISTAKES = {
    "text for a number": ("name: c\nservers: {web: {count: x}}\n",
                          "servers.web.count: must be a whole number, got 'x'"),
    "a fraction for a count": ("name: c\nservers: {web: {count: 2.5}}\n",
                               "servers.web.count: must be a whole number, got 2.5"),
    "too many": ("name: c\nservers: {web: {count: 21}}\n",
                 "servers.web.count: must be <= 20, got 21"),
    "a step of no time": (WEB + "release: {step_seconds: 0}\n",
                          "release.step_seconds: must be > 0.0, got 0"),
    "a negative rate": (WEB + "release: {max_error_rate: -0.5}\n",
                        "release.max_error_rate: must be >= 0.0, got -0.5"),
    "text for a rate": (WEB + "release: {max_error_rate: lots}\n",
                        "release.max_error_rate: must be a number, got 'lots'"),
    "one bad step": (WEB + "release: {steps: [10, x, 100]}\n",
                     "release.steps[1]: must be a whole number (a percent), pause or "
                     "{pause: 30s}, got 'x'"),
    "no steps": (WEB + "release: {steps: []}\n",
                 "release.steps: must have at least 1 item(s), got a list"),
    "a step out of range": (WEB + "release: {steps: [0, 100]}\n",
                            "release.steps: each step must be a percentage from 1 to 100, "
                            "got [0, 100]"),
    "one test for a list": ("name: c\nservers: {web: {tests: a.py}}\n",
                            "servers.web.tests: must be a list, got 'a.py'"),
    "a list of roles": ("name: c\nservers: [web]\n", "servers: must be a mapping, got a list"),
    "no roles": ("name: c\nservers: {}\n",
                 "servers: must have at least 1 item(s), got a mapping"),
    "a number for a name": ("name: 5\nservers: {web: {}}\n", "name: must be a string, got 5"),
    "a port out of range": ("name: c\nservers: {web: {ports: [70000]}}\n",
                            "servers.web.ports[0]: must be <= 65535, got 70000"),
    "a relative health path": ("name: c\nservers: {web: {health: {path: health}}}\n",
                               "servers.web.health.path: must be a URL path starting with '/', "
                               "got 'health'"),
    "an unknown provider": (WEB + "vagrant: {provider: qemu}\n",
                            "vagrant.provider: must be one of 'docker', 'virtualbox' or "
                            "'libvirt', got 'qemu'"),
    "a key with a newline": (WEB + '"a\\nb": 1\n',
                             "'a\\nb': unknown field (check its spelling; `lab init` writes a "
                             "complete example)"),
    "two problems": ("name: c\nservers: {web: {count: 0, ports: x}}\n",
                     "servers.web.count: must be >= 1, got 0 (and 1 more problem)"),
    "three problems": ("name: c\nservers: {web: {count: 0, ports: x, tests: y}}\n",
                       "servers.web.count: must be >= 1, got 0 (and 2 more problems)"),
    "a long value": (f"name: c\nservers: {{web: {{count: {'x' * 80}}}}}\n",
                     f"servers.web.count: must be a whole number, got '{'x' * 56}..."),
}


@pytest.mark.parametrize(("text", "message"), list(MISTAKES.values()), ids=list(MISTAKES))
def test_each_mistake_is_one_line_naming_the_field(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    Path("lab.yml").write_text(text)

    with pytest.raises(ConfigError) as caught:
        load_config(Path("lab.yml"))

    assert str(caught.value) == f"lab.yml: {message}"
