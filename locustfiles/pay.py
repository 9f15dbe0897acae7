"""Side by side: the same payers against every service of RUSHLAB_SERVICES at once.

For `chaos/scenarios/sync-vs-async-email.yaml` and the queue scenarios: each service gets its
own user class (`locustfiles/sides.py`), users split evenly; each user pays one order after
another (`POST /api/payments`), named `<service> /api/payments`. With RUSHLAB_POISON_RATE,
that share of payments asks for a receipt the mail provider always refuses.
"""

from __future__ import annotations

from locustfiles.common import rush_shape, settings
from locustfiles.sides import pay, side_by_side

RushShape = rush_shape(settings().stages)  # Locust finds the shape (None: no RUSHLAB_STAGES)

# Locust collects the user classes from the module's globals: one name each.
globals().update(side_by_side(settings().services, "POST", pay, "/api/payments"))
