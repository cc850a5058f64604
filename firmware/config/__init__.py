"""Site config: loading a TOML file into the validated :class:`VigilConfig`."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from firmware.config.base import config_hash, resolve_path

if TYPE_CHECKING:
    from firmware.config.schema import VigilConfig


def __getattr__(name: str) -> Any:
    # The schema is imported on first use, not with the package: each stage's config module
    # imports firmware.config.base, and the schema imports those modules in turn.
    if name == "VigilConfig":
        from firmware.config.schema import VigilConfig

        return VigilConfig
    raise AttributeError(name)


class ConfigError(ValueError):
    """A config that cannot be used; ``problems`` lists each one as 'key: message'."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        first = problems[0] if problems else "invalid"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"config {source}: {first}{more}")


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    config: VigilConfig
    path: Path | None
    text: str

    def resolve(self, p: str) -> Path:
        """A path from the config, relative to the config file's folder (``~`` expanded)."""
        return resolve_path(p, self.base_dir)

    @property
    def base_dir(self) -> Path | None:
        """The config file's folder: relative paths in the config start here."""
        return self.path.parent if self.path is not None else None

    @property
    def hash(self) -> str:
        return config_hash(self.text)


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def validate(data: dict, source: str = "<config>") -> VigilConfig:
    """Validate a parsed config; raises ConfigError listing every problem with its key."""
    from firmware.config.schema import VigilConfig

    try:
        return VigilConfig.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors(include_url=False):
            msg = err["msg"].removeprefix("Value error, ")
            loc = tuple(
                p
                for p in err["loc"]
                if p not in ("function-after[_polygon_ok(), list[tuple[float, float]]]",)
            )
            problems.append(f"{_loc(loc)}: {msg}")
        raise ConfigError(source, problems) from None


def parse_text(text: str, source: str = "<config>") -> VigilConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(source, [f"(TOML syntax) {e}"]) from None
    return validate(data, source)


def load(path: str | Path) -> LoadedConfig:
    """Read and validate a site config file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(p), ["file not found"]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(str(p), [f"cannot read: {e}"]) from None
    return LoadedConfig(parse_text(text, str(p)), p.resolve(), text)


def default() -> LoadedConfig:
    from firmware.config.schema import VigilConfig

    return LoadedConfig(VigilConfig(), None, "")


__all__ = [
    "ConfigError",
    "LoadedConfig",
    "VigilConfig",
    "default",
    "load",
    "parse_text",
    "validate",
]
