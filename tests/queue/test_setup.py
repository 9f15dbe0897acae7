"""``--queues-file``: queues created at start, idempotently, and bad files refused clearly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from targets.queue.setup import create_queues, load_queues_file
from targets.queue.store import QueueStore
from tests.queue.procs import ROOT

pytestmark = pytest.mark.core

FILE = {
    "queues": [
        {"name": "emails", "attributes": {"VisibilityTimeout": 10}},
        {
            "name": "orders",
            "attributes": {"DelaySeconds": "2"},
            "dead_letter": {"queue": "orders-dlq", "max_receive_count": 3},
        },
    ]
}


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "queues.json"
    path.write_text(json.dumps(data))
    return path


def test_queues_and_their_dead_letter_queue_are_created_again_harmlessly(
    tmp_path: Path, store: QueueStore
) -> None:
    path = write(tmp_path, FILE)
    for _ in range(2):  # a restarted process reads the same file over its database
        create_queues(store, load_queues_file(path), path)
    assert sorted(store.queue_names()) == ["emails", "orders", "orders-dlq"]
    orders = store.get_queue_attributes("orders", ("RedrivePolicy", "DelaySeconds"))
    assert json.loads(orders["RedrivePolicy"])["maxReceiveCount"] == 3
    assert orders["DelaySeconds"] == "2"
    assert store.list_dead_letter_source_queues("orders-dlq") == ["orders"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"queue": []}, 'expected {"queues": [...]}'),
        ({"queues": [{"nam": "x"}]}, "queues[0]: expected an object with a string `name`"),
        ({"queues": [{"name": "x", "ttl": 1}]}, "queues[0]: unknown field(s) ttl"),
        (
            {"queues": [{"name": "x", "dead_letter": {"queue": "y"}}]},
            'queues[0].dead_letter: expected {"queue": name, "max_receive_count": int}',
        ),
    ],
)
def test_malformed_files_name_the_entry(tmp_path: Path, data: object, message: str) -> None:
    with pytest.raises(ValueError, match=r"queues\.json") as caught:
        load_queues_file(write(tmp_path, data))
    assert message in str(caught.value)


@pytest.mark.e2e
def test_an_invalid_attribute_stops_the_process_with_one_line(tmp_path: Path) -> None:
    """SQS's own check, named with the file and the entry; exit 2, nothing served."""
    path = write(tmp_path, {"queues": [{"name": "x", "attributes": {"VisibilityTimeout": -1}}]})
    done = subprocess.run(
        [sys.executable, "-m", "targets.queue", "--db", str(tmp_path / "q.db"),
         "--listen", "127.0.0.1:0", "--queues-file", str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stdout == ""  # no ready line
    assert f"--queues-file {path}: queues[0] (x): InvalidAttributeValue" in done.stderr
