"""How the locustfiles load: no sys.path bootstrap, settings read when needed, errors by name.

Locust is never imported here: the locustfiles are read as source (`ast`), and loaded by real
Locust processes started the way harness/locust.py starts them, with `--list` (load, list the
user classes, exit).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.locust import LocustPlan, LocustPorts, build_commands
from locustfiles import settings as env
from locustfiles.stages import Stage

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILES = ROOT / "locustfiles"
URL = "http://127.0.0.1:4001"
SERVICES = {"auth": URL, "orders": URL, "payments": URL}
PORTS = LocustPorts(web=8089, metrics=9646, master=5557, workers=())
USERS = {  # what Locust finds in each locustfile of the lab, for SERVICES
    "shop.py": ["ShopUser"],
    "noisy.py": ["ShopUser", "NoisyNeighbour"],
    "compare.py": ["AuthUser", "OrdersUser", "PaymentsUser"],
    "pay.py": ["AuthUser", "OrdersUser", "PaymentsUser"],
}


def sources() -> dict[str, ast.Module]:
    return {p.name: ast.parse(p.read_text(), str(p)) for p in sorted(LOCUSTFILES.glob("*.py"))}


def calls(node: ast.AST) -> set[str]:
    """The dotted names called anywhere under `node` (`sys.exit`, `settings`, ...)."""
    names = set()
    for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
        names.add(ast.unparse(call.func))
    return names


def listed(argv: list[str], environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*argv, "--list"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def harness_argv(locustfile: str, stages: tuple[Stage, ...] = ()) -> list[str]:
    """The main process's command line exactly as harness/locust.py builds it."""
    plan = LocustPlan(
        services=SERVICES,
        stages=stages,
        run_time_s=None if stages else 1,
        locustfile=LOCUSTFILES / locustfile,
        report_name=None,
    )
    (main,) = build_commands(plan, ROOT, PORTS)
    return list(main.argv)


# -- read as source ---------------------------------------------------------------------------


@pytest.mark.core
def test_no_locustfile_touches_sys_path_or_exits() -> None:
    """One way in for every locustfile (Locust's own sys.path), and errors are exceptions."""
    for name, tree in sources().items():
        attributes = {ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        assert "sys.path" not in attributes, name
        assert not {"sys.exit", "exit", "quit"} & calls(tree), name


def module_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """The statements run at import: `body`, and inside its try/if/with blocks."""
    out: list[ast.stmt] = []
    for statement in body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        out.append(statement)
        for field in ("body", "orelse", "finalbody", "handlers"):
            inner = getattr(statement, field, [])
            for block in inner:
                out += module_level(block.body if isinstance(block, ast.excepthandler) else [block])
    return out


@pytest.mark.core
def test_no_module_keeps_the_settings() -> None:
    """Settings are read by a call where they are needed, never bound to a module global."""
    for name, tree in sources().items():
        for statement in module_level(tree.body):
            if isinstance(statement, ast.Assign | ast.AnnAssign) and statement.value is not None:
                value = statement.value
                if isinstance(value, ast.Call):
                    called = ast.unparse(value.func)
                    assert called not in ("settings", "load_settings"), (name, statement.lineno)


# -- loaded by Locust ---------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize("locustfile", sorted(USERS))
def test_locust_loads_each_locustfile_as_the_harness_starts_it(locustfile: str) -> None:
    """`env RUSHLAB_*=... python -m locust -f locustfiles/X.py ...` from the repository root,
    with the supervisor's PYTHONPATH: the user classes are found."""
    argv = harness_argv(locustfile, stages=(Stage(1, 2, 2),))
    done = listed(argv, {**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    found = [line.strip() for line in done.stdout.splitlines()[1:]]
    assert sorted(found) == sorted(USERS[locustfile]), done.stdout


@pytest.mark.e2e
def test_locust_needs_no_pythonpath_from_the_repository_root() -> None:
    """By hand, as README and docker-compose run it (`locust -f locustfiles/shop.py`): Locust
    puts the working directory on sys.path, so no bootstrap and no PYTHONPATH are needed."""
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    environ[env.SERVICES] = '{"orders": "http://127.0.0.1:4002"}'
    locust = str(Path(sys.executable).parent / "locust")
    for locustfile in sorted(USERS):
        done = listed([locust, "-f", f"locustfiles/{locustfile}"], environ)
        assert done.returncode == 0, (locustfile, done.stderr[-2000:])


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("locustfile", "variable", "value", "message"),
    [
        ("shop.py", env.WAIT_S, "2,1", "RUSHLAB_WAIT_S: expected 0 <= MIN <= MAX"),
        ("noisy.py", env.STAGES, "[]", "RUSHLAB_STAGES: the list of stages is empty"),
        ("pay.py", env.POISON_RATE, "2", "RUSHLAB_POISON_RATE: expected a share"),
        ("compare.py", env.SERVICES, "{}", "RUSHLAB_SERVICES: names no service to compare"),
    ],
)
def test_a_bad_variable_stops_locust_with_an_exception_naming_it(
    locustfile: str, variable: str, value: str, message: str
) -> None:
    """A malformed RUSHLAB_* variable fails the load with SettingsError naming it."""
    argv = harness_argv(locustfile)
    environ = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv.insert(argv.index(sys.executable), f"{variable}={value}")  # `env`: the last one wins
    done = listed(argv, environ)
    assert done.returncode != 0
    assert f"locustfiles.settings.SettingsError: {message}" in done.stderr, done.stderr[-2000:]


@pytest.mark.core
def test_regions_go_through_the_environment_and_a_bad_one_is_named() -> None:
    """RUSHLAB_REGIONS: each client region's source address and share, written by the
    harness and read back by the `regions` locustfile; a malformed entry names itself."""
    regions = {"eu-west": ("127.101.0.1", 1.0), "ap-south": ("127.102.0.1", 0.5)}
    written = env.to_environ(env.Settings(regions=regions))
    assert env.load_settings(written).regions == regions
    with pytest.raises(env.SettingsError, match=r"RUSHLAB_REGIONS\['eu'\]: expected \[address"):
        env.load_settings({env.REGIONS: '{"eu": ["127.101.0.1", 0]}'})
    with pytest.raises(env.SettingsError, match="RUSHLAB_REGIONS: expected a JSON object of"):
        env.load_settings({env.REGIONS: "[1]"})
