"""Queue workers and the simulated providers they deliver to.

`core.py` (pure): the provider's latency and failure sampling, the worker's back-off schedule
and its decision on a delivery's result. `provider.py`: the simulated mail (or WhatsApp)
provider, an HTTP server (`python -m targets.workers.provider`). `worker.py`: the worker loop
(receive, rate-limit, deliver, delete or back off) on the queue's plain JSON API, and its
metrics; `__main__.py`: the worker process (`python -m targets.workers`).
"""
