# Image for the Python services of compose.yaml (aggregator, devices, broker-init):
#   docker build -t fedmq .      then      docker run --rm fedmq --help
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Sources only (see .dockerignore); the packages are those of pyproject.toml's wheel.
COPY pyproject.toml README.md ./
COPY fedmq ./fedmq
COPY aggregator ./aggregator
COPY device_sim ./device_sim
COPY broker ./broker
COPY demo ./demo
COPY bench ./bench
RUN pip install . \
    && install -m 0755 broker/docker-entrypoint.sh /usr/local/bin/fedmq-entrypoint

# Services run unprivileged. The state directory exists in the image so that a named
# volume mounted on it starts out owned by this user.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/fedmq --create-home fedmq \
    && mkdir -p /var/lib/fedmq/state \
    && chown -R fedmq:fedmq /var/lib/fedmq
USER fedmq
WORKDIR /var/lib/fedmq

ENTRYPOINT ["fedmq-entrypoint"]
CMD ["--help"]
