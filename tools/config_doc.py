"""Writes docs/config.md from the config schema itself, so the docs cannot drift from the code.

.venv/bin/python tools/config_doc.py          # rewrite docs/config.md
.venv/bin/python tools/config_doc.py --check  # non-zero if docs/config.md is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from firmware.config.schema import VigilConfig

OUT = Path(__file__).resolve().parents[1] / "docs" / "config.md"

HEADER = """# Site config reference

Generated from the schema by `tools/config_doc.py` (do not edit by hand). One TOML file per
unit; every key is optional unless marked required, and unknown keys are refused.
`vigil config check FILE` validates a file and prints every problem with its key;
`vigil config schema` prints the same schema as JSON Schema.
"""

BOUNDS = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}


def _resolve(schema: dict, defs: dict) -> dict:
    if "$ref" in schema:
        return defs[schema["$ref"].split("/")[-1]]
    return schema


def _type(s: dict, defs: dict) -> str:
    s = _resolve(s, defs)
    if "anyOf" in s:
        return " or ".join(_type(x, defs) for x in s["anyOf"])
    if "enum" in s:
        return " / ".join(f"`{v}`" for v in s["enum"])
    if "const" in s:
        return f"`{s['const']}`"
    t = s.get("type", "object")
    if t == "array":
        if "prefixItems" in s:
            return "[" + ", ".join(_type(x, defs) for x in s["prefixItems"]) + "]"
        return f"list of {_type(s.get('items', {}), defs)}"
    if (
        t == "object"
        and "additionalProperties" in s
        and isinstance(s["additionalProperties"], dict)
    ):
        return f"table of {_type(s['additionalProperties'], defs)}"
    if "title" in s and t == "object":
        return s["title"]
    return t


def _bounds(s: dict, defs: dict) -> str:
    s = _resolve(s, defs)
    parts = [f"{op} {s[k]}" for k, op in BOUNDS.items() if k in s]
    for alt in s.get("anyOf", []):
        parts += [f"{op} {alt[k]}" for k, op in BOUNDS.items() if k in alt]
    if "pattern" in s:
        parts.append(f"pattern `{s['pattern']}`")
    return ", ".join(parts)


def _fmt_default(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, str):
        return f'`"{v}"`'
    if isinstance(v, bool):
        return f"`{str(v).lower()}`"
    return f"`{v}`"


def _section(
    name: str, model: dict, defs: dict, lines: list[str], nested: list, apply: str | None = None
) -> None:
    lines.append(f"\n## `{name}`\n")
    if apply == "live":
        lines.append("*A hub `config/set` applies this section live.*\n")
    elif apply == "restart":
        lines.append(
            "*A hub `config/set` stores this section; it takes effect at the next start.*\n"
        )
    if model.get("description"):
        lines.append(model["description"].strip() + "\n")
    lines.append("| key | type | default | bounds | description |")
    lines.append("|---|---|---|---|---|")
    required = set(model.get("required", []))
    for key, prop in model.get("properties", {}).items():
        target = _resolve(prop, defs)
        if target.get("type") == "object" and "properties" in target and prop.get("$ref"):
            nested.append((f"{name}.{key}", target, None))
            lines.append(
                f"| `{key}` | table | | | see [`{name}.{key}`](#{(name + '.' + key).replace('.', '')}) |"
            )
            continue
        default = "**required**" if key in required else _fmt_default(prop.get("default"))
        desc = (
            (prop.get("description") or target.get("description") or "")
            .replace("|", "\\|")
            .replace("\n", " ")
        )
        lines.append(
            f"| `{key}` | {_type(prop, defs)} | {default} | {_bounds(prop, defs)} | {desc} |"
        )


def render() -> str:
    schema = VigilConfig.model_json_schema()
    defs = schema.get("$defs", {})
    lines = [HEADER]
    queue: list = []
    for key, prop in schema["properties"].items():
        target = _resolve(prop, defs)
        apply = prop.get("apply")
        if "items" in target and "$ref" in target["items"]:
            queue.append((f"[[{key}]]", _resolve(target["items"], defs), apply))
        elif (
            isinstance(target.get("additionalProperties"), dict)
            and "$ref" in target["additionalProperties"]
        ):
            queue.append((f"{key}.<name>", _resolve(target["additionalProperties"], defs), apply))
        else:
            queue.append((key, target, apply))
    while queue:
        name, model, apply = queue.pop(0)
        nested: list = []
        _section(name, model, defs, lines, nested, apply)
        queue[0:0] = nested
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="fail if docs/config.md is out of date")
    args = p.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is stale: run python tools/config_doc.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
