"""The README's "Connect Label Studio in five minutes" section, read as the tests run it: the Label Studio
start command (the integration tests start Label Studio with it), Tailor's exports, the labeling config.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
TITLE = "## Connect Label Studio in five minutes"


def section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(TITLE)
    end = text.find("\n## ", start + len(TITLE))
    return text[start:end if end > 0 else None]


def bash_blocks() -> list[str]:
    return [b.replace("\\\n", " ") for b in re.findall(r"```bash\n(.*?)```", section(), re.S)]


def label_studio_start() -> tuple[dict[str, str], list[str]]:
    """The environment and the arguments of the README's `label-studio start` line."""
    line = next(l for l in bash_blocks()[0].splitlines() if "label-studio start" in l)
    words = shlex.split(line)
    exe = next(i for i, w in enumerate(words) if w.endswith("label-studio"))
    env = dict(w.split("=", 1) for w in words[:exe])
    return env, words[exe + 1:]


def tailor_exports() -> list[str]:
    """The README's `export TAILOR_...=...` lines, as written."""
    return [l for l in bash_blocks()[1].splitlines() if l.startswith("export TAILOR_")]


def label_config() -> str:
    step = section().split("\n1. ", 1)[1].split("\n2. ", 1)[0]
    return re.search(r"`(<View>.*?</View>)`", step, re.S).group(1).replace("\n   ", " ")
