"""What every locustfile of the lab shares: its settings and the stage shape.

Imported by a locustfile after it has put the repository root on `sys.path`. Importing it also
loads the plugin (the Prometheus exporter and the chaos page).
"""

from __future__ import annotations

import os
import sys

from locust import LoadTestShape

from locustfiles import plugin  # noqa: F401  (the exporter and chaos page listeners)
from locustfiles.settings import SettingsError, load_settings
from locustfiles.stages import tick

try:
    SETTINGS = load_settings(os.environ)
except SettingsError as exc:
    sys.exit(f"error: {exc}")


class _Stages(LoadTestShape):
    """The stages of RUSHLAB_STAGES, back to back; None after the last ends the run."""

    abstract = True  # Locust skips abstract shapes; `RushShape` below is the concrete one
    stages = SETTINGS.stages

    def tick(self) -> tuple[int, float] | None:
        return tick(self.stages, self.get_run_time())


# A locustfile re-exports `RushShape`; with no stages it is None and the web UI or the
# command line sets users and spawn rate.
RushShape = type("RushShape", (_Stages,), {"abstract": False}) if SETTINGS.stages else None
