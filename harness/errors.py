"""Errors about what the user gave (kept apart so the CLI can catch them without loading the
YAML and pydantic machinery that raises them)."""

from __future__ import annotations


class InputError(Exception):
    """A file (or value) the user gave is wrong; `problems` are ready-to-print lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
