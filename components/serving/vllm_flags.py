"""The pinned vLLM's server flags, as vLLM's own parser defines them, and extra args checked against them.

The table (``data/vllm-<version>-flags.json``) is generated from vLLM's parser by
``scripts/gen-vllm-flags.py``; the e2e suite regenerates it from the installed vLLM and fails when
the two drift. ``parse_extra_args`` reads an ``extra_args`` list the way vLLM's
``FlexibleArgumentParser`` (argparse underneath) reads a command line, so every spelling that
reaches a flag is recognised: ``--flag value`` and ``--flag=value``, ``_`` for ``-`` in the name,
short aliases (``-tp``), the ``--no-`` form of switches, ``-O3`` for the optimization level, dotted
JSON keys (``--compilation-config.mode 3``) and prefixes argparse would expand (refused: they
break when a newer vLLM adds a flag with the same prefix). ``extra_args_problems`` adds what the
stack cannot allow: flags it renders itself, flags that change the GPUs a replica needs, and
flags that stop the server from serving.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from .. import versions

_FORMAT = 1


@dataclass(frozen=True)
class Flag:
    """One option of vLLM's server parser."""

    name: str
    """Canonical spelling (the first ``--`` option string), e.g. ``--tensor-parallel-size``."""
    dest: str
    """Attribute name vLLM stores it under, e.g. ``tensor_parallel_size``."""
    options: tuple[str, ...]
    """Every option string: aliases (``-tp``) and ``--no-`` forms included."""
    action: str
    """store, store_true, boolean_optional (``--x``/``--no-x``), append or help."""
    nargs: Any = None
    """argparse nargs: None (one value), ``?``, ``+``, ``*`` or a count."""
    type: str | None = None
    """Kind of value: int, float, str, json, json_object, json_or_str, human_int, human_int_or_auto."""
    optional: bool = False
    """``None`` (or an empty value) is accepted and means "unset"."""
    choices: tuple[str, ...] | None = None
    """The only values argparse accepts, if restricted."""
    group: str | None = None
    """vLLM's config group (ModelConfig, ParallelConfig, ...)."""

    @property
    def takes_value(self) -> bool:
        return self.action in ("store", "append")


@dataclass(frozen=True)
class FlagTable:
    vllm_version: str
    flags: dict[str, Flag]
    allow_abbrev: bool
    quantization_methods: tuple[str, ...]
    deprecated_quantization_methods: tuple[str, ...]
    by_option: dict[str, Flag] = field(repr=False, default_factory=dict)

    def flag(self, dest: str) -> Flag:
        """The flag stored under ``dest`` (KeyError when this vLLM has none)."""
        for f in self.flags.values():
            if f.dest == dest:
                return f
        raise KeyError(dest)

    @property
    def dtype_choices(self) -> tuple[str, ...]:
        return self.flag("dtype").choices or ()


def table_path(version: str = versions.VLLM_VERSION) -> str:
    return f"data/vllm-{version}-flags.json"


@functools.lru_cache(maxsize=4)
def load_table(version: str = versions.VLLM_VERSION) -> FlagTable:
    """The committed flag table of the pinned vLLM (or of ``version``)."""
    raw = json.loads(resources.files(__package__).joinpath(table_path(version)).read_text())
    if raw.get("format") != _FORMAT:
        raise ValueError(f"{table_path(version)}: format {raw.get('format')}, expected {_FORMAT}; regenerate it")
    flags = {
        name: Flag(
            name=name,
            dest=f["dest"],
            options=tuple(f["options"]),
            action=f["action"],
            nargs=f.get("nargs"),
            type=f.get("type"),
            optional=bool(f.get("optional")),
            choices=tuple(f["choices"]) if f.get("choices") is not None else None,
            group=f.get("group"),
        )
        for name, f in raw["flags"].items()
    }
    by_option = {o: f for f in flags.values() for o in f.options}
    return FlagTable(
        vllm_version=raw["vllm_version"],
        flags=flags,
        allow_abbrev=bool(raw["parser"]["allow_abbrev"]),
        quantization_methods=tuple(raw["domains"]["quantization"]),
        deprecated_quantization_methods=tuple(raw["domains"]["quantization_deprecated"]),
        by_option=by_option,
    )


# ------------------------------------------------------------------------------------------------
# parsing, as FlexibleArgumentParser + argparse (Python 3.11/3.12) do
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParsedArg:
    """One flag found in an extra-args list."""

    flag: Flag
    given: str
    """The flag as written (``--tensor_parallel_size=2`` gives ``--tensor_parallel_size``)."""
    option: str
    """The option string it resolved to (``--no-enforce-eager`` for that spelling)."""
    values: tuple[str, ...]
    """The values as written (none for switches)."""
    index: int
    """Position of the flag in the list."""
    abbreviation: bool = False
    """Written as a prefix argparse expands (vLLM accepts it; the stack refuses it)."""

    @property
    def negated(self) -> bool:
        return self.option.startswith("--no-")


@dataclass(frozen=True)
class ArgProblem:
    index: int
    """Position in the list of the item at fault."""
    message: str
    kind: str = "parse"
    """parse (vLLM would refuse it), stray_value (vLLM would take it as the model to serve), duplicate
    (vLLM keeps the last), managed, gpu_count, not_serving or abbreviation."""
    dest: str | None = None
    """The flag concerned, where one was recognised."""


@dataclass
class ParsedArgs:
    args: list[ParsedArg]
    problems: list[ArgProblem]

    def by_dest(self) -> dict[str, ParsedArg]:
        """The last occurrence of every flag (argparse: the last one wins)."""
        return {a.flag.dest: a for a in self.args}


_NEGATIVE_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")
_HUMAN_INT = re.compile(r"(\d+(?:\.\d+)?)([kKmMgGtT])")
_OPT_LEVELS = ("0", "1", "2", "3")


def _looks_like_option(item: str) -> bool:
    """argparse's 'O': an item that starts a new option rather than being a value."""
    if not item or item[0] != "-" or item == "-":
        return False
    if _NEGATIVE_NUMBER.match(item):
        return False  # vLLM has no option that looks like a negative number
    if " " in item and "=" not in item.split(" ", 1)[0]:
        return False  # argparse takes '-x y' with a space as a value
    return True


def _normalise(item: str) -> str:
    """FlexibleArgumentParser: '_' becomes '-' in a long flag's name (up to the first '.' and '=')."""
    if not item.startswith("--"):
        return item
    key, eq, value = item.partition("=")
    dot = key.find(".")
    head, tail = (key, "") if dot < 0 else (key[:dot], key[dot:])
    return head[:2] + head[2:].replace("_", "-") + tail + eq + value


def _resolve(table: FlagTable, token: str) -> tuple[Flag | None, str | None, str | None, list[str], bool]:
    """(flag, option string, explicit value, ambiguous candidates, abbreviation) as argparse's
    ``_parse_optional`` resolves ``token``."""
    if token in table.by_option:
        return table.by_option[token], token, None, [], False
    value: str | None
    if "=" in token:
        opt, value = token.split("=", 1)
        if opt in table.by_option:
            return table.by_option[opt], opt, value, [], False
    matches: list[tuple[Flag, str, str | None]] = []
    if token.startswith("--"):
        if table.allow_abbrev:
            prefix, eq, rest = token.partition("=")
            value = rest if eq else None
            matches = [(f, o, value) for o, f in table.by_option.items() if o.startswith(prefix)]
    elif len(token) > 1:
        # Single dash: an exact two-character option with the rest as its value, or a prefix.
        short, rest = token[:2], token[2:]
        for o, f in table.by_option.items():
            if o == short:
                matches.append((f, o, rest))
            elif o.startswith(token):
                matches.append((f, o, None))
    if len(matches) > 1:
        return None, None, None, sorted(o for _, o, _ in matches), False
    if matches:
        f, o, value = matches[0]
        return f, o, value, [], True
    return None, None, None, [], False


def _check_value(flag: Flag, value: str) -> str | None:
    """Why ``value`` is not one vLLM's parser accepts for ``flag`` (None when it is)."""
    if flag.optional and value in ("", "None"):
        return None
    kind = flag.type or "str"
    try:
        if kind == "int":
            int(value)
        elif kind == "float":
            float(value)
        elif kind in ("human_int", "human_int_or_auto"):
            v = value.strip()
            if not (kind == "human_int_or_auto" and (v == "-1" or v.lower() == "auto")):
                m = _HUMAN_INT.fullmatch(v)
                if m is None:
                    int(v)
                elif m.group(2) in "KMGT" and "." in m.group(1):
                    return (
                        f"{value!r}: no decimals with binary suffixes (did you mean {m.group(1)}{m.group(2).lower()}?)"
                    )
        elif kind == "json":
            json.loads(value)
        elif kind == "json_object":
            expanded = re.sub(r"\b\d+(?:\.\d+)?[kKmMgGtT]\b", "0", value)  # 80g etc. are numbers to vLLM
            if not isinstance(json.loads(expanded), dict):
                return f"{value!r} is not a JSON object"
        elif kind == "json_or_str":
            if re.match(r"(?s)^\s*{.*}\s*$", value):
                json.loads(value)
    except ValueError:
        what = {
            "int": "an integer",
            "float": "a number",
            "human_int": "an integer (1k, 2M ... allowed)",
            "human_int_or_auto": "an integer (1k ... allowed), -1 or auto",
            "json": "JSON",
            "json_object": "a JSON object",
            "json_or_str": "JSON",
        }.get(kind, kind)
        return f"{value!r} is not {what}"
    if flag.choices is not None and value not in flag.choices:
        return f"{value!r} is not one of {', '.join(flag.choices)}"
    return None


def _nargs_range(flag: Flag) -> tuple[int, int | None]:
    n = flag.nargs
    if not flag.takes_value:
        return 0, 0
    if n is None:
        return 1, 1
    if n == "?":
        return 0, 1
    if n == "+":
        return 1, None
    if n == "*":
        return 0, None
    return int(n), int(n)


def parse_extra_args(args: list[str], table: FlagTable | None = None) -> ParsedArgs:
    """Read ``args`` as vLLM's parser would (appended after the stack's own flags).

    Returns every flag found, with its values as written, and every problem, each naming the
    position of the item at fault: unknown flags (with a did-you-mean), ambiguous prefixes, values
    of the wrong type or outside the choices, missing values, a value given to a switch, stray
    values that follow no flag, one item holding "flag value", and a flag given twice.
    """
    table = table or load_table()
    found: list[ParsedArg] = []
    problems: list[ArgProblem] = []
    i = 0
    items = [str(a) for a in args]
    while i < len(items):
        item = items[i]
        index = i
        i += 1
        stray, stop = _not_a_flag(index, item)
        if stray is not None:
            problems.append(stray)
            if stop:
                break
            continue
        token = _optimization_level(_normalise(item), items, i)
        if "." in token.split("=", 1)[0]:
            i, parsed = _read_json_key(table, items, i, index, item, token)
        else:
            i, parsed = _read_flag(table, items, i, index, item, token)
        if isinstance(parsed, ParsedArg):
            found.append(parsed)
        else:
            problems.append(parsed)
    problems += _duplicates(found)
    problems.sort(key=lambda p: p.index)
    return ParsedArgs(found, problems)


def _not_a_flag(index: int, item: str) -> tuple[ArgProblem | None, bool]:
    """The problem of an item that is no flag (None: it reads as one), and whether it ends the options."""
    head = item.split("=", 1)[0]
    if item.startswith("-") and len(item) > 1 and re.search(r"\s", head):
        words = item.split()
        hint = f" [{', '.join(repr(w) for w in words)}]" if len(words) > 1 else f" {item.strip()!r}"
        return ArgProblem(
            index,
            (
                f"{item!r} is one list item holding a flag and its value; vLLM reads it as a single word "
                f"(not the flag), so write each as its own item:{hint}"
                + (f" (or {words[0]}={' '.join(words[1:])})" if len(words) > 1 else "")
            ),
            "stray_value",
        ), False
    if not _looks_like_option(item):
        return ArgProblem(
            index,
            (
                f"{item!r} follows no flag that takes a value; vLLM would take it as the model to serve "
                "(or refuse it). Put it right after its flag, or use --flag=value"
            ),
            "stray_value",
        ), False
    if item == "--":
        return ArgProblem(
            index,
            "'--' ends vLLM's options: everything after it would be taken as the model to serve",
            "stray_value",
        ), True
    return None, False


def _optimization_level(token: str, items: list[str], i: int) -> str:
    """FlexibleArgumentParser: -O3, -O=3 and -O 3 mean --optimization-level 3 (``i``: the next item)."""
    if token.startswith("-O") and not token.startswith("--"):
        if token == "-O":
            if i < len(items) and items[i] in _OPT_LEVELS:
                token = "--optimization-level"
        else:
            token = "--optimization-level=" + (token[3:] if token[2:3] == "=" else token[2:])
    return token


def _read_json_key(
    table: FlagTable, items: list[str], i: int, index: int, item: str, token: str
) -> tuple[int, ParsedArg | ArgProblem]:
    """--compilation-config.mode 3: one key of a JSON flag (vLLM merges them into one JSON value).
    Returns the position of the next item and what was read."""
    key, eq, value = token.partition("=")
    base = key.split(".", 1)[0]
    flag, option, _, ambiguous, abbrev = _resolve(table, base)
    if flag is None or option is None:  # _resolve: both or neither
        return i, _unknown(table, index, item, base, ambiguous)
    if flag.type not in ("json", "json_object", "json_or_str"):
        return i, ArgProblem(index, f"{item!r}: {flag.name} takes no JSON keys (the '.' form is for JSON flags)")
    if not eq:
        if i >= len(items):
            return i, ArgProblem(index, f"{item!r} expects a value")
        value = items[i]
        i += 1
    return i, ParsedArg(flag, item, option, (value,), index, abbrev)


def _read_flag(
    table: FlagTable, items: list[str], i: int, index: int, item: str, token: str
) -> tuple[int, ParsedArg | ArgProblem]:
    """A flag and the values that follow it (or its ``=value``), checked against the flag's type.
    Returns the position of the next item and what was read."""
    flag, option, explicit, ambiguous, abbrev = _resolve(table, token)
    if flag is None or option is None:  # _resolve: both or neither
        problem = _unknown(table, index, item, token.split("=", 1)[0], ambiguous)
        while i < len(items) and not _looks_like_option(items[i]):
            i += 1  # its values: one problem per unknown flag, not one per word
        return i, problem
    lo, hi = _nargs_range(flag)
    values: list[str] = []
    if explicit is not None:
        if hi == 0:
            alt = f" or --no-{flag.name[2:]}" if flag.action == "boolean_optional" else ""
            return i, ArgProblem(index, f"{item!r}: {flag.name} is a switch and takes no value; write {flag.name}{alt}")
        values.append(explicit)  # argparse: an explicit value is the only one
    else:
        while (hi is None or len(values) < hi) and i < len(items) and not _looks_like_option(items[i]):
            values.append(items[i])
            i += 1
        if len(values) < lo:
            return i, ArgProblem(index, f"{item!r} expects {'a value' if lo == 1 else f'{lo} values'} but none follows")
    bad = next((p for p in (_check_value(flag, v) for v in values) if p), None)
    if bad:
        return i, ArgProblem(index, f"{item}: {bad}")
    return i, ParsedArg(flag, item.split("=", 1)[0], option, tuple(values), index, abbrev)


def _duplicates(found: list[ParsedArg]) -> list[ArgProblem]:
    """A flag given twice (argparse keeps the last); appended flags and JSON keys may repeat."""
    problems: list[ArgProblem] = []
    seen: dict[str, ParsedArg] = {}
    for a in found:
        if a.flag.dest in seen and a.flag.action != "append" and "." not in a.given:
            first = seen[a.flag.dest]
            problems.append(
                ArgProblem(
                    a.index,
                    (
                        f"{a.given} sets {a.flag.name} again (first as {first.given} at position {first.index}); "
                        "vLLM silently keeps the last one: give it once"
                    ),
                    "duplicate",
                    a.flag.dest,
                )
            )
        seen.setdefault(a.flag.dest, a)
    return problems


def _unknown(table: FlagTable, index: int, item: str, name: str, ambiguous: list[str]) -> ArgProblem:
    if ambiguous:
        shown = ", ".join(ambiguous[:6]) + (", ..." if len(ambiguous) > 6 else "")
        return ArgProblem(
            index, f"{item!r} is ambiguous: vLLM cannot tell which flag it means ({shown}); write the full flag"
        )
    close = difflib.get_close_matches(name, list(table.by_option), n=3, cutoff=0.6)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    return ArgProblem(index, f"{item!r} is not a flag of vLLM {table.vllm_version}{hint}")


# ------------------------------------------------------------------------------------------------
# what the stack cannot allow in extra args
# ------------------------------------------------------------------------------------------------
#: Sample engine args that make vllm_args render every flag it can (the managed set is derived
#: from that rendering, so a flag added to vllm_args is managed here without a second list).
_SAMPLE_ENGINE = {
    "served_model_name": "m",
    "tensor_parallel_size": 2,
    "pipeline_parallel_size": 2,
    "max_model_len": 4096,
    "gpu_memory_utilization": 0.9,
    "dtype": "auto",
    "quantization": "awq",
    "enable_prefix_caching": True,
    "max_num_seqs": 8,
    "lora_adapters": [{"name": "a", "path": "/models/a", "rank": 8}],
    "max_loras": 1,
}

#: Flags the pod sets by other means than vllm_args, and why extra args must not.
SET_OUTSIDE_ARGS = {
    "api_key": "the API key comes from a Secret (VLLM_API_KEY); a key in args would be plain text in the pod spec",
    "revision": "the weights are the cache's pinned revision (served offline from the cache)",
}

#: Flags that change how many GPUs a replica needs, or make a replica span pods/nodes: the pod
#: requests tensor x pipeline parallel GPUs (vLLM's world size = tp x pp x prefill-context-parallel,
#: and data parallelism runs that many engines per replica), so each would leave the replica
#: short of GPUs or waiting for peers that never come.
GPU_COUNT_FLAGS = {
    "data_parallel_size": (
        "runs several engine copies in one replica, each on its own tensor x pipeline GPUs, but the "
        "pod requests GPUs for one; for more copies raise replicas (or autoscaling)"
    ),
    "data_parallel_size_local": "is part of data parallelism, which the stack does not render; raise replicas instead",
    "data_parallel_rank": "is part of multi-node data parallelism, which the stack does not render",
    "data_parallel_start_rank": "is part of multi-node data parallelism, which the stack does not render",
    "data_parallel_address": "is part of multi-node data parallelism, which the stack does not render",
    "data_parallel_rpc_port": "is part of multi-node data parallelism, which the stack does not render",
    "data_parallel_backend": "is part of data parallelism, which the stack does not render",
    "data_parallel_hybrid_lb": "is part of data parallelism, which the stack does not render",
    "data_parallel_external_lb": "is part of data parallelism, which the stack does not render",
    "data_parallel_multi_port_external_lb": "is part of data parallelism, which the stack does not render",
    "prefill_context_parallel_size": (
        "multiplies the GPUs a replica needs (world size = tensor x pipeline x "
        "prefill-context parallel) but the pod requests tensor x pipeline"
    ),
    "nnodes": "spreads one replica over several nodes; a replica here is one pod on one node",
    "node_rank": "is for a replica spread over several nodes; a replica here is one pod on one node",
    "enable_elastic_ep": "scales data-parallel engines inside a replica, beyond the GPUs the pod requests",
    "elastic_ep_max_dp_size": "scales data-parallel engines inside a replica, beyond the GPUs the pod requests",
}

#: Flags with which the container would not serve what the pod expects.
NOT_SERVING_FLAGS = {
    "help": "prints help and exits: the server never starts",
    "headless": "starts no API server: probes, Service and clients get nothing",
    "config": "reads flags from a YAML file in the container, which the stack cannot check; put them in extra args",
    "uds": "listens on a Unix socket instead of the port the probes, Service and NetworkPolicy use",
    "grpc": "serves gRPC on the port the HTTP probes and clients use",
}


@functools.lru_cache(maxsize=1)
def managed_dests() -> frozenset[str]:
    """Destinations of the flags the stack sets itself: what vllm_args renders, plus SET_OUTSIDE_ARGS."""
    from .vllm_pod import vllm_args  # here: vllm_pod does not depend on this module

    rendered = vllm_args(dict(_SAMPLE_ENGINE), "/models/m")  # type: ignore[arg-type]
    parsed = parse_extra_args([str(a) for a in rendered])
    if parsed.problems:  # the renderer itself must speak vLLM
        raise AssertionError(f"vllm_args renders flags vLLM {load_table().vllm_version} refuses: {parsed.problems}")
    return frozenset(a.flag.dest for a in parsed.args) | frozenset(SET_OUTSIDE_ARGS)


def extra_args_problems(args: list[str], table: FlagTable | None = None) -> tuple[ParsedArgs, list[ArgProblem]]:
    """Parse ``args`` and list everything wrong with them as extra args of a stack-rendered server:
    the parser's problems, then managed flags, GPU-count flags, flags that stop serving, and
    abbreviations. Managed flags are reported with the dest, so callers can name their own key."""
    table = table or load_table()
    parsed = parse_extra_args(args, table)
    problems = list(parsed.problems)
    managed = managed_dests()
    for a in parsed.args:
        dest, how = a.flag.dest, (a.given if a.given == a.flag.name else f"{a.given} (that is {a.flag.name})")
        if dest in managed:
            why = SET_OUTSIDE_ARGS.get(dest, "the stack renders it from its own setting")
            problems.append(ArgProblem(a.index, f"{how} is set by the stack ({why})", "managed", dest))
        elif dest in GPU_COUNT_FLAGS:
            problems.append(ArgProblem(a.index, f"{how} {GPU_COUNT_FLAGS[dest]}", "gpu_count", dest))
        elif dest in NOT_SERVING_FLAGS:
            problems.append(ArgProblem(a.index, f"{how} {NOT_SERVING_FLAGS[dest]}", "not_serving", dest))
        elif a.abbreviation:
            problems.append(
                ArgProblem(
                    a.index,
                    (
                        f"{a.given} is an abbreviation vLLM expands to {a.option}; write {a.option} (an abbreviation "
                        "changes meaning or breaks when a newer vLLM adds a flag with the same prefix)"
                    ),
                    "abbreviation",
                    dest,
                )
            )
    problems.sort(key=lambda p: p.index)
    return parsed, problems


#: The serving components' arg that renders a managed flag whose dest is not an ``engine`` key of
#: the same name (None: the component fixes the flag itself).
_COMPONENT_ARG_OF_DEST = {
    "model": "model_path",
    "host": None,
    "port": None,
    "api_key": "api_key",
    "enable_lora": "engine.lora_adapters",
    "lora_modules": "engine.lora_adapters",
    "max_lora_rank": "engine.lora_adapters",
}


def check_extra_args(component: str, name: str, engine: Any) -> None:
    """A serving component's check of ``engine.extra_args`` on entry (the same rules the stack
    applies to its ``extraArgs``): raise ``ComponentArgsError`` naming ``engine.extra_args[i]``
    for the first flag vLLM would refuse, one the component renders itself, one that changes the
    GPU count or stops serving, or an abbreviation. An importing project gets this protection
    without the stack."""
    from .._core.validation import ComponentArgsError  # here: validation is imported by the components, not the table
    from .vllm_pod import VllmEngineArgs

    extra = list(engine.get("extra_args") or [])
    parsed, problems = extra_args_problems(extra)
    if not problems:
        return
    p = problems[0]
    path = f"engine.extra_args[{p.index}]"
    if p.kind != "managed":
        raise ComponentArgsError(component, name, path, p.message)
    assert p.dest is not None  # a "managed" problem always names its flag's dest
    flag = load_table().flag(p.dest).name
    given = next(a.given for a in parsed.args if a.index == p.index)
    spelled = given if given == flag else f"{given} (that is {flag})"
    arg = _COMPONENT_ARG_OF_DEST.get(p.dest, f"engine.{p.dest}" if p.dest in VllmEngineArgs.__annotations__ else None)
    if arg is not None and p.dest not in SET_OUTSIDE_ARGS:
        raise ComponentArgsError(
            component, name, path, f"sets {spelled}, which {component} renders from args.{arg}; set that instead"
        )
    why = SET_OUTSIDE_ARGS.get(
        p.dest, "the Service, probes and NetworkPolicy use the port and address the component sets"
    )
    raise ComponentArgsError(component, name, path, f"sets {spelled}, which {component} sets itself: {why}")
