"""Engine-only measurements of the queue store (no HTTP), one JSON line per run.

    python -m benchmarks.queue_engine throughput [--seconds 3] [--rounds 5]
        [--synchronous NORMAL|FULL] [--backlog N]
    python -m benchmarks.queue_engine memory [--messages 1000000]

``throughput``: one producer/consumer loop of SendMessageBatch(10) + ReceiveMessage(10, long
poll, so no sampling) + DeleteMessageBatch(10), messages per second end to end, optionally
over a standing backlog of N messages. ``memory``: stores N small messages in batches of 10,
then reports this process's RSS (current and peak), the database size, and what a metrics
scrape (``stats``), a receive and a reopen cost with that backlog. Each run uses a fresh
temporary directory. The HTTP-level comparison with moto comes with the queue service.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Literal

from targets.queue.store import QueueStore, ReceiptEntry, SendEntry


def _rss_kib(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def _size_mib(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.iterdir()) / 2**20, 1)


def _fill(store: QueueStore, name: str, count: int) -> None:
    for start in range(0, count, 10):
        entries = [SendEntry(str(i), f"message {start + i}") for i in range(min(10, count - start))]
        store.send_message_batch(name, entries)


def throughput(
    seconds: float, rounds: int, synchronous: Literal["NORMAL", "FULL"], backlog: int
) -> dict[str, object]:
    """Rounds of send(10) + receive(10) + delete(10) cycles on one fresh store; the VM this
    runs on is shared, so it reports the median and best round and a CPU-time rate."""
    with tempfile.TemporaryDirectory() as folder:
        store = QueueStore(Path(folder) / "queue.db", synchronous=synchronous)
        store.create_queue("bench")
        _fill(store, "bench", backlog)
        entries = [SendEntry(str(i), "x" * 200) for i in range(10)]
        rates: list[float] = []
        cpu_rates: list[float] = []
        for _ in range(rounds):
            moved = 0
            started, cpu = time.perf_counter(), time.process_time()
            while time.perf_counter() - started < seconds:
                for _ in range(50):
                    store.send_message_batch("bench", entries)
                    received = store.receive_message("bench", 10, wait_time_seconds=20)
                    handles = [
                        ReceiptEntry(str(i), m.receipt_handle)
                        for i, m in enumerate(received.messages)
                    ]
                    moved += len(store.delete_message_batch("bench", handles).successful)
            rates.append(moved / (time.perf_counter() - started))
            cpu_rates.append(moved / (time.process_time() - cpu))
        store.close()
    return {
        "bench": "queue_engine_throughput",
        "synchronous": synchronous,
        "backlog": backlog,
        "rounds": rounds,
        "round_seconds": seconds,
        "messages_per_second_median": round(statistics.median(rates)),
        "messages_per_second_best": round(max(rates)),
        "messages_per_cpu_second_median": round(statistics.median(cpu_rates)),
    }


def memory(count: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "queue.db"
        rss_start = _rss_kib()
        store = QueueStore(path)
        store.create_queue("bench")
        started = time.perf_counter()
        _fill(store, "bench", count)
        fill_s = time.perf_counter() - started
        rss_filled = _rss_kib()
        started = time.perf_counter()
        stats = store.stats("bench")
        stats_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        received = store.receive_message("bench", 10, wait_time_seconds=20)
        receive_ms = (time.perf_counter() - started) * 1000
        store.close()
        started = time.perf_counter()
        reopened = QueueStore(path)
        reopen_s = time.perf_counter() - started
        visible = reopened.stats("bench").visible
        reopened.close()
        return {
            "bench": "queue_engine_memory",
            "messages": count,
            "fill_seconds": round(fill_s, 1),
            "fill_messages_per_second": round(count / fill_s),
            "rss_mib_at_start": round(rss_start / 1024, 1),
            "rss_mib_after_fill": round(rss_filled / 1024, 1),
            "rss_mib_peak": round(_rss_kib("VmHWM") / 1024, 1),
            "database_mib": _size_mib(Path(folder)),
            "stats_ms": round(stats_ms, 2),
            "stats_visible": stats.visible,
            "receive_10_ms": round(receive_ms, 2),
            "received": len(received.messages),
            "reopen_seconds": round(reopen_s, 2),
            "visible_after_reopen": visible,
            "pid": os.getpid(),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    run = sub.add_parser("throughput")
    run.add_argument("--seconds", type=float, default=3.0)
    run.add_argument("--rounds", type=int, default=5)
    run.add_argument("--synchronous", choices=["NORMAL", "FULL"], default="NORMAL")
    run.add_argument("--backlog", type=int, default=0)
    mem = sub.add_parser("memory")
    mem.add_argument("--messages", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.what == "throughput":
        result = throughput(args.seconds, args.rounds, args.synchronous, args.backlog)
    else:
        result = memory(args.messages)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
