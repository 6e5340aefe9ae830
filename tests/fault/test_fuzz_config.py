"""Property tests of the config loader: any file - arbitrary bytes, arbitrary YAML, the example
config with hostile values (any type, YAML dates and binaries, huge numbers, deep nesting) in
any key - is either loaded or refused with a ``ConfigError`` that names a key; never another
exception (which the command line would show as a traceback)."""

from __future__ import annotations

import datetime
import io
import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ruamel.yaml import YAML

from bridge.cli import main
from bridge.config import ConfigError, load

from .fuzz_support import fuzz_settings, json_values, mutate

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = (REPO / "example-config.yaml").read_text()
NO_ENV: dict[str, str] = {}
_files = itertools.count()


def example() -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load(EXAMPLE)
    data["appservice"]["as_token"] = "as-token-for-fuzzing"
    data["appservice"]["hs_token"] = "hs-token-for-fuzzing"
    return data


def load_bytes(tmp_path: Path, raw: bytes) -> None:
    """Load ``raw`` as the config file: a Config or a ConfigError that names a key."""
    path = tmp_path / f"config-{next(_files)}.yaml"
    path.write_bytes(raw)
    try:
        load(str(path), NO_ENV)
    except ConfigError as e:
        assert e.args and str(e), "a ConfigError without a message"
    finally:
        path.unlink()


yaml_scalars = st.one_of(
    json_values,
    st.dates(),
    st.datetimes(timezones=st.none() | st.just(datetime.UTC)),
    st.binary(max_size=20),
    st.sampled_from([10**30, -(10**30), float("nan"), float("inf"), "", "~", "generate"]),
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.text(max_size=8) | st.integers() | st.booleans(), children, max_size=3
        )
    ),
    max_leaves=10,
)


def dump(data: Any) -> bytes:
    out = io.BytesIO()
    YAML().dump(data, out)
    return out.getvalue()


@st.composite
def hostile_configs(draw: st.DrawFn) -> Any:
    data = mutate(draw, example(), max_changes=3)
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        # a value of any YAML type (mutate's are JSON types) somewhere at the top two levels
        section = draw(st.sampled_from(sorted(data)))
        if isinstance(data[section], dict) and data[section] and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(map(str, data[section]))))
            data[section][key] = draw(yaml_values)
        else:
            data[section] = draw(yaml_values)
    return data


@fuzz_settings(40)
@given(data=hostile_configs())
def test_hostile_values_anywhere(tmp_path: Path, data: Any) -> None:
    try:
        raw = dump(data)
    except Exception:  # noqa: BLE001 - a value YAML cannot write (lone surrogates...)
        return
    load_bytes(tmp_path, raw)


@fuzz_settings(100)
@given(
    raw=st.binary(max_size=300)
    | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass"))
)
def test_arbitrary_bytes(tmp_path: Path, raw: bytes) -> None:
    load_bytes(tmp_path, raw)


@fuzz_settings(60)
@given(data=st.data())
def test_the_example_cut_anywhere(tmp_path: Path, data: st.DataObject) -> None:
    """The example file cut short or with a byte changed: YAML errors name the file."""
    raw = EXAMPLE.encode()
    cut = data.draw(st.integers(min_value=0, max_value=len(raw)))
    at = data.draw(st.integers(min_value=0, max_value=max(cut - 1, 0)))
    byte = data.draw(st.sampled_from(b":-[]{}\"'\t\x00\xff&*!|>%@` \n"))
    broken = bytearray(raw[:cut])
    if broken:
        broken[at] = byte
    load_bytes(tmp_path, bytes(broken))


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe\x00", b"homeserver: \xc3\x28", b"\x00", b"a: &x [*x]",
     b"a: !!python/object:os.system {}", b"[" * 1000, b"a:\n" + b"  " * 3000 + b"b: 1",
     b"!!binary AAAA", b"? [a]\n: 1"],
    ids=["utf16-bom", "bad-utf8", "nul", "self-alias", "python-tag", "deep-flow", "deep-block",
         "binary-top", "complex-key"],
)  # fmt: skip
def test_the_command_line_says_which_file(
    tmp_path: Path, raw: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m bridge`` with a broken file exits with status 2 and one line naming it."""
    path = tmp_path / "config.yaml"
    path.write_bytes(raw)
    assert main(["-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"Configuration error in {path}:"), err
    assert "Traceback" not in err
