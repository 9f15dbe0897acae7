"""The system under test, as one typed object built from the components' own sections.

A topology file is YAML (see `harness/topologies/shop.yaml`, the default). Each kind of part
(harness/components/) owns one top-level key and its pydantic model; `TopologyModel` is
`Topology` with one field per component, made from the registry. `load_topology` parses a
file once, at the edge, in two passes, and nothing starts on a problem:

1. shape (pydantic): types, ranges, each component's own rules;
2. references (`Topology.problems`): names unique across the lab, and what each component's
   `check` says of the others (a route naming a service, a worker pool naming a queue).

Every problem of either pass is a line `file:line:col: field.path: message` (`InputError`):
a reference error points at the field that is wrong, not at the document.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationInfo, create_model, model_validator

from harness.components import COMPONENTS
from harness.components.base import Loc, Problem, Shape, Strict
from harness.errors import InputError
from harness.yamlfile import position, read_yaml, validate

DEFAULT_TOPOLOGY = Path(__file__).resolve().parent / "topologies" / "shop.yaml"

_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")
_DEFERRED = "references checked by load_topology"


class Topology(Strict):
    """What every topology has besides its components' sections (see `TopologyModel`)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,30}$")

    @model_validator(mode="after")
    def _references(self, info: ValidationInfo) -> Topology:
        if info.context == _DEFERRED:
            return self
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(f"{_dotted(loc)}: {message}" for loc, message in problems))
        return self

    def spec(self, component: Any) -> Any:
        """`component`'s section (its `default` when the file leaves it out)."""
        return getattr(self, component.section)

    def problems(self) -> list[Problem]:
        """What the shape cannot say, each problem at its field path."""
        problems: list[Problem] = []
        taken = {name: f"the {name}" for c in COMPONENTS for name in c.reserved}
        for component in COMPONENTS:
            for loc, name, what in component.named(self):
                if not _NAME.fullmatch(name):
                    problems.append(
                        (loc, f"{what} name {name!r}: lowercase letters, digits, '-' (max 31)")
                    )
                elif name in taken:
                    problems.append((loc, f"{what} name {name!r} is taken by {taken[name]}"))
                taken.setdefault(name, f"{what} {name!r}")
        for component in COMPONENTS:
            problems += component.check(self)
        return problems

    def shapes(self) -> dict[str, Shape]:
        """Everything chaos can name, as declared: services, worker pools, the queue..."""
        return {name: s for c in COMPONENTS for name, s in c.shapes(self).items()}


def _model() -> type[Topology]:
    fields: dict[str, Any] = {
        c.section: (c.spec, c.default) for c in COMPONENTS if c.section is not None
    }
    model: type[Topology] = create_model("Topology", __base__=Topology, **fields)
    return model


TopologyModel = _model()
"""`Topology` with a field per component section: what files and code parse into."""


def topology_from(data: dict[str, Any]) -> Topology:
    """A topology built in code (tests, examples); ValueError on any problem."""
    return TopologyModel.model_validate(data)


def load_topology(path: Path | None = None) -> Topology:
    """The topology in `path` (the shipped `shop` topology when None)."""
    path = path or DEFAULT_TOPOLOGY
    data = read_yaml(path)
    if data is None:
        raise InputError([f"{path}:1:1: the file is empty"])
    topology = validate(data, TopologyModel, path, context=_DEFERRED)
    problems = topology.problems()
    if problems:
        raise InputError([_line(path, data, loc, message) for loc, message in problems])
    return topology


def _line(path: Path, data: object, loc: Loc, message: str) -> str:
    line, col = position(data, loc)
    return f"{path}:{line}:{col}: {_dotted(loc)}: {message}"


def _dotted(loc: Loc) -> str:
    return ".".join(map(str, loc)) or "(document)"
