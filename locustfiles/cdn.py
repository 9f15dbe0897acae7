"""Side by side: readers of the shop's content through each CDN edge, and straight at the origin.

For the CDN scenarios (`chaos/scenarios/flash-crowd.yaml`): RUSHLAB_SERVICES names each edge
and, as `origin`, the API gateway behind them; each gets its own user class
(`locustfiles/sides.py`), users split evenly. Every user reads the catalogue's hot first page
(`GET /api/catalogue/1`, a flash crowd on one object), named `<side> /api/catalogue/1`: through
an edge it is a cache hit almost always, at the origin every request costs a server.
"""

from __future__ import annotations

from typing import Any

from locustfiles.common import RushUser, rush_shape, settings
from locustfiles.sides import side_by_side

HOT = "/api/catalogue/1"


def hot_page(user: RushUser) -> tuple[str, dict[str, Any] | None]:
    return HOT, None


RushShape = rush_shape(settings().stages)  # Locust finds the shape (None: no RUSHLAB_STAGES)

# Locust collects the user classes from the module's globals: one name each.
globals().update(side_by_side(settings().services, "GET", hot_page, HOT))
