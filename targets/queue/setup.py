"""``--queues-file``: the queues a queue process creates as it starts, before it serves.

    {"queues": [
        {"name": "emails", "attributes": {"VisibilityTimeout": "10"},
         "dead_letter": {"queue": "emails-dlq", "max_receive_count": 3}}
    ]}

Each entry is CreateQueue with SQS attributes; ``dead_letter`` creates that queue too (with
no attributes, when missing) and sets the RedrivePolicy to its ARN. Creation is idempotent,
so a restarted queue process reads the same file over its existing database without harm.
The harness writes this file from a topology's ``queues``; docker-compose.yml mounts one.
A bad file stops the process before it serves, with one line naming the file and the entry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from targets.queue.errors import QueueError
from targets.queue.store import QueueStore


@dataclass(frozen=True, slots=True)
class QueueDecl:
    name: str
    attributes: dict[str, str] = field(default_factory=dict)
    dead_letter: str | None = None  # the dead-letter queue's name
    max_receive_count: int = 0


def _entry(raw: Any, where: str) -> QueueDecl:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise ValueError(f"{where}: expected an object with a string `name`")
    unknown = set(raw) - {"name", "attributes", "dead_letter"}
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    attributes = raw.get("attributes", {})
    if not isinstance(attributes, dict):
        raise ValueError(f"{where}.attributes: expected an object of SQS attributes")
    dead = raw.get("dead_letter")
    if dead is None:
        return QueueDecl(raw["name"], {str(k): str(v) for k, v in attributes.items()})
    if (
        not isinstance(dead, dict)
        or not isinstance(dead.get("queue"), str)
        or type(dead.get("max_receive_count")) is not int
    ):
        raise ValueError(
            f'{where}.dead_letter: expected {{"queue": name, "max_receive_count": int}}'
        )
    return QueueDecl(
        raw["name"],
        {str(k): str(v) for k, v in attributes.items()},
        dead["queue"],
        dead["max_receive_count"],
    )


def load_queues_file(path: Path) -> list[QueueDecl]:
    """The declarations in `path`; ValueError naming the file (and the entry) when bad."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"--queues-file {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("queues"), list):
        raise ValueError(f'--queues-file {path}: expected {{"queues": [...]}}')
    where = f"--queues-file {path}: queues"
    return [_entry(raw, f"{where}[{i}]") for i, raw in enumerate(data["queues"])]


def create_queues(store: QueueStore, decls: list[QueueDecl], source: Path) -> None:
    """Create every declared queue (dead-letter queues first); ValueError naming the entry."""
    for i, decl in enumerate(decls):
        where = f"--queues-file {source}: queues[{i}] ({decl.name})"
        attributes = dict(decl.attributes)
        try:
            if decl.dead_letter is not None:
                if decl.dead_letter not in store.queue_names():
                    store.create_queue(decl.dead_letter)
                arn = store.get_queue_attributes(decl.dead_letter, ("QueueArn",))["QueueArn"]
                policy = {"deadLetterTargetArn": arn, "maxReceiveCount": decl.max_receive_count}
                attributes["RedrivePolicy"] = json.dumps(policy)
            store.create_queue(decl.name, attributes)
        except QueueError as error:
            raise ValueError(f"{where}: {error.code}: {error.message}") from None
