"""The doc-test markers: explicit, with a reason, and never silently ignored."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.docs.doc_blocks import MarkerError, all_blocks, blocks_of

Write = Callable[[str], Path]


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str], Path]:
    def make(text: str) -> Path:
        path = tmp_path / "doc.md"
        path.write_text(text, encoding="utf-8")
        return path

    return make


def test_markers_skip_or_stream(write: Write) -> None:
    path = write(
        "intro\n\n<!-- doc-test: skip (needs a Kubernetes cluster) -->\n"
        "```sh\nkubectl get pods\n```\n"
        "\n<!-- doc-test: stream 3s (runs until interrupted) -->\n\n```bash\ncurl -N x\n```\n"
        "- a list\n\n  ```python\n  print(1)\n    print(2)\n  ```\n```json\n{}\n```\n"
    )
    skip, stream, python, json = blocks_of(path, path.parent)
    assert (skip.lang, skip.skip, skip.line) == ("sh", "needs a Kubernetes cluster", 4)
    assert (stream.stream_seconds, stream.skip) == (3, None)
    assert python.code == "print(1)\n  print(2)\n"
    assert python.runs
    assert not json.runs


@pytest.mark.parametrize(
    "marker",
    [
        "<!-- doc-test: skip -->",  # no reason
        "<!-- doc-test: skip () -->",
        "<!-- doc-test: skp (typo) -->",
        "<!-- doc-test: stream (no time) -->",
        "<!-- doc-test: stream 999s (too long) -->",
    ],
)
def test_a_bad_marker_fails(write: Write, marker: str) -> None:
    path = write(f"{marker}\n```sh\ntrue\n```\n")
    with pytest.raises(MarkerError, match="unknown doc-test marker"):
        blocks_of(path, path.parent)


def test_a_marker_must_sit_on_a_block(write: Write) -> None:
    path = write("<!-- doc-test: skip (why) -->\nsome prose\n```sh\ntrue\n```\n")
    with pytest.raises(MarkerError, match="not before a block"):
        blocks_of(path, path.parent)
    path = write("<!-- doc-test: skip (why) -->\n```json\n{}\n```\n")
    with pytest.raises(MarkerError, match="json block"):
        blocks_of(path, path.parent)
    path = write("<!-- doc-test: stream 3s (why) -->\n```python\npass\n```\n")
    with pytest.raises(MarkerError, match="unknown doc-test marker"):
        blocks_of(path, path.parent)


def test_the_repository_docs_parse() -> None:
    blocks = all_blocks()
    runnable = [b for b in blocks if b.runs]
    assert len(runnable) >= 20
    assert any(b.lang == "python" and not b.skip for b in runnable)
    assert all(b.skip is None or b.skip.strip() for b in runnable)
