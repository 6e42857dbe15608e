# Prometheus for the compose monitoring profile, built from the same Debian base as the
# taggerhub image with Debian's `prometheus` package: no registry needed, so the profile runs
# on PCs without internet (the offline bundle carries the built image, docs/container.md).
# Laid out like the upstream prom/prometheus image (entrypoint prometheus, user nobody, data
# in /prometheus), so compose.yaml's prometheus service runs either unchanged.
#
#   docker build -f monitoring/container/prometheus.Dockerfile -t taggerhub-prometheus monitoring/container
#   (or: docker compose --profile monitoring build prometheus)
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o nobody -g nogroup /prometheus /etc/prometheus \
 && prometheus --version
USER nobody
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
LABEL org.opencontainers.image.title="taggerhub-prometheus" \
      org.opencontainers.image.description="Debian's Prometheus for the taggerhub monitoring profile"
