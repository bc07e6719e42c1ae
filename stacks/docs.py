"""Generate the README's config reference from stacks/config.py (one source of truth).

    python -m stacks.docs          # rewrite the section in README.md
    python -m stacks.docs --check  # exit 1 if README.md is out of date (the test suite runs this)
"""

import enum
import sys
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from .config import StackConfig

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN = "<!-- config-reference: generated from stacks/config.py by `python -m stacks.docs`; do not edit by hand -->"
END = "<!-- /config-reference -->"


def _models_in(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _type_name(annotation) -> str:
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " or ".join(_type_name(a) for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return "map"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " \\| ".join(f"`{m.value}`" for m in annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    return getattr(annotation, "__name__", str(annotation))


def _default(field) -> str:
    if field.default is not PydanticUndefined:
        value = field.default
        if value is None:
            return ""
        return f"`{value.value if isinstance(value, enum.Enum) else value}`"
    if field.default_factory is not None:
        value = field.default_factory()
        return "" if isinstance(value, BaseModel) else f"`{value}`"
    return "**required**"


def _table(model: type[BaseModel], prefix: str) -> list[str]:
    rows = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        key = field.alias or name
        rows.append(f"| `{prefix}{key}` | {_type_name(field.annotation)} | {_default(field)} | {field.description or ''} |")
    return rows


def generate() -> str:
    lines = [BEGIN, "", "### Stack keys", "", *_table(StackConfig, "llmstack:")]
    seen: list[type[BaseModel]] = []
    queue = [m for f in StackConfig.model_fields.values() for m in _models_in(f.annotation)]
    while queue:
        model = queue.pop(0)
        if model in seen:
            continue
        seen.append(model)
        queue += [m for f in model.model_fields.values() for m in _models_in(f.annotation)]
    for model in seen:
        doc = (model.__doc__ or "").strip().splitlines()[0]
        lines += ["", f"### {model.__name__}", "", doc, "", *_table(model, "")]
    return "\n".join(lines + ["", END])


def main(argv: list[str]) -> int:
    text = README.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    new = text[:start] + generate() + text[end:]
    if "--check" in argv:
        if new != text:
            print("README.md config reference is out of date: run `python -m stacks.docs`", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
