"""Our queue service versus moto's SQS server, end to end over HTTP, under the same load.

Workload (issue 6, section 6): 4 producers, each looping SendMessageBatch of 10 messages, and
4 consumers, each looping ReceiveMessage (MaxNumberOfMessages 10, long polling with
WaitTimeSeconds 2) then DeleteMessageBatch of what it got; every worker has its own
keep-alive connection and sends its next request as soon as the previous one is answered,
except that producers pause while more than ``MAX_BACKLOG`` (2,000) messages wait: the
steady state of a pipeline, where sends match what consumers take (flat out, producers would
grow the queue without bound and take the server's time from the consumers: the figure would
measure sends, not the pipeline).
Both sides speak the SQS JSON protocol (``X-Amz-Target: AmazonSQS.*``), the one boto3 uses.

The load generator is a lean raw-HTTP/1.1 client on asyncio streams (uvloop when installed),
not boto3, so that the client never is the bottleneck; it runs in its own process
(``python -m benchmarks.queue_http load ...``), pinned to the second CPU, while the server
under test (``python -m targets.queue`` on a fresh SQLite WAL database, defaults:
``synchronous=NORMAL``, which survives kill -9; or ``python -m moto.server``) runs alone on
the first. Both get the identical workload through the identical client, one after the other
in each round, each on a new queue: ours for ``duration_s`` seconds, moto for
``moto_duration_s`` (moto is slow, a shorter run measures it as well), both after a 1 s
warm-up that is not counted.

Figures per side (medians over rounds): messages sent, received and deleted per second;
``messages_per_second`` is the deleted rate, a message counted once it has been sent,
received and deleted (end to end). ``ratio`` is ours over moto's. ``server_cpu_pct`` is the
server's CPU during the measured window (100 = one core; ours is single-threaded but for a
thread that syncs the WAL), ``deleted_per_server_cpu_s`` the deleted rate per second of that
CPU (steadier than the rate on a shared machine), ``client_cpu_pct`` the load generator's:
well below 100, it was not the bottleneck.

    python -m benchmarks.queue_http [--duration 10] [--moto-duration 5] [--rounds 3]
    python -m benchmarks queue_http [--duration 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import statistics
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.support import (
    CLOCK_TICKS,
    PYTHON,
    BenchError,
    CpuPlan,
    ProcessGroup,
    emit,
    log,
    ratio,
    self_pinned,
    wait_until,
)
from harness.supervisor import free_port

PRODUCERS = 4
CONSUMERS = 4
MAX_BACKLOG = 2_000  # messages waiting; producers pause above it (a steady state)
BATCH = 10
WAIT_TIME_S = 2
BODY_BYTES = 100
WARMUP_S = 1.0
DURATION_S = 10.0
MOTO_DURATION_S = 5.0
ROUNDS = 3
GOAL_MESSAGES_PER_S = 5000
CONTENT_TYPE = b"application/x-amz-json-1.0"
# moto's server routes a request to a service by the credential scope of its signature; ours
# accepts any signature unchecked. Both get this fixed (unverified) one, as boto3 would sign.
AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=AKIDBENCH/20240101/us-east-1/sqs/aws4_request,"
    " SignedHeaders=host;x-amz-target, Signature=" + "0" * 64
)


# -- the load generator (its own process) -----------------------------------------------------


class SqsConnection:
    """One keep-alive HTTP/1.1 connection speaking the SQS JSON protocol, reopened when the
    server closes it (HTTP/1.0 or ``Connection: close`` answers)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._head = (
            f"POST / HTTP/1.1\r\nhost: {host}:{port}\r\nauthorization: {AUTHORIZATION}\r\n"
            "content-type: application/x-amz-json-1.0\r\nx-amz-target: AmazonSQS."
        ).encode()
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def call(self, action: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Send one request; (status, decoded JSON answer)."""
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        body = json.dumps(payload, separators=(",", ":")).encode()
        writer.write(
            b"%s%s\r\ncontent-length: %d\r\n\r\n%s" % (self._head, action.encode(), len(body), body)
        )
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = -1
        close = lines[0].startswith(b"HTTP/1.0")
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                close = value.strip().lower() == b"close"
        data = await (reader.readexactly(length) if length >= 0 else reader.read())
        if close or length < 0:
            self.close()
        return status, json.loads(data) if data else {}

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


@dataclass(slots=True)
class Counts:
    """Messages moved inside the measured window, and the requests that failed."""

    window: tuple[float, float]
    sent: int = 0
    received: int = 0
    deleted: int = 0
    requests: int = 0
    errors: int = 0
    empty_receives: int = 0
    error_samples: list[str] = field(default_factory=list)
    waiting: int = 0  # sent and not yet deleted, warm-up included: the queue's backlog
    room: asyncio.Event = field(default_factory=asyncio.Event)  # set: backlog under the cap

    def __post_init__(self) -> None:
        self.room.set()

    def moved(self, sent: int = 0, deleted: int = 0) -> None:
        """Track the backlog; producers hold back while it is over MAX_BACKLOG."""
        self.waiting += sent - deleted
        if self.waiting > MAX_BACKLOG:
            self.room.clear()
        else:
            self.room.set()

    def counting(self) -> bool:
        now = time.monotonic()
        return self.window[0] <= now < self.window[1]

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what[:300])


async def producer(conn: SqsConnection, url: str, tag: int, counts: Counts) -> None:
    pad = "x" * BODY_BYTES
    seq = 0
    while True:
        await counts.room.wait()
        entries = []
        for i in range(BATCH):
            entries.append({"Id": str(i), "MessageBody": f"{tag}-{seq}-{pad}"[:BODY_BYTES]})
            seq += 1
        status, answer = await conn.call("SendMessageBatch", {"QueueUrl": url, "Entries": entries})
        ok = len(answer.get("Successful", ())) if status == 200 else 0
        counts.moved(sent=ok)
        if counts.counting():
            counts.requests += 1
            counts.sent += ok
            if ok != BATCH:
                counts.error(f"SendMessageBatch {status}: {answer}")


async def consumer(conn: SqsConnection, url: str, counts: Counts) -> None:
    receive = {"QueueUrl": url, "MaxNumberOfMessages": BATCH, "WaitTimeSeconds": WAIT_TIME_S}
    while True:
        status, answer = await conn.call("ReceiveMessage", receive)
        messages = answer.get("Messages", []) if status == 200 else []
        if counts.counting():
            counts.requests += 1
            counts.received += len(messages)
            if status != 200:
                counts.error(f"ReceiveMessage {status}: {answer}")
            elif not messages:
                counts.empty_receives += 1
        if not messages:
            continue
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
        ]
        status, answer = await conn.call(
            "DeleteMessageBatch", {"QueueUrl": url, "Entries": entries}
        )
        ok = len(answer.get("Successful", ())) if status == 200 else 0
        counts.moved(deleted=ok)
        if counts.counting():
            counts.requests += 1
            counts.deleted += ok
            if ok != len(entries):
                counts.error(f"DeleteMessageBatch {status}: {answer}")


def _cpu_s(pid: int) -> float:
    """User plus system CPU seconds of `pid` so far (all threads)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def load(
    host: str, port: int, url: str, seconds: float, warmup_s: float, server_pid: int
) -> dict[str, Any]:
    """Run the workload; what it moved in the `seconds` after `warmup_s`."""
    start = time.monotonic() + warmup_s
    counts = Counts((start, start + seconds))
    conns = [SqsConnection(host, port) for _ in range(PRODUCERS + CONSUMERS)]
    work: list[Coroutine[Any, Any, None]] = [
        producer(conns[i], url, i, counts) for i in range(PRODUCERS)
    ]
    work += [consumer(conns[PRODUCERS + i], url, counts) for i in range(CONSUMERS)]
    tasks = [asyncio.ensure_future(w) for w in work]
    await asyncio.sleep(warmup_s)
    server_cpu, client_cpu = _cpu_s(server_pid), time.process_time()
    done, _ = await asyncio.wait(tasks, timeout=seconds)
    server_cpu, client_cpu = _cpu_s(server_pid) - server_cpu, time.process_time() - client_cpu
    for task in tasks:
        task.cancel()
    for task in done:  # a worker that stopped early: its exception says why
        with contextlib.suppress(asyncio.CancelledError):
            if task.exception() is not None:
                counts.error(f"worker failed: {task.exception()!r}")
    await asyncio.gather(*tasks, return_exceptions=True)
    for conn in conns:
        conn.close()
    return {
        "seconds": seconds,
        "sent_per_s": round(counts.sent / seconds, 1),
        "received_per_s": round(counts.received / seconds, 1),
        "deleted_per_s": round(counts.deleted / seconds, 1),
        "requests_per_s": round(counts.requests / seconds, 1),
        "empty_receives": counts.empty_receives,
        "errors": counts.errors,
        "error_samples": counts.error_samples,
        "server_cpu_pct": round(100 * server_cpu / seconds, 1),
        "deleted_per_server_cpu_s": round(counts.deleted / server_cpu) if server_cpu else 0,
        "client_cpu_pct": round(100 * client_cpu / seconds, 1),
    }


def load_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.queue_http load")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--queue-url", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--warmup", type=float, default=WARMUP_S)
    p.add_argument("--server-pid", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    coro = load(args.host, args.port, args.queue_url, args.seconds, args.warmup, args.server_pid)
    try:
        import uvloop  # noqa: PLC0415 - optional accelerator for the client

        result = uvloop.run(coro)
    except ImportError:
        result = asyncio.run(coro)
    args.out.write_text(json.dumps(result))
    return 0


# -- the orchestration -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Side:
    name: str
    host: str
    port: int
    pid: int


def sqs_call(side: Side, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """One SQS JSON request from this process (queue set-up); raises on an error answer."""
    conn = http.client.HTTPConnection(side.host, side.port, timeout=10)
    try:
        body = json.dumps(payload)
        headers = {
            "authorization": AUTHORIZATION,
            "content-type": CONTENT_TYPE.decode(),
            "x-amz-target": f"AmazonSQS.{action}",
        }
        conn.request("POST", "/", body, headers)
        reply = conn.getresponse()
        data = reply.read()
    finally:
        conn.close()
    if reply.status != 200:
        raise BenchError(f"{side.name}: {action} answered {reply.status}: {data[:300]!r}")
    answer: dict[str, Any] = json.loads(data or b"{}")
    return answer


def start_ours(group: ProcessGroup, cpu: int | None) -> Side:
    db = group.dir / "queue.db"
    proc = group.spawn("queue", [PYTHON, "-m", "targets.queue", "--db", str(db)], cpu=cpu)
    host, port = proc.address()
    return Side("ours", host, port, proc.pid)


def start_moto(group: ProcessGroup, cpu: int | None) -> Side:
    port = free_port()
    argv = [PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    proc = group.spawn("moto", argv, cpu=cpu, ready_line=False)
    side = Side("moto", "127.0.0.1", port, proc.pid)
    wait_until(lambda: bool(sqs_call(side, "ListQueues", {}) is not None), "moto", proc=proc)
    return side


def measure_side(
    group: ProcessGroup, side: Side, round_: int, seconds: float, cpu: int | None
) -> dict[str, Any]:
    """One measured run of the workload against `side`, on a new queue."""
    url = sqs_call(side, "CreateQueue", {"QueueName": f"bench-{round_}"})["QueueUrl"]
    out = group.dir / f"load-{side.name}-{round_}.json"
    argv = [PYTHON, "-m", "benchmarks.queue_http", "load", "--port", str(side.port)]
    argv += ["--queue-url", url, "--seconds", str(seconds), "--server-pid", str(side.pid)]
    argv += ["--out", str(out)]
    proc = group.spawn(f"load-{side.name}-{round_}", argv, cpu=cpu, ready_line=False)
    try:
        proc.popen.wait(WARMUP_S + seconds + 30)
    except Exception as exc:
        raise BenchError(f"the load generator did not finish in time: {exc}") from None
    finally:
        proc.stop()
        group.procs.remove(proc)
    if proc.popen.returncode != 0 or not out.exists():
        raise BenchError(f"load generator exited with {proc.popen.returncode}\n{proc.log_tail()}")
    result: dict[str, Any] = json.loads(out.read_text())
    log(
        f"round {round_} {side.name:>4}: {result['deleted_per_s']:8.1f} msg/s deleted "
        f"({result['sent_per_s']:.0f} sent, {result['received_per_s']:.0f} received/s), "
        f"server cpu {result['server_cpu_pct']:.0f}%, client cpu "
        f"{result['client_cpu_pct']:.0f}%, errors {result['errors']}"
    )
    return {"side": side.name, "round": round_, **result}


def _median(runs: list[dict[str, Any]], side: str, key: str) -> float:
    return round(statistics.median(r[key] for r in runs if r["side"] == side), 1)


def run(
    duration_s: float = DURATION_S, moto_duration_s: float = MOTO_DURATION_S, rounds: int = ROUNDS
) -> dict[str, Any]:
    """Both servers, `rounds` alternating runs each; the result object."""
    plan = CpuPlan.detect()
    runs: list[dict[str, Any]] = []
    with self_pinned(plan.load), ProcessGroup("bench-queue-") as group:
        ours = start_ours(group, plan.sut)
        moto = start_moto(group, plan.sut)
        for round_ in range(1, rounds + 1):
            runs.append(measure_side(group, ours, round_, duration_s, plan.load))
            runs.append(measure_side(group, moto, round_, moto_duration_s, plan.load))
    keys = (
        "deleted_per_s",
        "sent_per_s",
        "received_per_s",
        "server_cpu_pct",
        "deleted_per_server_cpu_s",
        "client_cpu_pct",
    )
    medians = {side: {k: _median(runs, side, k) for k in keys} for side in ("ours", "moto")}
    ours_rate, moto_rate = medians["ours"]["deleted_per_s"], medians["moto"]["deleted_per_s"]
    errors = {side: sum(r["errors"] for r in runs if r["side"] == side) for side in medians}
    return {
        "benchmark": "queue_http",
        "ours_messages_per_s": ours_rate,
        "moto_messages_per_s": moto_rate,
        "ratio": ratio(ours_rate, moto_rate),
        "ours": medians["ours"],
        "moto": medians["moto"],
        "ours_errors": errors["ours"],
        "moto_errors": errors["moto"],
        "workload": {
            "producers": PRODUCERS,
            "consumers": CONSUMERS,
            "batch": BATCH,
            "wait_time_seconds": WAIT_TIME_S,
            "body_bytes": BODY_BYTES,
            "protocol": "SQS JSON (X-Amz-Target), raw HTTP/1.1 keep-alive client",
        },
        "rounds": rounds,
        "duration_s": duration_s,
        "moto_duration_s": moto_duration_s,
        **plan.describe(),
        "goal": {"ours_messages_per_s_min": GOAL_MESSAGES_PER_S},
        "ok": ours_rate >= GOAL_MESSAGES_PER_S and errors["ours"] == 0,
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["load"]:
        return load_main(argv[1:])
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.queue_http", description=__doc__.split("\n")[0]
    )
    p.add_argument("--duration", type=float, default=DURATION_S, help="seconds measured, ours")
    p.add_argument("--moto-duration", type=float, default=MOTO_DURATION_S, help="moto's seconds")
    p.add_argument("--rounds", type=int, default=ROUNDS)
    args = p.parse_args(argv)
    if args.duration <= 0 or args.moto_duration <= 0 or args.rounds < 1:
        p.error("--duration, --moto-duration and --rounds must be positive")
    try:
        emit(run(args.duration, args.moto_duration, args.rounds))
    except BenchError as exc:
        log(f"queue_http could not run: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted: every process started was stopped")
        return 130
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
