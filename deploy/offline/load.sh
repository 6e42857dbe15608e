#!/usr/bin/env bash
# Load the taggerhub images of this offline bundle into the local Docker engine (no registry
# needed), after checking that nothing in the bundle was damaged on the way.
#   ./load.sh        then: docker compose up -d   (see docs/container.md)
set -euo pipefail
cd "$(dirname "$0")"
die() { echo "load.sh: $*" >&2; exit 1; }
command -v docker >/dev/null || die "docker is not installed on this PC"
docker info >/dev/null 2>&1 || die "no Docker engine answers (is dockerd running, may this user use it?)"
docker compose version >/dev/null 2>&1 || die "the docker compose plugin (v2) is missing"
sha256sum --quiet -c SHA256SUMS || die "the bundle is damaged: SHA256SUMS does not match"
for archive in images/*.tar.gz; do
  echo "load.sh: loading $archive" >&2
  docker load -i "$archive"
done
image="$(sed -n 's/^TAGGERHUB_IMAGE=//p' .env | tail -n 1)"
for name in TAGGERHUB_IMAGE TAGGERHUB_PROMETHEUS_IMAGE TAGGERHUB_GRAFANA_IMAGE; do
  ref="$(sed -n "s/^$name=//p" .env | tail -n 1)"
  [ -z "$ref" ] || docker image inspect "$ref" >/dev/null 2>&1 || die "$ref is not in the engine after loading"
done
cat >&2 <<MSG
load.sh: $image is loaded. Next, in $(pwd):
  docker compose up -d                                        # simulator on 127.0.0.1:23000
  docker compose -f compose.yaml -f compose.hardware.yaml up -d   # the Time Tagger on USB
  docker compose --profile monitoring up -d                   # with Prometheus (and Grafana if bundled)
Settings go into .env (deploy/example.env lists them); docs/container.md explains them.
MSG
