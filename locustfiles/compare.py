"""Side by side: the same readers against every service of RUSHLAB_SERVICES at once.

For scenarios that compare designs in one run (`chaos/scenarios/vertical-vs-horizontal.yaml`):
each service gets its own user class (`locustfiles/sides.py`), users split evenly; each user
reads one order after another (`GET /api/orders/{id}`), named `<service> /api/orders/{id}`.
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:  # Locust puts only locustfiles/ on sys.path; the harness sets PYTHONPATH
    sys.path.insert(0, _ROOT)

from locustfiles.common import RushShape  # noqa: E402, F401  (Locust finds the shape)
from locustfiles.sides import side_by_side, view_order  # noqa: E402

# Locust collects the user classes from the module's globals: one name each.
globals().update(side_by_side(view_order, "/api/orders/{id}"))
