"""Reading and writing configs as YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ganforge.config.schema import RunConfig
from ganforge.errors import ConfigError

_MAX_CONFIG_BYTES = 1_000_000  # a config holds a few dozen keys; a larger file is not one


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML config file into a dict of (flat or nested) keys."""
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist: pass an existing YAML file to --config")
    size = path.stat().st_size
    if size > _MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config file {path} is {size:,} bytes, more than the {_MAX_CONFIG_BYTES:,} a config may have: "
            "pass the YAML config file to --config"
        )
    try:
        text = path.read_bytes()  # bytes: PyYAML detects the encoding and reports a bad one as a YAMLError
    except OSError as error:
        raise ConfigError(f"could not read config file {path} ({error.strerror}): check its permissions") from None
    # Besides YAMLError, PyYAML's safe loader raises ValueError for values it recognises but cannot build
    # (the date 2020-02-30, an integer of more than 4300 digits), IndexError, KeyError or AttributeError
    # for values that do not fit an explicit tag (!!float "", !!bool x, !!timestamp x), and RecursionError
    # for collections nested a few hundred deep.
    try:
        values = yaml.safe_load(text)
    except RecursionError:
        raise ConfigError(f"config file {path} nests too deeply to be a config: fix the file") from None
    except (IndexError, KeyError, AttributeError):
        raise ConfigError(
            f"config file {path} has a value that does not fit its YAML tag (such as !!float or !!bool): fix the file"
        ) from None
    except (yaml.YAMLError, ValueError) as error:
        first_line = next((line for line in str(error).splitlines() if line.strip()), "syntax error")
        raise ConfigError(f"config file {path} is not valid YAML ({first_line.strip()}): fix the file") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values, got {type(values).__name__}")
    return values


def to_yaml(config: RunConfig) -> str:
    """The config as the YAML text of a run folder's config.yaml (sections in schema order)."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
