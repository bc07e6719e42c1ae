"""Dump the pinned vLLM's server CLI flags, as vLLM's own parser defines them, to a JSON table.

    # writes components/serving/data/vllm-<version>-flags.json:
    .venv-vllm/bin/python scripts/gen-vllm-flags.py
    # prints it (the e2e drift test compares the two):
    .venv-vllm/bin/python scripts/gen-vllm-flags.py --stdout

The parser is the one ``python -m vllm.entrypoints.openai.api_server`` (the container's command)
builds: ``make_arg_parser(FlexibleArgumentParser(...))``. For every option the table records its
option strings (aliases and ``--no-`` forms included), how argparse consumes values (action,
nargs), what the value must be (type kind, choices, whether "None" is accepted), its config group
and whether vLLM marks it deprecated. Value domains vLLM checks only after parsing (quantization
methods, which argparse takes as any string) are recorded under ``domains``.

Deterministic: options sorted by canonical name, keys sorted, no defaults (some depend on the host).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

REPO = Path(__file__).resolve().parent.parent
FORMAT = 1


def _closure(fn) -> dict:
    """Free variables of a closure by name (vLLM's type wrappers keep the wrapped type there)."""
    cells = getattr(fn, "__closure__", None) or ()
    return dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in cells), strict=True)) if cells else {}


def type_kind(fn) -> tuple[str, bool]:
    """(kind of value the option's ``type`` callable accepts, whether it also accepts None)."""
    import json as _json

    from vllm.utils import argparse_utils as au

    if fn is None or fn is str:
        return "str", False
    if fn is int:
        return "int", False
    if fn is float:
        return "float", False
    if fn is _json.loads:
        return "json", False
    if fn is au.human_readable_int:
        return "human_int", False
    if fn is au.human_readable_int_or_auto:
        return "human_int_or_auto", False
    name = getattr(fn, "__qualname__", "")
    if name == "union_dict_and_str":
        return "json_or_str", False
    if name.endswith("parse_dataclass"):
        return "json_object", False
    if name.startswith("optional_type."):
        kind, _ = type_kind(_closure(fn)["return_type"])
        return kind, True
    if name.startswith("parse_type."):
        return type_kind(_closure(fn)["return_type"])
    if name.endswith("<lambda>"):
        return "str", False  # e.g. --device-ids: a comma-separated list, parsed leniently
    if isinstance(fn, type):
        return fn.__name__, False
    raise SystemExit(f"gen-vllm-flags: unknown type callable {fn!r} ({name}); teach type_kind() about it")


def action_kind(action: argparse.Action) -> str:
    if isinstance(action, argparse.BooleanOptionalAction):
        return "boolean_optional"
    kinds = {
        argparse._StoreAction: "store",
        argparse._StoreTrueAction: "store_true",
        argparse._StoreFalseAction: "store_false",
        argparse._StoreConstAction: "store_const",
        argparse._AppendAction: "append",
        argparse._HelpAction: "help",
        argparse._VersionAction: "version",
        argparse._CountAction: "count",
    }
    for cls, kind in kinds.items():
        if type(action) is cls:
            return kind
    # vLLM's own actions (LoRAParserAction, DeprecatedLogConfigFileAction) store their value(s).
    return "store"


def build_parser():
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    try:  # vLLM 0.32 layout
        from vllm.entrypoints.launchers.cli_args import make_arg_parser
    except ImportError:  # older vLLM
        from vllm.entrypoints.openai.cli_args import make_arg_parser
    return make_arg_parser(FlexibleArgumentParser(description="vLLM OpenAI-Compatible RESTful API server."))


def table() -> dict:
    import vllm
    from vllm.model_executor.layers import quantization as q

    parser = build_parser()
    groups = {id(a): g.title for g in parser._action_groups for a in g._group_actions}
    deprecated = getattr(parser, "_deprecated", set())
    flags: dict[str, dict] = {}
    positionals = []
    for a in parser._actions:
        if not a.option_strings:
            positionals.append({"dest": a.dest, "nargs": a.nargs})
            continue
        longs = [o for o in a.option_strings if o.startswith("--") and not o.startswith("--no-")]
        canonical = (longs or [o for o in a.option_strings if o.startswith("--")] or a.option_strings)[0]
        kind = action_kind(a)
        entry: dict = {
            "dest": a.dest,
            "options": list(a.option_strings),
            "action": kind,
            "group": groups.get(id(a)),
        }
        if kind in ("store", "append"):
            vtype, optional = type_kind(a.type)
            entry["type"] = vtype
            entry["nargs"] = a.nargs
            if optional:
                entry["optional"] = True
            if a.choices is not None:
                entry["choices"] = sorted({str(c) for c in a.choices if c is not None})
            elif isinstance(a.metavar, (list, tuple)):
                # Literal | str: vLLM shows the known values but accepts any string.
                entry["suggested"] = sorted(str(c) for c in a.metavar)
        if a in deprecated or getattr(a, "deprecated", False):
            entry["deprecated"] = True
        flags[canonical] = entry
    return {
        "format": FORMAT,
        "generator": "scripts/gen-vllm-flags.py",
        "vllm_version": vllm.__version__.split("+")[0],
        "parser": {
            "prog": "python -m vllm.entrypoints.openai.api_server",
            "allow_abbrev": parser.allow_abbrev,
            "prefix_chars": parser.prefix_chars,
            "positionals": positionals,
        },
        "domains": {
            # ModelConfig checks --quantization after parsing: these are every method it accepts.
            "quantization": sorted(q.QUANTIZATION_METHODS),
            "quantization_deprecated": sorted(q.DEPRECATED_QUANTIZATION_METHODS),
        },
        "flags": dict(sorted(flags.items())),
    }


def dumps(data: dict) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stdout", action="store_true", help="print the table instead of writing it")
    ap.add_argument("--out", help="write here (default components/serving/data/vllm-<version>-flags.json)")
    opts = ap.parse_args(argv)
    data = table()
    text = dumps(data)
    if opts.stdout:
        sys.stdout.write(text)
        return 0
    out = (
        Path(opts.out)
        if opts.out
        else REPO / "components" / "serving" / "data" / f"vllm-{data['vllm_version']}-flags.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out} ({len(data['flags'])} flags, vLLM {data['vllm_version']})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
