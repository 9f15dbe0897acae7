# One image for every Python process of the lab: load balancers and servers
# (python -m targets.<name>), Locust masters and workers (locust -f locustfiles/shop.py), the
# harness. docker-compose.yml picks the command per service.
FROM python:3.11-slim

ENV PYTHONPATH=/lab \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /lab

# Dependencies first (their layer survives code changes), pinned and hash-checked.
COPY requirements.lock .
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock

COPY targets ./targets
COPY harness ./harness
COPY chaos ./chaos
COPY locustfiles ./locustfiles
COPY dashboards ./dashboards

# Nothing here needs root: every port is above 1024.
RUN useradd --system --uid 10001 --home-dir /lab --no-create-home lab
USER lab

# Server data port, load balancer data and control ports, Locust web UI and worker metrics.
EXPOSE 8000 8080 9001 8089 9646
CMD ["python", "-m", "harness", "--help"]
