"""What every benchmark shares: child processes, CPU pinning, wrk, and small HTTP helpers.

Processes are started with `subprocess.Popen` (pinned with `taskset -c`, which execs the real
program, so the pid we hold is the program's) and owned by a `ProcessGroup`: leaving its `with`
block, normally, on an error or on Ctrl-C, stops every child by pid, SIGTERM first and SIGKILL
(children included) after a grace period. Each child's stderr goes to a log file in the group's
temporary directory; when a child fails to start, the tail of that log is in the exception.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

REPO = Path(__file__).resolve().parents[1]
"""The project root: children run with it as working directory and on PYTHONPATH."""

PYTHON = sys.executable
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    """Progress for humans goes to stderr; stdout carries only the JSON result."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    """A benchmark could not run (a tool is missing, a process did not start, wrk failed)."""


def require_tool(name: str, package: str | None = None) -> str:
    """The absolute path of `name`, or `BenchError` saying how to install it."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise BenchError(f"{name} is not installed (Debian: apt-get install {package or name})")
    return found


# -- CPU pinning -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CpuPlan:
    """Where things run: the system under test on `sut`, wrk and helpers on `load`.

    Both are None when fewer than two CPUs are available (then nothing is pinned).
    """

    sut: int | None
    load: int | None

    @classmethod
    def detect(cls) -> CpuPlan:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2 or shutil.which("taskset") is None:
            log(f"warning: {len(cpus)} CPU(s) or no taskset: processes are not pinned")
            return cls(None, None)
        return cls(cpus[0], cpus[1])

    def describe(self) -> dict[str, int | None]:
        return {"sut_cpu": self.sut, "load_cpu": self.load}


@contextlib.contextmanager
def self_pinned(cpu: int | None) -> Iterator[None]:
    """Keep this process (and children started without a CPU of their own) on `cpu` meanwhile."""
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def pinned(argv: Sequence[str], cpu: int | None) -> list[str]:
    """`argv` prefixed with `taskset -c CPU` (unchanged when `cpu` is None)."""
    if cpu is None:
        return list(argv)
    return ["taskset", "-c", str(cpu), *argv]


# -- /proc readings --------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) is in parentheses and may contain spaces.
    return raw[raw.rindex(")") + 2 :].split()


def children_of(pid: int) -> list[int]:
    """Every live descendant of `pid` (nginx's workers, for instance)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            parents[int(entry.name)] = int(_stat_fields(int(entry.name))[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        frontier += kids
    return found


def cpu_seconds(pids: Iterable[int]) -> float:
    """User plus system CPU time consumed so far by `pids` (all threads); gone pids count 0."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError):
            fields = _stat_fields(pid)
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def cpu_times() -> dict[int, tuple[int, int]]:
    """(busy, total) jiffies per CPU since boot, from /proc/stat."""
    times: dict[int, tuple[int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            # user nice system idle iowait irq softirq steal: steal (time the hypervisor gave
            # to another guest) is neither ours nor idle, so it is left out of both.
            ticks = [int(v) for v in values[:7]]
            idle = ticks[3] + ticks[4]
            times[int(name[3:])] = (sum(ticks) - idle, sum(ticks))
    return times


def busy_pct(
    before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]], cpu: int
) -> float:
    """How busy `cpu` was between two `cpu_times()` readings, in %."""
    busy = after[cpu][0] - before[cpu][0]
    total = after[cpu][1] - before[cpu][1]
    return 100 * busy / total if total else 0.0


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    """A memory figure of `pid` from /proc/<pid>/status (VmRSS by default), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"/proc/{pid}/status has no {key}")


# -- processes -------------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class Proc:
    """A started child process."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    ready: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tree(self) -> list[int]:
        """This process and its descendants."""
        return [self.pid, *children_of(self.pid)]

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def address(self, key: str = "address") -> tuple[str, int]:
        """A `host:port` from the ready line, split."""
        host, _, port = str(self.ready[key]).rpartition(":")
        return host, int(port)

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM, wait up to `grace_s`, then SIGKILL it and any descendants left behind."""
        if self.popen.poll() is not None:
            return
        descendants = children_of(self.pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(grace_s)
        except subprocess.TimeoutExpired:
            log(f"{self.name} (pid {self.pid}) ignored SIGTERM for {grace_s:g} s: SIGKILL")
            for pid in [self.pid, *descendants, *children_of(self.pid)]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.popen.wait(5.0)
        for pid in descendants:  # e.g. nginx workers whose master died first
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _drain(stream: Any, sink: Path) -> None:
    """Copy what a child still writes on stdout to its log, so the pipe never fills."""
    with contextlib.suppress(OSError, ValueError), sink.open("ab") as out:
        for chunk in iter(lambda: stream.read1(65536), b""):
            out.write(chunk)
            out.flush()


class ProcessGroup:
    """Owns the children of one benchmark and a temporary directory for their files.

    Use it as a context manager: on exit every child is stopped (last started, first stopped)
    and the directory removed, whatever the reason for leaving (KeyboardInterrupt included).
    """

    def __init__(self, prefix: str = "bench-") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.procs: list[Proc] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        interrupted: BaseException | None = None
        while self.procs:
            proc = self.procs.pop()
            try:
                proc.stop()
            except BaseException as error:  # a second Ctrl-C: still kill the rest
                interrupted = interrupted or error
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)
        if interrupted is not None:
            raise interrupted

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cpu: int | None = None,
        ready_line: bool = True,
        timeout_s: float = 20.0,
        env: dict[str, str] | None = None,
    ) -> Proc:
        """Start `argv` (pinned to `cpu`); with `ready_line`, wait for its JSON ready event.

        Without `ready_line` the process is returned as soon as it runs; the caller checks
        readiness its own way (`wait_http`).
        """
        log_path = self.dir / f"{name}.log"
        full_env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **(env or {})}
        with log_path.open("wb") as err:
            popen = subprocess.Popen(
                pinned(argv, cpu),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if ready_line else err,
                stderr=err,
                cwd=REPO,
                env=full_env,
            )
        proc = Proc(name, popen, log_path)
        self.procs.append(proc)
        if ready_line:
            proc.ready = self._read_ready(proc, timeout_s)
            threading.Thread(target=_drain, args=(popen.stdout, log_path), daemon=True).start()
        log(f"started {name} (pid {proc.pid}{'' if cpu is None else f', cpu {cpu}'})")
        return proc

    @staticmethod
    def _read_ready(proc: Proc, timeout_s: float) -> dict[str, Any]:
        stdout = proc.popen.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout_s
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while True:
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    with contextlib.suppress(ValueError):
                        event = json.loads(line)
                        if isinstance(event, dict) and event.get("event") == "ready":
                            return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(
                        f"{proc.name}: no ready line within {timeout_s:g} s\n{proc.log_tail()}"
                    )
                if selector.select(left):
                    chunk = os.read(stdout.fileno(), 65536)
                    if not chunk:
                        proc.popen.wait(2.0)
                        raise BenchError(
                            f"{proc.name} exited ({proc.popen.returncode}) before it was ready"
                            f"\n{proc.log_tail()}"
                        )
                    buffer += chunk


def raise_nofile_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (children inherit it)."""
    import resource  # noqa: PLC0415 - Unix only, needed by few callers

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# -- HTTP helpers ----------------------------------------------------------------------------------


def http_json(method: str, url: str, body: object = None, timeout_s: float = 5.0) -> Any:
    """Send a request with an optional JSON body; the decoded JSON reply (raises on 4xx/5xx)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout_s) as reply:
        return json.loads(reply.read() or b"null")


def wait_until(
    check: Callable[[], bool], what: str, timeout_s: float = 20.0, proc: Proc | None = None
) -> None:
    """Poll `check` (exceptions count as "not yet") until it is true or `timeout_s` passes.

    With `proc`, fail at once (with its log) if that process exits meanwhile.
    """
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise BenchError(
                f"{proc.name} exited ({proc.popen.returncode}) while waiting for {what}"
                f"\n{proc.log_tail()}"
            )
        try:
            if check():
                return
        except (OSError, http.client.HTTPException, ValueError) as exc:
            last = exc
        time.sleep(0.1)
    raise BenchError(f"timed out after {timeout_s:g} s waiting for {what} (last error: {last})")


def http_ok(url: str) -> bool:
    """True when GET `url` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=2.0) as reply:
            reply.read()
            return bool(reply.status == 200)
    except urllib.error.HTTPError:
        return False


def wait_http(url: str, what: str, proc: Proc | None = None, timeout_s: float = 20.0) -> None:
    """Wait until GET `url` answers 200 (failing early if `proc` exits)."""
    wait_until(lambda: http_ok(url), what, timeout_s, proc)


def wait_lb_healthy(lb: Proc, count: int, timeout_s: float = 20.0) -> None:
    """Wait until the LB `lb` reports `count` healthy targets on its control API."""
    control = lb.ready["control"]

    def healthy() -> bool:
        group = http_json("GET", f"http://{control}/targets")
        return bool(group["counts"].get("healthy", 0) >= count)

    wait_until(healthy, f"{count} healthy target(s) at the LB", timeout_s, lb)


# -- wrk -------------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_DURATION = r"([\d.]+)(us|ms|s|m|h)"


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


@dataclass(frozen=True, slots=True)
class WrkResult:
    """What one wrk run reported. Latencies are in milliseconds."""

    rps: float
    requests: int
    seconds: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    latency_avg_ms: float
    latency_max_ms: float
    non_2xx: int
    socket_errors: dict[str, int]

    @property
    def errors(self) -> int:
        """Requests that did not get a 2xx/3xx answer, plus socket errors of any kind."""
        return self.non_2xx + sum(self.socket_errors.values())

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "errors": self.errors}


def parse_wrk(output: str) -> WrkResult:
    """Parse the text wrk prints with `--latency`; `BenchError` if a figure is missing."""

    def need(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise BenchError(f"wrk output has no match for {pattern!r}:\n{output}")
        return match

    percentiles = {
        int(p): _ms(v, u)
        for p, v, u in re.findall(r"^\s+(50|75|90|99)%\s+" + _DURATION, output, re.MULTILINE)
    }
    if set(percentiles) != {50, 75, 90, 99}:
        raise BenchError(f"wrk output lacks the latency distribution (--latency):\n{output}")
    latency = need(r"^\s+Latency\s+" + _DURATION + r"\s+\S+\s+" + _DURATION)
    done = need(r"^\s+(\d+) requests in ([\d.]+)(us|ms|s|m|h)")
    socket_errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if errors is not None:
        socket_errors = dict(zip(socket_errors, map(int, errors.groups()), strict=True))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkResult(
        rps=float(need(r"^Requests/sec:\s+([\d.]+)").group(1)),
        requests=int(done.group(1)),
        seconds=_ms(done.group(2), done.group(3)) / 1e3,
        p50_ms=percentiles[50],
        p75_ms=percentiles[75],
        p90_ms=percentiles[90],
        p99_ms=percentiles[99],
        latency_avg_ms=_ms(latency.group(1), latency.group(2)),
        latency_max_ms=_ms(latency.group(3), latency.group(4)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=socket_errors,
    )


def run_wrk(
    url: str,
    *,
    duration_s: float,
    connections: int,
    threads: int = 1,
    cpu: int | None = None,
    timeout_s: float = 5.0,
) -> WrkResult:
    """Run `wrk --latency` against `url` (pinned to `cpu`) and parse its report."""
    argv = [
        require_tool("wrk"),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s:g}s",
        f"--timeout={timeout_s:g}s",
        "--latency",
        url,
    ]
    popen = subprocess.Popen(
        pinned(argv, cpu), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        output, _ = popen.communicate(timeout=duration_s + timeout_s + 30)
    finally:
        if popen.poll() is None:
            popen.kill()
            popen.wait()
    if popen.returncode != 0:
        raise BenchError(f"wrk exited with {popen.returncode}:\n{output}")
    return parse_wrk(output)


# -- comparing two servers under the same load -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Contender:
    """One system under test: the URL wrk hits and the processes whose CPU time is measured."""

    name: str
    url: str
    procs: Sequence[Proc]


@dataclass(frozen=True, slots=True)
class Run:
    """One measured wrk run against one contender."""

    contender: str
    round: int
    wrk: WrkResult
    cpu_pct: float
    """CPU the contender's processes used during the run, in % of one core."""
    cpu_busy_pct: dict[int, float]
    """How busy each CPU was during the run (everything on it, wrk included), in %."""

    @property
    def req_per_cpu_s(self) -> float:
        """Requests served per second of CPU the contender used: its cost, whatever it got."""
        return self.wrk.rps / (self.cpu_pct / 100) if self.cpu_pct > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "contender": self.contender,
            "round": self.round,
            "cpu_pct": round(self.cpu_pct, 1),
            "req_per_cpu_s": round(self.req_per_cpu_s),
            "cpu_busy_pct": {str(c): round(p, 1) for c, p in self.cpu_busy_pct.items()},
            **self.wrk.as_dict(),
        }


def measure(
    contenders: Sequence[Contender],
    *,
    rounds: int,
    duration_s: float,
    connections: int,
    warmup_s: float,
    cpu: int | None,
) -> list[Run]:
    """Alternate the contenders (A, B, A, B, ...) for `rounds` rounds, each run after a warm-up."""
    runs: list[Run] = []
    for round_ in range(1, rounds + 1):
        for contender in contenders:
            for proc in contender.procs:
                if not proc.alive():
                    raise BenchError(f"{proc.name} died:\n{proc.log_tail()}")
            if warmup_s > 0:
                run_wrk(contender.url, duration_s=warmup_s, connections=connections, cpu=cpu)
            pids = [pid for proc in contender.procs for pid in proc.tree()]
            cpu_before, clock_before, times_before = (
                cpu_seconds(pids),
                time.monotonic(),
                cpu_times(),
            )
            result = run_wrk(contender.url, duration_s=duration_s, connections=connections, cpu=cpu)
            used = cpu_seconds(pids) - cpu_before
            times_after = cpu_times()
            run = Run(
                contender.name,
                round_,
                result,
                100 * used / (time.monotonic() - clock_before),
                {c: busy_pct(times_before, times_after, c) for c in sorted(times_after)},
            )
            runs.append(run)
            busy = " ".join(f"cpu{c} {p:3.0f}%" for c, p in run.cpu_busy_pct.items())
            log(
                f"round {round_}/{rounds} {contender.name:>8}: {result.rps:8.0f} req/s  "
                f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  "
                f"process cpu {run.cpu_pct:5.1f}%  busy: {busy}  errors {result.errors}"
            )
    return runs


def summarize(runs: Sequence[Run], name: str) -> dict[str, Any]:
    """Medians over the runs of one contender, plus its total error count."""
    mine = [r for r in runs if r.contender == name]
    if not mine:
        raise BenchError(f"no runs for {name}")
    return {
        "rps": round(statistics.median(r.wrk.rps for r in mine), 1),
        "p50_ms": round(statistics.median(r.wrk.p50_ms for r in mine), 3),
        "p99_ms": round(statistics.median(r.wrk.p99_ms for r in mine), 3),
        "cpu_pct": round(statistics.median(r.cpu_pct for r in mine), 1),
        "req_per_cpu_s": round(statistics.median(r.req_per_cpu_s for r in mine)),
        "cpu_busy_pct": {
            str(cpu): round(statistics.median(r.cpu_busy_pct[cpu] for r in mine), 1)
            for cpu in mine[0].cpu_busy_pct
        },
        "errors": sum(r.wrk.errors for r in mine),
    }


def ratio(ours: float, theirs: float) -> float:
    """`ours / theirs` rounded to 3 places; 0.0 when `theirs` is 0 (nothing to compare with)."""
    return round(ours / theirs, 3) if theirs else 0.0


def emit(result: dict[str, Any]) -> None:
    """Print the result as one JSON line on stdout (the last line a benchmark prints there)."""
    sys.stdout.write(json.dumps(result, sort_keys=False) + "\n")
    sys.stdout.flush()


def start_haproxy(
    group: ProcessGroup, config: str, port: int, path: str, cpu: int | None
) -> Contender:
    """HAProxy in the foreground (`-db`) with `config` (which binds `port`), once `path` answers."""
    haproxy = require_tool("haproxy")
    conf = group.dir / "haproxy.cfg"
    conf.write_text(config)
    proc = group.spawn("haproxy", [haproxy, "-db", "-f", str(conf)], cpu=cpu, ready_line=False)
    url = f"http://127.0.0.1:{port}{path}"
    wait_http(url, "HAProxy to proxy", proc)
    return Contender("haproxy", url, [proc])
