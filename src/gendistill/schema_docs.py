"""The configuration reference page (docs/configuration.md), rendered from the config schema, so the page cannot
drift from what the workflow accepts: `python -m gendistill.schema_docs > docs/configuration.md` writes it, and a
test compares the committed page with this rendering.
"""

from __future__ import annotations

import json
import sys

from .config import load_schema

HEADER = """# Configuration

Every key the workflow accepts, its default and what it does, rendered from
`src/gendistill/schemas/config.schema.yaml` (`python -m gendistill.schema_docs > docs/configuration.md`; a test
fails when this page and the schema disagree). A config file names only the keys it changes; the schema's defaults
fill the rest, and an unknown key or a wrong type is refused before any job, naming the key.

A `--configfile` given on the command line replaces `config.yaml` (the paper's job) entirely; several files are
merged in order, later ones winning. Put the target first when you name one:
`snakemake --cores 1 prompts --configfile my.yaml`.
"""


def _type(node: dict) -> str:
    if "oneOf" in node:
        return " or ".join(_type(n) for n in node["oneOf"])
    t = node.get("type", "")
    types = t if isinstance(t, list) else [t]
    shown = []
    for name in types:
        if name == "array" and isinstance(node.get("items"), dict) and "type" in node["items"]:
            inner = node["items"]["type"]
            name = f"list of {' or '.join(inner) if isinstance(inner, list) else inner}"
        shown.append(name)
    return " or ".join(s for s in shown if s)


def _value(v) -> str:
    return f"`{json.dumps(v)}`"


def _constraints(node: dict) -> str:
    parts = []
    if "enum" in node:
        parts.append("one of " + ", ".join(_value(v) for v in node["enum"]))
    for key, word in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")):
        if key in node:
            parts.append(f"{word} {node[key]}")
    if node.get("items", {}).get("enum"):
        parts.append("items one of " + ", ".join(_value(v) for v in node["items"]["enum"]))
    return "; ".join(parts)


def _cell(text: str) -> str:
    """A table cell: one line, pipes escaped, and <placeholders> outside code spans shown rather than read as
    HTML tags (inside backticks Markdown shows them as they are)."""
    parts = " ".join(str(text).split()).replace("|", "\\|").split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def _rows(node: dict, path: str) -> list[str]:
    """One table row per leaf key under `node` (an object schema), depth first in the schema's order."""
    rows = []
    for name, child in node.get("properties", {}).items():
        key = f"{path}.{name}" if path else name
        if child.get("properties") and child.get("type") == "object":
            if child.get("description"):
                rows.append(f"| `{key}` | object | | {_cell(child['description'])} |")
            rows += _rows(child, key)
            continue
        default = _value(child["default"]) if "default" in child else ""
        what = _cell(child.get("description", ""))
        extra = _constraints(child)
        if extra:
            what = f"{what} ({extra})" if what else extra
        sub = child.get("additionalProperties")
        if isinstance(sub, dict) and sub.get("properties"):
            inner = ", ".join(f"`{k}`" for k in sub["properties"])
            what += f" Each entry takes {inner}."
        rows.append(f"| `{key}` | {_type(child)} | {default} | {what} |")
    return rows


def render(schema: dict) -> str:
    """The page: the header, then one table per top-level section (scalars first, in one table)."""
    out = [HEADER]
    props = schema["properties"]
    scalars = {k: v for k, v in props.items() if not v.get("properties")}
    sections = {k: v for k, v in props.items() if v.get("properties")}
    head = ["| key | type | default | what it does |", "|---|---|---|---|"]
    out += ["## Top level", "", *head, *_rows({"properties": scalars}, ""), ""]
    for name, node in sections.items():
        out += [f"## `{name}`", ""]
        if node.get("description"):
            out += [" ".join(node["description"].split()), ""]
        out += [*head, *_rows(node, name), ""]
    return "\n".join(out)


def main() -> None:
    sys.stdout.write(render(load_schema()))


if __name__ == "__main__":
    main()
