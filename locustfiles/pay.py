"""Side by side: the same payers against every service of RUSHLAB_SERVICES at once.

For `chaos/scenarios/sync-vs-async-email.yaml` and the queue scenarios: each service gets its
own user class (`locustfiles/sides.py`), users split evenly; each user pays one order after
another (`POST /api/payments`), named `<service> /api/payments`. With RUSHLAB_POISON_RATE,
that share of payments asks for a receipt the mail provider always refuses.
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:  # Locust puts only locustfiles/ on sys.path; the harness sets PYTHONPATH
    sys.path.insert(0, _ROOT)

from locustfiles.common import RushShape  # noqa: E402, F401  (Locust finds the shape)
from locustfiles.sides import pay, side_by_side  # noqa: E402

# Locust collects the user classes from the module's globals: one name each.
globals().update(side_by_side(pay, "/api/payments"))
