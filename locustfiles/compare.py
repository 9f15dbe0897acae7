"""Side by side: the same readers against every service of RUSHLAB_SERVICES at once.

For scenarios that compare designs in one run (`chaos/scenarios/vertical-vs-horizontal.yaml`):
each service gets its own user class (`locustfiles/sides.py`), users split evenly; each user
reads one order after another (`GET /api/orders/{id}`), named `<service> /api/orders/{id}`.
"""

from __future__ import annotations

from locustfiles.common import rush_shape, settings
from locustfiles.sides import side_by_side, view_order

RushShape = rush_shape(settings().stages)  # Locust finds the shape (None: no RUSHLAB_STAGES)

# Locust collects the user classes from the module's globals: one name each.
globals().update(side_by_side(settings().services, "GET", view_order, "/api/orders/{id}"))
