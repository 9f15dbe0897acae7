# One image for every lab process; the command picks the target (python -m targets.<name>).
FROM python:3.11-slim
WORKDIR /lab
COPY requirements.lock .
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock
COPY targets ./targets
COPY harness ./harness
ENV PYTHONPATH=/lab PYTHONUNBUFFERED=1
