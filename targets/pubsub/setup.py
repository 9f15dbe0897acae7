"""``--topics-file``: the topics and subscriptions a topic process creates as it starts.

    {"topics": [
        {"name": "payments", "attributes": {},
         "subscriptions": [
            {"name": "emails", "protocol": "sqs",
             "endpoint": "arn:aws:sqs:us-east-1:000000000000:emails"},
            {"name": "fraud-check", "protocol": "sqs",
             "endpoint": "arn:aws:sqs:us-east-1:000000000000:fraud-check",
             "attributes": {"FilterPolicy": "{\\"amount\\": [{\\"numeric\\": [\\">\\", 500]}]}"}},
            {"name": "whatsapp-push", "protocol": "http",
             "endpoint": "http://127.0.0.1:9500/"}]}
    ]}

CreateTopic and Subscribe with SNS attributes; ``name`` is the subscription's metrics label.
Both are idempotent, so a restarted topic process reads the same file over its existing
database without harm. An http subscription still waits for its endpoint to confirm. The
harness writes this file from a topology's ``topics``. A bad file stops the process before
it serves, with one line naming the file and the entry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from targets.pubsub.errors import SnsError
from targets.pubsub.store import TopicStore


def _strings(raw: Any, where: str) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise ValueError(f"{where}: expected an object of string attributes")
    return {str(k): v for k, v in raw.items()}


def load_topics_file(path: Path) -> list[dict[str, Any]]:
    """The topic declarations in `path`; ValueError naming the file and entry when bad."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"--topics-file {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("topics"), list):
        raise ValueError(f'--topics-file {path}: expected {{"topics": [...]}}')
    topics: list[dict[str, Any]] = data["topics"]
    for i, topic in enumerate(topics):
        where = f"--topics-file {path}: topics[{i}]"
        if not isinstance(topic, dict) or not isinstance(topic.get("name"), str):
            raise ValueError(f"{where}: expected an object with a string `name`")
        unknown = set(topic) - {"name", "attributes", "subscriptions"}
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        _strings(topic.get("attributes", {}), f"{where}.attributes")
        subs = topic.get("subscriptions", [])
        if not isinstance(subs, list):
            raise ValueError(f"{where}.subscriptions: expected a list")
        for j, sub in enumerate(subs):
            at = f"{where}.subscriptions[{j}]"
            if not isinstance(sub, dict) or not all(
                isinstance(sub.get(k), str) for k in ("name", "protocol", "endpoint")
            ):
                raise ValueError(f"{at}: expected string `name`, `protocol` and `endpoint`")
            unknown = set(sub) - {"name", "protocol", "endpoint", "attributes"}
            if unknown:
                raise ValueError(f"{at}: unknown field(s) {', '.join(sorted(unknown))}")
            _strings(sub.get("attributes", {}), f"{at}.attributes")
    return topics


def create_topics(
    store: TopicStore, topics: list[dict[str, Any]], source: Path, now: float
) -> None:
    """Create every declared topic and subscription; ValueError naming the entry."""
    for i, topic in enumerate(topics):
        where = f"--topics-file {source}: topics[{i}] ({topic['name']})"
        try:
            arn = store.create_topic(topic["name"], topic.get("attributes", {}), now)
        except SnsError as error:
            raise ValueError(f"{where}: {error.code}: {error.message}") from None
        for j, sub in enumerate(topic.get("subscriptions", [])):
            try:
                store.subscribe(
                    arn,
                    sub["protocol"],
                    sub["endpoint"],
                    sub.get("attributes", {}),
                    now=now,
                    name=sub["name"],
                )
            except SnsError as error:
                raise ValueError(
                    f"{where}.subscriptions[{j}] ({sub['name']}): {error.code}: {error.message}"
                ) from None
