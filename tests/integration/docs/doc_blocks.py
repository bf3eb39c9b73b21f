"""Every shell and Python block of README.md and docs/*.md, with its doc-test marker.

A block runs unless the comment right before it says otherwise:

    <!-- doc-test: skip (needs a Kubernetes cluster) -->
    <!-- doc-test: stream 3s (a live tail runs until interrupted) -->

`skip` never runs the block; `stream Ns` runs it and stops it after N seconds
(it passes if it is still running then, has printed something and has not
failed). Both need a reason in parentheses; any other `doc-test:` text is an
error, so a typo cannot skip a block silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SHELL = frozenset({"sh", "bash", "shell"})
PYTHON = frozenset({"python", "py"})

FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
MARKER = re.compile(r"<!--\s*doc-test:(?P<text>.*?)-->", re.DOTALL)
SKIP = re.compile(r"^skip \((?P<reason>[^()]*\S[^()]*)\)$")
STREAM = re.compile(r"^stream (?P<seconds>\d{1,2})s \((?P<reason>[^()]*\S[^()]*)\)$")


class MarkerError(ValueError):
    pass


@dataclass(frozen=True)
class Block:
    document: str  # relative to the repository root
    line: int
    lang: str
    code: str
    skip: str | None = None
    stream_seconds: int | None = None

    @property
    def name(self) -> str:
        return f"{self.document}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.lang in SHELL | PYTHON


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _dedent(body: str, indent: str) -> str:
    return "".join(
        line[len(indent) :] if line.startswith(indent) else line
        for line in body.splitlines(keepends=True)
    )


COMMENT = re.compile(r"\s*<!--.*?-->", re.DOTALL)


def _markers(text: str, document: str, fence_starts: set[int]) -> dict[int, str]:
    """fence start → the doc-test marker right above it (blank lines and comments between)."""
    found: dict[int, str] = {}
    for marker in MARKER.finditer(text):
        pos = marker.end()
        while comment := COMMENT.match(text, pos):
            pos = comment.end()
        # The fence starts at the beginning of the next non-blank line.
        rest = text[pos:]
        start = pos + len(rest) - len(rest.lstrip())
        start = text.rfind("\n", 0, start) + 1
        if start not in fence_starts:
            line = text.count("\n", 0, marker.start()) + 1
            raise MarkerError(f"{document}:{line}: doc-test marker not before a block")
        found[start] = " ".join(marker["text"].split())
    return found


def blocks_of(path: Path, root: Path = ROOT) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    document = str(path.relative_to(root))
    fences = list(FENCE.finditer(text))
    markers = _markers(text, document, {fence.start() for fence in fences})
    blocks: list[Block] = []
    for fence in fences:
        line = text.count("\n", 0, fence.start()) + 1
        lang = fence["lang"].lower()
        marker = markers.get(fence.start())
        where = f"{document}:{line}"
        skip: str | None = None
        seconds: int | None = None
        if marker is not None:
            if lang not in SHELL | PYTHON:
                raise MarkerError(f"{where}: doc-test marker on a {lang or 'plain'} block")
            if m := SKIP.match(marker):
                skip = m["reason"].strip()
            elif (m := STREAM.match(marker)) and lang in SHELL:
                seconds = int(m["seconds"])
            else:
                raise MarkerError(
                    f"{where}: unknown doc-test marker {marker!r}; "
                    "use `skip (reason)` or, for a shell block, `stream Ns (reason)`"
                )
        code = _dedent(fence["body"], fence["indent"])
        blocks.append(Block(document, line, lang, code, skip, seconds))
    return blocks


def all_blocks() -> list[Block]:
    return [block for path in documents() for block in blocks_of(path)]
