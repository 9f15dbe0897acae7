"""Typed YAML files: parsed once at the edge into a pydantic model, errors with file:line:col.

`load_model(path, Model)` reads YAML 1.2 with ruamel (so `no` stays a string), validates it
with pydantic (`extra="forbid"` in the models catches typos), and turns every error into a line
like `topology.yaml:12:5: services.orders.replicas: Input should be greater than 0 (got 0)`.
Nothing downstream ever sees an unvalidated dict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from harness.errors import InputError

M = TypeVar("M", bound=BaseModel)


def read_yaml(path: Path) -> Any:
    """The YAML document in `path` (with line marks), or InputError naming file:line:col."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError([f"{path}: cannot read: {exc.strerror}"]) from None
    try:
        return YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise InputError([f"{where}: {exc.problem or exc}"]) from None


def load_model(path: Path, model: type[M]) -> M:
    """Parse and validate `path` as `model`; InputError lists every problem with its place."""
    data = read_yaml(path)
    if data is None:
        raise InputError([f"{path}:1:1: the file is empty"])
    return validate(data, model, path)


def validate(data: Any, model: type[M], path: Path, context: Any = None) -> M:
    """Validate an already-read document (keeps its line marks for the error lines);
    `context` goes to the model's validators."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise InputError(
            [_describe(path, data, err) for err in exc.errors(include_url=False)]
        ) from None


def _describe(path: Path, data: Any, err: Any) -> str:
    loc = tuple(err["loc"])
    line, col = position(data, loc)
    field = ".".join(str(p) for p in loc) or "(document)"
    message = err["msg"]
    # a custom error ("{message}" in its context) names the value itself
    own = "message" in (err.get("ctx") or {})
    if err["type"] not in ("missing", "extra_forbidden") and "input" in err and not own:
        message += f" (got {_short(err['input'])})"
    if err["type"] == "extra_forbidden":
        message = "unknown field (a typo?)"
    return f"{path}:{line}:{col}: {field}: {message}"


def position(data: Any, loc: tuple[Any, ...]) -> tuple[int, int]:
    """1-based line and column of the deepest node of `loc` that exists in the document."""
    line, col = 1, 1
    node = data
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            key_line, key_col = node.lc.key(part)
            line, col = key_line + 1, key_col + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            item_line, item_col = node.lc.item(part)
            line, col = item_line + 1, item_col + 1
            node = node[part]
        elif isinstance(node, CommentedMap):
            continue  # a union's tag (e.g. `latency` in chaos.2.latency.latency_ms): not a key
        else:
            break
    return line, col


def _short(value: Any) -> str:
    text = repr(value if not isinstance(value, CommentedMap | CommentedSeq) else type(value)())
    return text if len(text) <= 60 else text[:57] + "..."
