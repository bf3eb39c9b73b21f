"""A small Dockerfile reader: enough to check the file and replay its builder stage."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    args: str  # the rest of the line, continuations joined


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        """ENV ``K=V`` pairs in order (later ones win)."""
        values: dict[str, str] = {}
        for inst in self.all("ENV"):
            for token in shlex.split(inst.args):
                key, sep, value = token.partition("=")
                assert sep, f"use ENV KEY=VALUE, not {inst.args!r}"
                values[key] = value
        return values


@dataclass(frozen=True)
class Copy:
    sources: tuple[str, ...]
    dest: str
    from_stage: str | None
    flags: tuple[str, ...]


def instructions(text: str) -> list[Instruction]:
    """Instructions of a Dockerfile, comments dropped and ``\\`` continuations joined."""
    result: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        result.append(Instruction(keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a continued instruction"
    return result


def parse(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """Global ARGs (before the first FROM) and the stages, in order."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for inst in instructions(path.read_text()):
        if inst.keyword == "FROM":
            parts = inst.args.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(base=parts[0], name=name))
        elif not stages:
            assert inst.keyword == "ARG", f"{inst.keyword} before the first FROM"
            key, _, value = inst.args.partition("=")
            global_args[key] = value
        else:
            stages[-1].instructions.append(inst)
    return global_args, stages


def parse_copy(inst: Instruction) -> Copy:
    tokens = shlex.split(inst.args)
    flags = tuple(t for t in tokens if t.startswith("--"))
    paths = [t for t in tokens if not t.startswith("--")]
    from_stage = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
    return Copy(tuple(paths[:-1]), paths[-1], from_stage, flags)


def run_command(inst: Instruction) -> str:
    """A RUN's shell command without BuildKit's ``--mount=...`` flags."""
    return re.sub(r"^(--[a-z-]+=\S+\s+)+", "", inst.args).strip()


def substitute(text: str, values: dict[str, str]) -> str:
    """Expand ``${NAME}`` and ``$NAME`` from ``values`` (build args)."""

    def repl(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, match.group(0))

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", repl, text)
