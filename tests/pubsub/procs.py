"""Child processes for the topic service's tests: a queue and a topic process wired together
(ours), or one moto server playing both (the reference). Each yields the endpoint URLs and
stops what it started."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from tests.helpers import Target, start_target
from tests.queue.procs import moto_process, start_queue


@dataclass(frozen=True)
class Endpoints:
    impl: str
    sns: str
    sqs: str


def start_topics(db: Path, sqs: str, *extra: str, log: Path | None = None) -> Target:
    """``python -m targets.pubsub`` on a free port, delivering to the queue at `sqs`."""
    address = sqs.removeprefix("http://").rstrip("/")
    return start_target(
        "targets.pubsub",
        "--db",
        str(db),
        "--sqs",
        address,
        "--listen",
        "127.0.0.1:0",
        *extra,
        log=log,
    )


@contextlib.contextmanager
def ours(tmp: Path, *extra: str) -> Iterator[Endpoints]:
    queue, sqs = start_queue(tmp / "queue.db")
    with queue, start_topics(tmp / "topics.db", sqs, *extra, log=tmp / "topics.log") as topics:
        yield Endpoints("ours", topics.url, sqs)


@contextlib.contextmanager
def moto() -> Iterator[Endpoints]:
    with moto_process() as url:
        yield Endpoints("moto", url, url)


def client(service: str, url: str, *, read_timeout_s: float = 30) -> Any:
    """A boto3 client for `service` at `url`, with dummy credentials and no retries (a
    failure is the test's to see)."""
    config = Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=read_timeout_s)
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=config,
    )
