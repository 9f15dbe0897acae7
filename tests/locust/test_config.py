"""The pure parts of the Locust integration: env contract, labels, chaos checks, command lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.locust import LocustPlan, LocustPorts, build_commands, reports_for, resolve_ports
from locustfiles import settings as env
from locustfiles.chaospage import (
    ROW_KEYS,
    ActionError,
    chaos_html,
    same_origin,
    status_rows,
    validate_action,
)
from locustfiles.labels import OVERFLOW_NAME, BoundedNames, error_class, method_label
from locustfiles.settings import Settings, SettingsError, load_settings, to_environ
from locustfiles.stages import Stage

pytestmark = pytest.mark.core

ROOT = Path(__file__).resolve().parents[2]
SHOP_STATUS = ROOT / "tests" / "harness" / "shop_status.json"
URL = "http://127.0.0.1:4001"

# -- the environment contract ----------------------------------------------------------------


def test_defaults_when_nothing_is_set() -> None:
    """No RUSHLAB_* variable: no services, no stages, documented defaults."""
    assert load_settings({}) == Settings()


@given(
    services=st.dictionaries(
        st.sampled_from(["auth", "orders", "payments", "gateway"]),
        st.builds(lambda p: f"http://127.0.0.1:{p}", st.integers(1, 65535)),
    ),
    stages=st.lists(
        st.builds(
            Stage,
            st.floats(0.1, 1e4),
            st.integers(0, 10_000),
            st.floats(0.1, 1e4),
        ),
        max_size=4,
    ).map(tuple),
    wait=st.tuples(st.floats(0, 5), st.floats(0, 5)).map(lambda w: (min(w), max(w))),
    timeout=st.floats(0.01, 100),
    port=st.none() | st.integers(1, 65535),
    control=st.booleans(),
)
def test_settings_round_trip_through_the_environment(
    services: dict[str, str],
    stages: tuple[Stage, ...],
    wait: tuple[float, float],
    timeout: float,
    port: int | None,
    control: bool,
) -> None:
    """What the harness writes with to_environ, the locustfile reads back with load_settings."""
    settings = Settings(
        services=services,
        stages=stages,
        wait_s=wait,
        timeout_s=timeout,
        metrics_port=port,
        control_url="http://127.0.0.1:9000" if control else None,
        control_token_file="/tmp/token" if control else None,
        dns=("127.0.0.1", 5353) if control else None,
    )
    environ = to_environ(settings)
    assert set(environ) <= set(env.ALL)
    assert load_settings(environ) == settings


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (env.SERVICES, "{", "RUSHLAB_SERVICES: not JSON"),
        (env.SERVICES, '["http://x"]', "expected a JSON object"),
        (env.SERVICES, '{"auth": "ftp://h:80"}', "RUSHLAB_SERVICES['auth']: expected http://"),
        (env.HOSTS, '{"gateway": "http://h:1/?q"}', "RUSHLAB_HOSTS['gateway']: a base URL"),
        (env.SERVICES, '{"auth": "http://h:99999"}', "bad port"),
        (env.SERVICES, '{"auth": 5}', "expected a URL string"),
        (env.STAGES, "[]", "RUSHLAB_STAGES: the list of stages is empty"),
        (env.WAIT_S, "2,1", "RUSHLAB_WAIT_S: expected 0 <= MIN <= MAX"),
        (env.WAIT_S, "a,b", "RUSHLAB_WAIT_S: expected MIN,MAX"),
        (env.TIMEOUT_S, "0", "RUSHLAB_TIMEOUT_S: expected a number > 0"),
        (env.DNS, "127.0.0.1", "RUSHLAB_DNS: expected HOST:PORT of a DNS server"),
        (env.METRICS_PORT, "0", "RUSHLAB_METRICS_PORT: expected a port"),
        (env.METRICS_PORT, "http", "RUSHLAB_METRICS_PORT: expected a port"),
        (env.CONTROL_URL, "ftp://x", "RUSHLAB_CONTROL_URL: expected http://"),
    ],
)
def test_bad_variables_are_named_in_the_error(name: str, value: str, message: str) -> None:
    """A malformed variable raises SettingsError naming it."""
    with pytest.raises(SettingsError) as info:
        load_settings({name: value})
    assert message in str(info.value)


def test_base_urls_lose_their_trailing_slash() -> None:
    """`http://host:port/` and `http://host:port` name the same base."""
    settings = load_settings({env.SERVICES: json.dumps({"orders": URL + "/"})})
    assert settings.services == {"orders": URL}


def test_wait_accepts_a_single_number() -> None:
    """RUSHLAB_WAIT_S=1 means a constant 1 s."""
    assert load_settings({env.WAIT_S: "1"}).wait_s == (1.0, 1.0)


# -- Prometheus labels -------------------------------------------------------------------------


class _Resp:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


def test_error_class_is_the_status_or_the_exception_class() -> None:
    """Failures are labelled http_<status> or by exception class, never by message."""
    assert error_class(RuntimeError("503 at /api/orders/123"), _Resp(503)) == "http_503"
    assert error_class(ConnectionRefusedError("refused 127.0.0.1:1"), _Resp(0)) == (
        "ConnectionRefusedError"
    )
    assert error_class(ValueError("bad body"), _Resp(200)) == "ValueError"
    assert error_class(ValueError("x"), None) == "ValueError"
    assert error_class("free text from a user", None) == "message"
    assert error_class(RuntimeError(), _Resp(999)) == "http_other"


def test_bounded_names_cap_distinct_values() -> None:
    """After the limit, new names share one label value; known ones keep theirs."""
    names = BoundedNames(limit=2)
    assert [names(n) for n in ("a", "b", "c", "a", "d")] == [
        "a",
        "b",
        OVERFLOW_NAME,
        "a",
        OVERFLOW_NAME,
    ]


def test_method_labels_are_bounded() -> None:
    """Known methods are kept (upper case); anything else is OTHER."""
    assert method_label("get") == "GET"
    assert method_label("BREW") == "OTHER"


# -- the chaos page's checks --------------------------------------------------------------------


def test_validate_action_keeps_known_fields_only() -> None:
    """The forwarded body has the control API's fields and nothing else."""
    body = {"action": "kill", "service": "orders", "instance": "orders-2", "evil": 1}
    assert validate_action(body) == {"action": "kill", "service": "orders", "instance": "orders-2"}
    assert validate_action({"action": "add", "service": "auth", "count": 3}) == {
        "action": "add",
        "service": "auth",
        "count": 3,
    }
    assert validate_action({"action": "latency", "service": "auth", "latency_ms": 250})[
        "latency_ms"
    ] == (250.0)


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {"action": "format-disk", "service": "orders"},
        {"action": "kill"},
        {"action": "kill", "service": ""},
        {"action": "kill", "service": "orders/../x"},
        {"action": "add", "service": "orders", "count": 0},
        {"action": "add", "service": "orders", "count": True},
        {"action": "add", "service": "orders", "count": 1000},
        {"action": "errors", "service": "orders", "error_rate": 2},
    ],
)
def test_validate_action_rejects_malformed_bodies(body: object) -> None:
    """Unknown actions, missing or odd names and out-of-range numbers are refused."""
    with pytest.raises(ActionError):
        validate_action(body)


def test_status_rows_list_every_process_of_the_lab() -> None:
    """One row per process of the real shop's status (every kind: servers and their load
    balancers, the queue, the topics, workers, providers, the edge, gateway and DNS), with
    every column present."""
    status = json.loads(SHOP_STATUS.read_text())
    rows = status_rows(status)
    names = {r["instance"] for r in rows}
    assert {"orders-lb", "orders-1", "queue-1", "topics-1", "email-workers-1"} <= names
    assert {"mail-1", "cdn-1", "gateway", "dns"} <= names
    orders = next(r for r in rows if r["instance"] == "orders-1")
    assert orders["service"] == "orders"
    assert orders["view"] == "healthy"
    assert set(orders) == set(ROW_KEYS)
    lb = next(r for r in rows if r["instance"] == "orders-lb")
    assert lb["view"] == "3 routable"
    assert status_rows({"oops": 1}) == []
    assert status_rows(None) == []


def test_the_chaos_page_is_the_live_map_on_locusts_routes() -> None:
    """Locust's /chaos serves the harness's map, its calls pointed at Locust's own proxy."""
    page = chaos_html()
    assert '<html lang="en" data-api="/chaos/api">' in page
    assert "/map/state" in page


def test_same_origin_guard() -> None:
    """Browsers' cross-site POSTs are refused; same-origin pages and curl are allowed."""
    host = "127.0.0.1:8089"
    assert same_origin("http://127.0.0.1:8089", "same-origin", host)
    assert same_origin(None, None, host)  # curl, the harness
    assert not same_origin("http://evil.example", None, host)
    assert not same_origin(None, "cross-site", host)
    assert not same_origin("http://127.0.0.1:8089", "same-site", host)


# -- command lines -------------------------------------------------------------------------------

SERVICES = {"auth": URL, "orders": URL, "payments": URL}
PORTS = LocustPorts(web=8089, metrics=9646, master=5557, workers=(9701, 9702))


def _env_of(argv: list[str]) -> dict[str, str]:
    """The K=V words between `env` and the Python executable."""
    assert argv[0].endswith("env")
    out = {}
    for word in argv[1:]:
        if word == sys.executable:
            break
        key, _, value = word.partition("=")
        out[key] = value
    return out


def test_headless_stages_command(tmp_path: Path) -> None:
    """A headless staged run: loopback web host, shape-bounded, reports in the run folder."""
    plan = LocustPlan(services=SERVICES, stages=(Stage(2, 4, 10),), wait_s=(0.1, 0.2))
    (main,) = build_commands(plan, tmp_path, PORTS)
    argv = main.argv
    assert argv[argv.index("--web-host") + 1] == "127.0.0.1"
    assert "--headless" in argv
    assert "--users" not in argv  # the shape sets users
    assert argv[argv.index("--csv") + 1] == str(tmp_path / "locust")
    assert argv[argv.index("--html") + 1] == str(tmp_path / "locust.html")
    assert main.ready_url == ("127.0.0.1", 9646, "/health")
    settings = load_settings(_env_of(argv))
    assert settings.stages == plan.stages
    assert settings.services == SERVICES
    assert settings.metrics_port == 9646
    assert settings.wait_s == (0.1, 0.2)


def test_known_hosts_and_the_host_reach_the_users_as_given(tmp_path: Path) -> None:
    """With `hosts`, RUSHLAB_HOSTS carries them, spelled by the lab's one rule; `--host` is
    passed as given, for the users to spell."""
    gateway = "http://127.0.0.1:8080"
    plan = LocustPlan(
        services={}, host=gateway + "/", hosts={"gateway": gateway + "/"}, run_time_s=1
    )
    (main,) = build_commands(plan, tmp_path, PORTS)
    assert main.argv[main.argv.index("--host") + 1] == gateway + "/"
    assert load_settings(_env_of(main.argv)).hosts == {"gateway": gateway}
    without = LocustPlan(services={}, host=gateway, run_time_s=1)
    (main,) = build_commands(without, tmp_path, PORTS)
    assert env.HOSTS not in _env_of(main.argv)  # no list: any loopback host


def test_headless_plain_run_has_a_run_time(tmp_path: Path) -> None:
    """Without stages, a headless run gets --users, --spawn-rate and --run-time."""
    plan = LocustPlan(services=SERVICES, users=7, spawn_rate=3.5, run_time_s=4.2)
    (main,) = build_commands(plan, tmp_path, PORTS)
    argv = main.argv
    assert argv[argv.index("--users") + 1] == "7"
    assert argv[argv.index("--spawn-rate") + 1] == "3.5"
    assert argv[argv.index("--run-time") + 1] == "5s"


def test_unbounded_headless_plan_is_refused() -> None:
    """A headless run with neither stages nor a run time would never stop: refused."""
    with pytest.raises(ValueError, match="bounded"):
        LocustPlan(services=SERVICES)
    with pytest.raises(ValueError, match="services"):
        LocustPlan(services={"auth": "ftp://127.0.0.1:80"}, run_time_s=1)
    with pytest.raises(ValueError, match="control"):
        LocustPlan(services=SERVICES, run_time_s=1, control_url="http://127.0.0.1:1")


def test_web_ui_command_is_ready_on_the_web_port(tmp_path: Path) -> None:
    """With the web UI, the process is ready when its page answers, and is told the control."""
    token = tmp_path / "control.token"
    plan = LocustPlan(
        services=SERVICES,
        headless=False,
        control_url="http://127.0.0.1:7000",
        control_token_file=token,
    )
    (main,) = build_commands(plan, tmp_path, PORTS)
    assert "--headless" not in main.argv
    assert main.ready_url == ("127.0.0.1", 8089, "/")
    settings = load_settings(_env_of(main.argv))
    assert settings.control_url == "http://127.0.0.1:7000"
    assert settings.control_token_file == str(token)


def test_distributed_commands(tmp_path: Path) -> None:
    """A master on loopback expecting N workers, and N workers with their own metrics ports."""
    plan = LocustPlan(services=SERVICES, stages=(Stage(2, 4, 10),), workers=2)
    master, *workers = build_commands(plan, tmp_path, PORTS)
    assert master.name == "locust-master"
    argv = master.argv
    assert "--master" in argv
    assert argv[argv.index("--master-bind-host") + 1] == "127.0.0.1"
    assert argv[argv.index("--master-bind-port") + 1] == "5557"
    assert argv[argv.index("--expect-workers") + 1] == "2"
    assert [w.name for w in workers] == ["locust-worker-1", "locust-worker-2"]
    for worker, port in zip(workers, (9701, 9702), strict=True):
        assert "--worker" in worker.argv
        assert worker.argv[worker.argv.index("--master-host") + 1] == "127.0.0.1"
        assert "--csv" not in worker.argv
        assert load_settings(_env_of(worker.argv)).metrics_port == port
        assert worker.ready_url == ("127.0.0.1", port, "/health")


@pytest.mark.inprocess
def test_resolve_ports_picks_distinct_free_ports() -> None:
    """Ports left at 0 become distinct loopback ports; given ones are kept."""
    plan = LocustPlan(
        services=SERVICES, run_time_s=1, workers=3, worker_metrics_ports=(9999,), web_port=8089
    )
    ports = resolve_ports(plan)
    assert ports.web == 8089
    assert ports.workers[0] == 9999
    every = [ports.web, ports.metrics, ports.master, *ports.workers]
    assert len(set(every)) == len(every) == 6


def test_reports_are_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Report paths are absolute: the children run in the repository root, not our cwd."""
    monkeypatch.chdir(tmp_path)
    reports = reports_for(LocustPlan(services=SERVICES, run_time_s=1), Path("runs/x"))
    assert reports is not None
    assert reports.html == tmp_path / "runs/x/locust.html"
    assert reports.json == tmp_path / "runs/x/locust.json"
    assert reports.stats_csv == tmp_path / "runs/x/locust_stats.csv"


@pytest.mark.e2e
def test_pure_modules_never_import_locust() -> None:
    """The harness side and the pure locustfile modules load without importing locust."""
    code = (
        "import sys, harness.locust, locustfiles.stages, locustfiles.settings, "
        "locustfiles.labels, locustfiles.chaospage, locustfiles.hosts\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
