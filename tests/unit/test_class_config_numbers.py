"""class.yml's whole numbers (exercise numbers, the page's port) are read as pydantic's lax
integers, unlike lab.yml's strict ones: text that is no number and a number with a fraction
come back as pydantic's int_parsing and int_from_float, and read as lab.yml's do."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lab.classroom.config import load_class
from lab.errors import ConfigError


@pytest.mark.parametrize(("fields", "says"), [
    ({"exercises": [1, "3x"]}, "exercises[1]: must be a whole number, got '3x'"),
    ({"exercises": [2.5]}, "exercises[0]: must be a whole number, got 2.5"),
    ({"serve": {"port": "80x"}}, "serve.port: must be a whole number, got '80x'"),
    ({"serve": {"port": 8760.5}}, "serve.port: must be a whole number, got 8760.5"),
])
def test_a_number_that_is_not_whole_is_named_with_what_was_given(
        tmp_path: Path, fields: dict[str, object], says: str) -> None:
    data = {"name": "autumn", "code": "k7f3-q9x2", "students": ["alice"],
            "exercises": [1, 2]} | fields
    (tmp_path / "class.yml").write_text(yaml.safe_dump(data))

    with pytest.raises(ConfigError) as caught:
        load_class(tmp_path)

    assert str(caught.value) == f"{tmp_path / 'class.yml'}: {says}"
