"""The ``registration.yaml`` at the repository root, and the placeholder tokens the bridge
refuses to start with (it says to run ``-g``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from bridge import cli, registration
from bridge.config import is_placeholder, load
from tests.test_config import example, write

REPO = Path(__file__).resolve().parents[1]
TOKENS = ("as_token", "hs_token")


def test_registration_file_matches_the_example_config() -> None:
    shipped: dict[str, Any] = YAML(typ="safe").load((REPO / "registration.yaml").read_text())
    built = registration.build(load(str(REPO / "example-config.yaml"), {}, need_tokens=False))
    for name in TOKENS:
        assert is_placeholder(shipped.pop(name))
        built.pop(name)
    assert shipped == built


PLACEHOLDERS = [
    "generate", "GENERATE", "", "   ", "changeme", "CHANGE_ME", "replace-me", "<as_token>",
    "${AS_TOKEN}", "{{ as_token }}", "...", "xxx", "TODO",
]  # fmt: skip


@pytest.mark.parametrize("name", TOKENS)
@pytest.mark.parametrize("token", PLACEHOLDERS)
def test_placeholder_tokens_are_refused_naming_the_key_and_g(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, token: str
) -> None:
    data = example(lambda d: d["appservice"].__setitem__(name, token))
    path = write(tmp_path / "config.yaml", data)
    assert cli.main(["-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"'appservice.{name}'" in err
    assert "-g" in err
    assert not (tmp_path / "bridge.db").exists()


def test_generated_and_ordinary_tokens_are_no_placeholders() -> None:
    assert not is_placeholder(registration.new_token())
    assert not is_placeholder("as-token-0123456789")
    assert not is_placeholder("syt_YWRtaW4_abcdefghijklmnop_0a1b2c")
