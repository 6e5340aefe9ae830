# The bridge as a container:
#   docker build -t business-bridge .
#   docker run -v "$PWD/data:/data" business-bridge      # reads /data/config.yaml
# Inside a container the listener must bind to all interfaces: set appservice.hostname to
# 0.0.0.0 in the config (or BRIDGE_APPSERVICE__HOSTNAME=0.0.0.0).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/bridge
COPY pyproject.toml README.md ./
COPY bridge ./bridge
RUN pip install . \
    && useradd --uid 1000 --user-group --no-create-home --home-dir /data \
        --shell /usr/sbin/nologin bridge \
    && mkdir -p /data \
    && chown bridge:bridge /data

USER bridge
WORKDIR /data
VOLUME ["/data"]
EXPOSE 29340
ENTRYPOINT ["python", "-m", "bridge"]
CMD ["-c", "/data/config.yaml"]
