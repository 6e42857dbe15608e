# taggerhub container image: the server and the Prometheus exporter under supervisord,
# with the vendor's Time Tagger library for a USB device passed through. The same image runs
# the live lab page (`taggerhub web`, the `web` extra) as compose's `web` service.
#
#   docker build -t taggerhub .
#
# Behind a TLS-intercepting proxy, hand pip the proxy's CA (used only while building):
#   docker build --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt -t taggerhub .
# BASE_IMAGE may be any Debian-based image with python3 >= 3.11 and its venv module.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---- build: wheels for taggerhub and everything it needs --------------------------------
FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/build
WORKDIR /src
# Dependencies first, from pyproject.toml alone, so that a source change reuses this layer.
COPY pyproject.toml ./
RUN --mount=type=secret,id=ca,required=false \
    --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && /opt/build/bin/python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
extra = p["optional-dependencies"]; print("\n".join(p["dependencies"] + extra["hardware"] + extra["container"] \
+ extra["web"]))' \
      > requirements.txt \
 && /opt/build/bin/pip wheel --quiet --wheel-dir /wheels -r requirements.txt
COPY README.md ./
COPY src ./src
RUN --mount=type=secret,id=ca,required=false \
    --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
 && /opt/build/bin/pip wheel --quiet --no-deps --wheel-dir /wheels .

# ---- final: a venv with the wheels, a non-root user, supervisord as PID 1 ------------------
FROM ${BASE_IMAGE}
# The user's uid, and the gid of the group that owns the Time Tagger's USB device nodes on
# the host (the vendor's udev rule; Debian and Ubuntu's plugdev is 46). Compose can add
# another group at run time (TAGGERHUB_USB_GID).
ARG TAGGERHUB_UID=10001
ARG USB_GID=46
RUN (getent group plugdev >/dev/null || groupadd --gid "${USB_GID}" plugdev) \
 && groupadd --gid "${TAGGERHUB_UID}" taggerhub \
 && useradd --uid "${TAGGERHUB_UID}" --gid taggerhub --groups plugdev --no-create-home \
      --home-dir /var/lib/taggerhub --shell /usr/sbin/nologin taggerhub \
 && install -d -o taggerhub -g taggerhub -m 0750 /var/lib/taggerhub \
 && install -d -m 0755 /etc/taggerhub
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python3 -m venv /opt/taggerhub \
 && PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore /opt/taggerhub/bin/pip install --quiet \
      --no-index --no-cache-dir --find-links /wheels 'taggerhub[hardware,container,web]' \
 && /opt/taggerhub/bin/pip uninstall --quiet --yes pip setuptools \
 && /opt/taggerhub/bin/python -c 'import Swabian.TimeTagger, supervisor, taggerhub, taggerhub.lab.web.app'
COPY deploy/supervisord.conf /etc/supervisor/supervisord.conf

ENV PATH=/opt/taggerhub/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TAGGERHUB_SERVER_HOST=0.0.0.0 \
    TAGGERHUB_SERVER_PORT=23000 \
    TAGGERHUB_EXPORTER_LISTEN=0.0.0.0:9234
# Binding 0.0.0.0 without auth and TLS needs TAGGERHUB_SERVER_INSECURE=true; compose.yaml sets
# it for the default setup, where the ports are published on loopback only.
EXPOSE 23000 9234 8023
WORKDIR /var/lib/taggerhub
# By uid alone, so that the supplementary groups (plugdev) apply too.
USER ${TAGGERHUB_UID}
# With auth and TLS on, the check needs a token (TAGGERHUB_TOKEN, an observer's will do) and the
# lab CA (TAGGERHUB_MONITOR_TLS_CA; the server certificate must name 127.0.0.1).
HEALTHCHECK --interval=5s --timeout=5s --start-period=60s --retries=3 \
  CMD taggerhub status --host 127.0.0.1 --port "${TAGGERHUB_SERVER_PORT}" \
      ${TAGGERHUB_MONITOR_TLS_CA:+--tls-ca "$TAGGERHUB_MONITOR_TLS_CA"} >/dev/null || exit 1
STOPSIGNAL SIGTERM
CMD ["supervisord", "--configuration", "/etc/supervisor/supervisord.conf"]

LABEL org.opencontainers.image.title="taggerhub" \
      org.opencontainers.image.description="Serve one Swabian Instruments Time Tagger to many users, safely" \
      org.opencontainers.image.licenses="MIT"
