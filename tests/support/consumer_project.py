"""The consumer project the README's "Using the components from another Pulumi project" section
shows: each ```python (or ```ini) block there starts with ``# <path>``, its file in that project."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## Using the components from another Pulumi project"


def files() -> dict[str, str]:
    readme = (ROOT / "README.md").read_text()
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    section = readme[start : end if end != -1 else None]
    out = {}
    for code in re.findall(r"```(?:python|ini)\n(.*?)```", section, re.S):
        first, _, body = code.partition("\n")
        match = re.fullmatch(r"# ([\w./-]+\.(?:py|ini))", first.strip())
        assert match, f"a code block in the README's consumer section does not start with '# <path>': {first!r}"
        out[match.group(1)] = body
    return out


def write(target: Path) -> Path:
    for rel, code in files().items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code)
    return target
