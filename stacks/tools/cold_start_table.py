"""The README's cold-start table: each model of the prod stack, its cold start part by part, from the
stated figures (``coldStart``).

    python -m stacks.tools.cold_start_table          # rewrite the table in README.md
    python -m stacks.tools.cold_start_table --check  # exit 1 if README.md is out of date (the test suite runs this)
"""

import re
import sys

from stacks.config import StackConfig
from stacks.config.loader import load
from stacks.tools.render import ROOT, config_env, stack_config_env

README = ROOT / "README.md"
README_BEGIN = (
    "<!-- cold-start-table: generated from Pulumi.prod.yaml by `python -m stacks.tools.cold_start_table`; "
    "do not edit by hand -->"
)
README_END = "<!-- /cold-start-table -->"


def cold_start_table(cfg: StackConfig) -> str:
    """Markdown: each model's cold start, part by part (seconds), from its stated figures."""
    rows = [
        "| model | weights | node | image pull | weights load | engine start | startup probe | total (new node) | "
        "cooldown |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in cfg.models:
        b = m.cold_start_budget
        weights = m.weights_estimate
        rows.append(
            f"| {m.name} | {f'{weights[0]:g} GiB' if weights else 'unknown'} | {b.node_seconds} | {b.image_seconds} | "
            f"{b.weights_seconds} | {b.engine_seconds} | {b.startup_seconds} | {b.total_seconds} | "
            f"{m.cooldown_seconds or '-'} |"
        )
    return "\n".join(rows)


def readme_block(cfg: StackConfig) -> str:
    return f"{README_BEGIN}\n{cold_start_table(cfg)}\n{README_END}"


def load_stack(stack: str) -> StackConfig:
    """The validated config of ``Pulumi.<stack>.yaml``, read as ``pulumi`` would (PULUMI_CONFIG)."""
    project, config, secrets = stack_config_env(stack)
    with config_env(config, secrets):
        return load(project, stack)


def main(argv: list[str]) -> int:
    text = README.read_text()
    block = readme_block(load_stack("prod"))
    pattern = re.compile(re.escape(README_BEGIN) + ".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        print("README.md has no cold-start table markers")
        return 1
    new = pattern.sub(lambda _: block, text)
    if "--check" in argv:
        return 0 if new == text else 1
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
