"""README.md, followed literally: every shell block runs, in order, and shown output still matches.

A block is a fenced code block. `sh` blocks run in bash (`set -euo pipefail`) from the
repository root, one after another, each with the variables the blocks before it exported
(`export -p` is carried over). `console` blocks hold `$ command` lines, each followed by the
output it shows: the command runs and every shown line must appear in its output, in order,
with numbers (ports, pids, counts) free to differ. `yaml` blocks must parse. Blocks in any
other language (or none) are text.

Markers, an HTML comment on the line before a block (invisible on GitHub):

- `<!-- readme-test: skip REASON -->`: an illustrative block, not run (the reason is required);
- `<!-- readme-test: background -->`: a `console` block whose command keeps running (`harness
  up`): it is started, its shown output awaited, and it is stopped at the end.

Processes a block leaves in the background (`cmd &`) are recorded by pid and stopped when the
test ends, as is the background command.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ruamel.yaml import YAML

pytestmark = pytest.mark.core

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARKER = re.compile(r"<!--\s*readme-test:\s*(skip|background)\b\s*(.*?)\s*-->")
FENCE = re.compile(r"^```(\w*)\s*$")
BLOCK_TIMEOUT_S = 300
BACKGROUND_TIMEOUT_S = 120


@dataclass(frozen=True)
class Block:
    line: int
    """1-based line of the opening fence."""
    lang: str
    text: str
    mode: str = "run"
    """run, skip or background."""
    reason: str = ""

    @property
    def where(self) -> str:
        return f"README.md:{self.line} ({self.lang or 'text'})"


def blocks(markdown: str) -> list[Block]:
    """The fenced blocks of `markdown`, with the marker on the line before each, if any."""
    lines = markdown.splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        marker = MARKER.search(lines[i - 1]) if i > 0 else None
        mode, reason = (marker.group(1), marker.group(2)) if marker else ("run", "")
        text = "\n".join(lines[i + 1 : end]) + "\n"
        found.append(Block(i + 1, opening.group(1), text, mode, reason))
        i = end + 1
    return found


def commands(block: Block) -> list[tuple[str, list[str]]]:
    """A console block's `$ command` lines, each with the output lines shown under it."""
    out: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            out.append((line[2:], []))
        elif out and line.strip():
            out[-1][1].append(line)
        elif line.strip():
            raise AssertionError(f"{block.where}: output before any `$ ` command: {line!r}")
    return out


def _shape(line: str) -> str:
    """A line with comments cut, numbers as N and runs of spaces as one, for matching."""
    line = line.split("  # ", 1)[0]
    return re.sub(r"\s+", " ", re.sub(r"\d+", "N", line)).strip()


def unmatched(shown: list[str], output: str) -> list[str]:
    """The shown lines that do not appear, in order, in `output` (numbers may differ)."""
    actual = [_shape(line) for line in output.splitlines()]
    missing: list[str] = []
    at = 0
    for line in shown:
        want = _shape(line)
        hit = next((k for k in range(at, len(actual)) if want in actual[k]), None)
        if hit is None:
            missing.append(line)
        else:
            at = hit + 1
    return missing


class Shell:
    """Runs blocks one after another, carrying exported variables, recording background pids."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.env_file = work / "env.sh"
        self.pid_file = work / "pids"
        self.env_file.write_text("")
        self.pid_file.write_text("")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RUSHLAB_")}
        self.env.update(COLUMNS="200", TERM="dumb", NO_COLOR="1")
        self.env.pop("VIRTUAL_ENV", None)
        self.env["PATH"] = ":".join(
            p for p in self.env.get("PATH", "").split(":") if not p.startswith(str(ROOT / ".venv"))
        )
        self.background: list[subprocess.Popen[str]] = []

    def script(self, body: str) -> str:
        return (
            f"set -euo pipefail\ncd {ROOT}\nsource {self.env_file}\n{body}\n"
            f"jobs -p >> {self.pid_file}\nexport -p > {self.env_file}\n"
        )

    def run(self, block: Block, body: str) -> str:
        """Run `body` (from `block`); its output, or an AssertionError naming the block. The
        output goes to a file, not a pipe: a process the block leaves in the background keeps
        it open, and a pipe would not end before that process does."""
        log = self.work / f"block-{block.line}.log"
        with log.open("w") as handle:
            done = subprocess.run(
                ["bash", "--noprofile", "--norc", "-c", self.script(body)],
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=BLOCK_TIMEOUT_S,
                check=False,
            )
        output = log.read_text()
        if done.returncode != 0:
            raise AssertionError(
                f"{block.where} failed (exit {done.returncode}):\n{body}\n--- output:\n"
                + output[-4000:]
            )
        return output

    def start(self, block: Block, command: str, shown: list[str]) -> None:
        """Start a command that keeps running; return once its shown output has appeared."""
        log = self.work / f"background-{block.line}.log"
        with log.open("w") as handle:
            process = subprocess.Popen(
                ["bash", "--noprofile", "--norc", "-c", self.script(f"exec {command}")],
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        self.background.append(process)
        deadline = time.monotonic() + BACKGROUND_TIMEOUT_S
        while unmatched(shown, log.read_text()):
            if process.poll() is not None or time.monotonic() > deadline:
                missing = unmatched(shown, log.read_text())
                raise AssertionError(
                    f"{block.where}: `{command}` did not show {missing}\n--- output:\n"
                    + log.read_text()[-4000:]
                )
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop what the blocks left running: the recorded pids, then the background commands."""
        pids = {int(p) for p in self.pid_file.read_text().split() if p.isdigit()}
        for pid in pids:
            _terminate(pid)
        for process in self.background:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # harness up stops its lab on Ctrl-C
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _terminate(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Shell]:
    runner = Shell(tmp_path)
    try:
        yield runner
    finally:
        runner.stop()


def test_the_markers_are_known_and_every_skip_says_why() -> None:
    """Every marker names a known mode, skips give a reason, and each marker sits on a block."""
    text = README.read_text()
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if "readme-test" in line:
            marker = MARKER.search(line)
            assert marker, f"README.md:{number}: unknown marker {line!r}"
            assert marker.group(1) != "skip" or marker.group(2), f"README.md:{number}: say why"
            assert number < len(lines), f"README.md:{number}: a marker must precede a block"
            assert FENCE.match(lines[number]), f"README.md:{number}: a marker must precede a block"


def test_parsing_of_blocks_markers_and_console_output() -> None:
    """The parser finds fences, markers and console commands; matching ignores numbers."""
    found = blocks(
        "text\n<!-- readme-test: skip it is a sketch -->\n```sh\nrm -rf /\n```\n"
        "```console\n$ echo port 8080\nport 1234\n```\n"
    )
    assert [(b.lang, b.mode, b.reason) for b in found] == [
        ("sh", "skip", "it is a sketch"),
        ("console", "run", ""),
    ]
    assert commands(found[1]) == [("echo port 8080", ["port 1234"])]
    assert unmatched(["port 1234", "b"], "a\nport 99\nb\n") == []
    assert unmatched(["b", "port 1"], "port 2\nb\n") == ["port 1"]  # in order


@pytest.mark.e2e
@pytest.mark.timeout(1200)
def test_every_block_of_the_readme_runs_and_its_output_matches(shell: Shell) -> None:
    """Each sh and console block of README.md, in order, exactly as written: no block fails,
    every console block's shown output still appears, every yaml block parses."""
    ran = 0
    for block in blocks(README.read_text()):
        if block.mode == "skip":
            continue
        if block.lang == "yaml":
            YAML(typ="safe").load(block.text)
        elif block.lang == "sh":
            shell.run(block, block.text)
            ran += 1
        elif block.lang == "console":
            for command, shown in commands(block):
                if block.mode == "background":
                    shell.start(block, command, shown)
                    continue
                output = shell.run(block, command)
                missing = unmatched(shown, output)
                assert not missing, (
                    f"{block.where}: `{command}` no longer shows {missing}\n--- output:\n"
                    + output[-4000:]
                )
            ran += 1
    assert ran >= 5
