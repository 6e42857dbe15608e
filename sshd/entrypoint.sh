#!/usr/bin/env bash
# Run sshd for port forwarding to taggerhub: make the host key once (kept in a volume), copy
# the authorized keys from the config volume where sshd's StrictModes accepts them, and
# re-copy them when they change so that adding or revoking a key needs no restart.
set -euo pipefail
log() { echo "sshd-sidecar: $*" >&2; }
keys_src="${SSHD_AUTHORIZED_KEYS:-/config/ssh/authorized_keys}"
keys_dst=/etc/ssh/authorized_keys/tunnel
host_key=/etc/ssh/host_keys/ssh_host_ed25519_key
interval="${SSHD_SYNC_INTERVAL_S:-2}"

if [ ! -s "$host_key" ]; then
  ssh-keygen -q -t ed25519 -N '' -C "taggerhub-sshd" -f "$host_key"
fi
log "host key $(ssh-keygen -l -f "$host_key.pub")"

stamp() { stat -c '%Y %s %i' "$keys_src" 2>/dev/null || echo none; }
sync_keys() {
  if [ -r "$keys_src" ]; then
    install -o root -g root -m 0644 "$keys_src" "$keys_dst.new" && mv "$keys_dst.new" "$keys_dst"
    log "authorized keys: $(grep -cvE '^\s*(#|$)' "$keys_dst" || true) from $keys_src"
  else
    rm -f "$keys_dst"
    log "no $keys_src: nobody can log in until it exists"
  fi
}
seen="$(stamp)"
sync_keys

/usr/sbin/sshd -t -f /etc/ssh/taggerhub_sshd_config -o "Port=${SSHD_PORT:-2222}" \
  -o "PermitOpen=${SSHD_PERMIT_OPEN:-localhost:23000}"
/usr/sbin/sshd -D -e -f /etc/ssh/taggerhub_sshd_config -o "Port=${SSHD_PORT:-2222}" \
  -o "PermitOpen=${SSHD_PERMIT_OPEN:-localhost:23000}" &
sshd_pid=$!
log "sshd listening on port ${SSHD_PORT:-2222}; forwards allowed only to: ${SSHD_PERMIT_OPEN:-localhost:23000}"

stopping=0
trap 'stopping=1' TERM INT
while [ "$stopping" = 0 ]; do
  sleep "$interval" & wait $! || true
  kill -0 "$sshd_pid" 2>/dev/null || { wait "$sshd_pid" || status=$?; log "sshd exited"; exit "${status:-1}"; }
  now="$(stamp)"
  if [ "$now" != "$seen" ]; then seen="$now"; sync_keys; fi
done
log "stopping"
kill -TERM "$sshd_pid" 2>/dev/null || true
wait "$sshd_pid" || true
