"""Loading a config: the embedded default (schema.py), then `agent.preset`'s values (presets.py), then a
YAML file from `configs/` (or any path), then dotted command-line overrides such as `robot.control_hz=10`.
Built on OmegaConf structured configs, which reject unknown keys, wrong types and values outside a
`Literal`; we turn those rejections into one sentence that names the key and what it accepts."""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import typing
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from .checks import ConfigError, choice_problem
from .presets import PRESETS
from .schema import Config, check_config, config_fields


def config_dirs() -> list[Path]:
    """Where named configs are looked up: $DSRL_REAL_CONFIG_DIR, the source tree, the installed share
    (pip's, under sys.prefix, and colcon's, under each prefix of $AMENT_PREFIX_PATH)."""
    dirs = [Path(p) for p in os.environ.get("DSRL_REAL_CONFIG_DIR", "").split(os.pathsep) if p]
    dirs.append(Path(__file__).resolve().parents[2] / "configs")
    prefixes = [sys.prefix, *(p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p)]
    dirs += [Path(prefix) / "share" / "dsrl_real" / "configs" for prefix in prefixes]
    return dirs


def resolve_config_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.is_file():
        return path
    stem = path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml"
    for directory in config_dirs():
        if (directory / stem).is_file():
            return directory / stem
    known = sorted({p.stem for d in config_dirs() if d.is_dir() for p in d.glob("*.yaml")})
    raise ConfigError(f"No config file '{name_or_path}'; give a path to a YAML file or one of: {', '.join(known)}.")


def _valid_keys(path: str) -> list[str]:
    """The field names of the config section at dotted `path` ('' for the top level)."""
    node: Any = Config
    for part in re.sub(r"\[\d*\]", "", path).split("."):
        hint = typing.get_type_hints(node).get(part)
        hint = typing.get_args(hint)[0] if typing.get_origin(hint) is list else hint
        if not dataclasses.is_dataclass(hint):
            break
        node = hint
    return [f.name for f in dataclasses.fields(node)]


def _section_of(err: Exception, full_key: str) -> str:
    """The dotted path of the section an unknown key was found in."""
    if "." in full_key:
        return full_key.rsplit(".", 1)[0]
    owner = getattr(err, "object_type", None)
    for f in dataclasses.fields(Config):
        hint = typing.get_type_hints(Config)[f.name]
        inner = typing.get_args(hint)[0] if typing.get_origin(hint) is list else hint
        if owner is not None and inner is owner and owner is not Config:
            return f"{f.name}[]" if hint is not inner else f.name
    return ""


# The choice fields (a Literal annotation): "cameras[].kind", "reward.shadow", ... -> (type, what it accepts).
_CHOICES = {key: (hint, allowed) for key, hint, allowed in config_fields() if allowed is not None and allowed.choices}


def _refused_choice(err: Exception, full_key: str, given: Any) -> ConfigError | None:
    """OmegaConf refuses a value outside a `Literal` itself; say it as `check_fields` would, or None for
    another error. `given` is what was merged (a file's content, or {key: value} of an override): where a
    whole list of sections was merged OmegaConf names the field only, and the entry is found there."""
    reason = str(getattr(err, "msg", None) or err).splitlines()[0]
    value = getattr(err, "value", None)
    if not (isinstance(err, ValidationError) and re.match(r"Invalid value '.*', expected one of \[", reason)
            and isinstance(value, (str, int, float, bool))):
        return None
    section = _section_of(err, full_key)
    if section.endswith("[]") and "." not in full_key:
        entries = given.get(section[:-2]) if isinstance(given, dict) else None
        index = next((i for i, entry in enumerate(entries if isinstance(entries, list) else [])
                      if isinstance(entry, dict) and entry.get(full_key) == value), None)
        if index is None:
            return None
        full_key = f"{section[:-2]}[{index}].{full_key}"
    pattern = re.sub(r"\[\d+\]", "[]", full_key)
    hint, allowed = _CHOICES.get(pattern) or _CHOICES.get(pattern.removesuffix("[]")) or (None, None)
    if allowed is None:
        return None
    if hint in (str, list[str]) and not isinstance(value, str):
        value = str(value)  # as a str field converts it: robot.kind=1 reads '1'
    problem = choice_problem(full_key, value, allowed)
    return ConfigError(problem) if problem else None


def _explain(err: Exception, source: str, key: str = "", given: Any = None) -> ConfigError:
    full_key = str(getattr(err, "full_key", "") or key or getattr(err, "key", "") or "")
    refused = _refused_choice(err, full_key, given)
    if refused is not None:
        return refused
    if isinstance(err, (ConfigKeyError, ConfigAttributeError)):
        section = _section_of(err, full_key)
        where = f"under '{section}'" if section else "at the top level"
        return ConfigError(
            f"Unknown config key '{full_key}' in {source}; valid keys {where} are: {', '.join(_valid_keys(section))}."
        )
    reason = str(getattr(err, "msg", None) or err).splitlines()[0]
    converting = isinstance(err, ValidationError) and reason.startswith("Value '")  # e.g. 'a' in a list of floats
    if not converting and (isinstance(err, (TypeError, IndexError)) or "[" in full_key):
        return ConfigError(f"Config key '{key or full_key}' in {source} does not exist; list entries can only be changed, add new ones in a YAML file.")
    if isinstance(err, ValidationError) and full_key:
        return ConfigError(f"Config key '{full_key}' in {source} has the wrong type: {reason.rstrip('.')}.")
    return ConfigError(f"Invalid configuration in {source}: {reason.rstrip('.')}; `dsrl-real config` shows every section and its types.")


def _compose(base, file_layers: list[tuple[Any, str]], overrides) -> Any:
    merged = base
    for layer, source in file_layers:
        try:
            merged = OmegaConf.merge(merged, layer)
        except (OmegaConfBaseException, TypeError) as err:
            raise _explain(err, source, given=OmegaConf.to_container(layer)) from err
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"Override '{item}' is not of the form key=value, e.g. robot.control_hz=10.")
        value = yaml.safe_load(raw) if raw else ""
        try:
            OmegaConf.update(merged, key, value, merge=True)
        except (OmegaConfBaseException, TypeError, IndexError) as err:
            raise _explain(err, f"override '{item}'", key, given={key: value}) from err
    return merged


def load_config(path: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The embedded default, then `agent.preset`'s values, then the YAML file (name or path), then
    `key=value` overrides; every value checked (`check_config`)."""
    layers: list[tuple[Any, str]] = []
    if path:
        file = resolve_config_path(path)
        try:
            loaded = OmegaConf.load(file)
        except OSError:
            raise  # unreadable, not malformed: the CLI names the path and the reason
        except Exception as err:  # YAML syntax errors come in several types
            raise ConfigError(f"Could not parse {file}: {str(err).splitlines()[0]}; fix the YAML syntax.") from err
        if not isinstance(loaded, DictConfig):
            raise ConfigError(f"{file} holds a list at its top level; a config file holds sections such as robot: and agent:, "
                              "as `dsrl-real config` prints them.")
        layers.append((loaded, str(file)))
    merged = _compose(OmegaConf.structured(Config), layers, overrides)
    preset = merged.agent.preset
    if preset:
        if preset not in PRESETS:
            raise ConfigError(f"Unknown agent.preset '{preset}'; choose one of: {', '.join(PRESETS)}.")
        base = OmegaConf.structured(Config)
        for key, value in PRESETS[preset].items():
            OmegaConf.update(base, key, value, merge=True)
        merged = _compose(base, layers, overrides)
    try:
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise _explain(err, path or "the configuration") from err
    return check_config(cfg)  # type: ignore[arg-type]


def to_yaml(cfg: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
