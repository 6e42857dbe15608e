#!/usr/bin/env bash
# Make an offline bundle for air-gapped lab PCs: the taggerhub image (`docker save`), the
# compose files and config, and load.sh, which loads the image without any registry.
#
#   scripts/make-offline-bundle.sh [--image NAME:TAG] [--output FILE.tar] [--build]
#                                  [--with-monitoring [--no-grafana]] [--also IMAGE]...
#
# --image            image to bundle (default $TAGGERHUB_IMAGE or taggerhub:latest); built
#                    from this checkout first when missing, or always with --build
#                    (BASE_IMAGE from $TAGGERHUB_BASE_IMAGE, pip's CA from $TAGGERHUB_BUILD_CA)
# --output           the bundle, a plain tar: the image inside is compressed already
#                    (default dist/taggerhub-bundle-VERSION.tar)
# --with-monitoring  also save the monitoring profile's images: Prometheus ($TAGGERHUB_PROMETHEUS_IMAGE,
#                    default taggerhub-prometheus:latest; Debian's package on the same base,
#                    built from monitoring/container when missing or with --build) and Grafana
#                    ($TAGGERHUB_GRAFANA_IMAGE, default grafana/grafana:11.2.0), which Debian
#                    does not package: it must have been pulled from a registry first
# --no-grafana       with --with-monitoring: Prometheus only (no registry needed at all)
# --also IMAGE       also save this image, e.g. a sidecar of the vpn or ssh profile (built first)
#
# On the lab PC: tar xf taggerhub-bundle-VERSION.tar && cd taggerhub-bundle-VERSION && ./load.sh
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
die() { echo "make-offline-bundle: $*" >&2; exit 1; }
log() { echo "make-offline-bundle: $*" >&2; }
# On a terminal, `docker save` (minutes for a large image) shows a progress bar when pv is installed.
show_progress=no
[ -t 2 ] && command -v pv >/dev/null && show_progress=yes
save() {  # save ARCHIVE IMAGE...: docker save | gzip, with progress on a terminal
  local archive="$1"; shift
  local bytes=0 size
  for ref in "$@"; do
    size="$(docker image inspect --format '{{.Size}}' "$ref")"
    bytes=$((bytes + size))
  done
  log "saving $* ($((bytes / 1000000)) MB before compression)"
  if [ "$show_progress" = yes ]; then
    docker save "$@" | pv --name "$(basename "$archive" .tar.gz)" --size "$bytes" --progress --timer --eta --rate --bytes \
      | gzip -1 > "$archive"
  else
    docker save "$@" | gzip -1 > "$archive"
  fi
}

version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$repo/pyproject.toml" | head -n 1)"
image="${TAGGERHUB_IMAGE:-taggerhub:latest}"
output=""
build=no
monitoring=no
grafana=yes
also=()
base_image="${TAGGERHUB_BASE_IMAGE:-python:3.11-slim-bookworm}"
prometheus_image="${TAGGERHUB_PROMETHEUS_IMAGE:-taggerhub-prometheus:latest}"
grafana_image="${TAGGERHUB_GRAFANA_IMAGE:-grafana/grafana:11.2.0}"
while [ $# -gt 0 ]; do
  case "$1" in
    --image) [ $# -ge 2 ] || die "--image needs NAME:TAG"; image="$2"; shift 2 ;;
    --output) [ $# -ge 2 ] || die "--output needs a file name"; output="$2"; shift 2 ;;
    --build) build=yes; shift ;;
    --with-monitoring) monitoring=yes; shift ;;
    --also) [ $# -ge 2 ] || die "--also needs an image"; also+=("$2"); shift 2 ;;
    --no-grafana) grafana=no; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
output="${output:-$repo/dist/taggerhub-bundle-$version.tar}"
case "$output" in *.tar) ;; *) die "--output must end in .tar, got $output" ;; esac
command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "no Docker engine answers (is dockerd running, may this user use it?)"

[ "$grafana" = yes ] || [ "$monitoring" = yes ] || die "--no-grafana goes with --with-monitoring"
# Extra images must be here already: check before the long save.
extras=("${also[@]}")
monitoring_images=()
if [ "$monitoring" = yes ]; then
  monitoring_images+=("$prometheus_image")
  if [ "$grafana" = yes ]; then
    docker image inspect "$grafana_image" >/dev/null 2>&1 \
      || die "$grafana_image is not here: Grafana comes only from a registry (docker pull $grafana_image), or bundle Prometheus alone with --no-grafana"
    monitoring_images+=("$grafana_image")
  fi
fi
for ref in "${extras[@]}"; do
  docker image inspect "$ref" >/dev/null 2>&1 || die "$ref is not here: pull or build it first"
done

if [ "$build" = yes ] || ! docker image inspect "$image" >/dev/null 2>&1; then
  log "building $image"
  args=(--build-arg "BASE_IMAGE=$base_image" -t "$image")
  [ -n "${TAGGERHUB_BUILD_CA:-}" ] && args+=(--secret "id=ca,src=$TAGGERHUB_BUILD_CA")
  docker build "${args[@]}" "$repo" >&2
fi
if [ "$monitoring" = yes ] && { [ "$build" = yes ] || ! docker image inspect "$prometheus_image" >/dev/null 2>&1; }; then
  log "building $prometheus_image (Debian's prometheus on $base_image)"
  docker build --build-arg "BASE_IMAGE=$base_image" -t "$prometheus_image" \
    -f "$repo/monitoring/container/prometheus.Dockerfile" "$repo/monitoring/container" >&2
fi

name="$(basename "$output" .tar)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
dir="$work/$name"
mkdir -p "$dir/images"

save "$dir/images/taggerhub.tar.gz" "$image"
[ "$monitoring" = no ] || save "$dir/images/monitoring.tar.gz" "${monitoring_images[@]}"
[ ${#also[@]} -eq 0 ] || save "$dir/images/extra.tar.gz" "${also[@]}"

# Compose files and the config they mount, in the same layout as in the repository.
cp "$repo"/compose.yaml "$repo"/compose.*.yaml "$dir/"   # hardware, and the vpn/ssh overlays
mkdir -p "$dir/deploy" "$dir/docs"
cp -R "$repo/deploy/config" "$repo/deploy/monitoring" "$dir/deploy/"
cp "$repo/deploy/example.env" "$repo/deploy/no-build-ca.pem" "$dir/deploy/"
[ -d "$repo/monitoring" ] && cp -R "$repo/monitoring" "$dir/"
cp "$repo/docs/container.md" "$dir/docs/"
cp "$repo/deploy/offline/load.sh" "$dir/load.sh"
chmod 0755 "$dir/load.sh"
# compose reads .env beside compose.yaml: the bundled image, and nothing is built or pulled.
{
  echo "# Written by make-offline-bundle.sh; add settings from deploy/example.env below."
  echo "TAGGERHUB_IMAGE=$image"
  if [ "$monitoring" = yes ]; then
    echo "TAGGERHUB_PROMETHEUS_IMAGE=$prometheus_image"
    [ "$grafana" = no ] || echo "TAGGERHUB_GRAFANA_IMAGE=$grafana_image"
    echo "# The monitoring profile is in the bundle: COMPOSE_PROFILES=monitoring runs it with every up."
  fi
} > "$dir/.env"
(cd "$dir" && find . -type f ! -name SHA256SUMS -print0 | sort -z | xargs -0 sha256sum > SHA256SUMS)

mkdir -p "$(dirname "$output")"
tar -C "$work" -cf "$output.part" "$name"
mv "$output.part" "$output"
log "wrote $output ($(du -h "$output" | cut -f1))"
echo "$output"
