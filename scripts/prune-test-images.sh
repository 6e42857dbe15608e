#!/usr/bin/env bash
# List, and with --yes remove, what the Docker tests keep on the engine between runs: the images
# they reuse instead of building again (docs/container.md, Tests), and whatever an interrupted
# run left (containers, volumes and networks of the test compose projects, run-id tagged images).
# Run it only while no test runs on this engine.
#
#   scripts/prune-test-images.sh [--yes] [IMAGE-REFERENCE...]
#
# IMAGE-REFERENCE: docker reference filters (wildcards allowed); default: every kept test image.
set -euo pipefail
yes=no
refs=()
for arg in "$@"; do
  case "$arg" in
    --yes) yes=yes ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "prune-test-images: unknown option $arg" >&2; exit 2 ;;
    *) refs+=("$arg") ;;
  esac
done
command -v docker >/dev/null || { echo "prune-test-images: docker is not installed" >&2; exit 1; }
own_refs=${#refs[@]}
if [ "$own_refs" -eq 0 ]; then
  refs=('deploy-labpc:test' 'deploy-labpc-docker:test' 'acc-*:test' 'taggerhub-docker-test*' 'taggerhub:deploy-*')
fi
images=()
for ref in "${refs[@]}"; do
  while IFS= read -r image; do [ -z "$image" ] || images+=("$image"); done \
    < <(docker image ls --filter "reference=$ref" --format '{{.Repository}}:{{.Tag}}')
done
containers=() volumes=() networks=()
if [ "$own_refs" -eq 0 ]; then  # leftovers of interrupted runs: compose projects named docker-test-*
  while IFS= read -r line; do
    case "$line" in docker-test-*) containers+=("${line#* }") ;; esac
  done < <(docker ps --all --format '{{.Label "com.docker.compose.project"}} {{.ID}}')
  while IFS= read -r line; do
    case "$line" in docker-test-*) volumes+=("${line#* }") ;; esac
  done < <(docker volume ls --format '{{.Label "com.docker.compose.project"}} {{.Name}}')
  while IFS= read -r line; do
    case "$line" in docker-test-*) networks+=("${line#* }") ;; esac
  done < <(docker network ls --format '{{.Label "com.docker.compose.project"}} {{.ID}}')
fi
for item in "${images[@]/#/image }" "${containers[@]/#/container }" "${volumes[@]/#/volume }" \
            "${networks[@]/#/network }"; do
  [ -z "$item" ] || echo "$item"
done
[ "$yes" = yes ] || { echo "prune-test-images: listed only; --yes removes them" >&2; exit 0; }
[ ${#containers[@]} -eq 0 ] || docker rm --force --volumes "${containers[@]}" >/dev/null
[ ${#volumes[@]} -eq 0 ] || docker volume rm "${volumes[@]}" >/dev/null
[ ${#networks[@]} -eq 0 ] || docker network rm "${networks[@]}" >/dev/null
[ ${#images[@]} -eq 0 ] || docker image rm "${images[@]}" >/dev/null
echo "prune-test-images: removed $(( ${#images[@]} + ${#containers[@]} + ${#volumes[@]} + ${#networks[@]} )) items" >&2
