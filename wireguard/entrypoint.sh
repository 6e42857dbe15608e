#!/usr/bin/env bash
# Bring the WireGuard interface up from the config volume, fence off everything else, and
# apply later changes to the config (`taggerhub vpn add-peer`) without restarting the tunnel.
set -euo pipefail
conf="${WG_CONFIG_DIR:-/config/wireguard}/${WG_INTERFACE:-wg0}.conf"
iface="${WG_INTERFACE:-wg0}"
interval="${WG_SYNC_INTERVAL_S:-2}"
log() { echo "wireguard-sidecar: $*" >&2; }

if [ ! -r "$conf" ]; then
  log "no $conf: run \`taggerhub vpn init --endpoint HOST:PORT\` against the config volume first"
  exit 78
fi

# wg-quick wants the config where the interface name comes from the file name; keep the
# volume read-only by working from a private copy.
run=/run/wireguard-sidecar
mkdir -p -m 0700 "$run"
install -m 0600 "$conf" "$run/$iface.conf"
stamp() { stat -c '%Y %s %i' "$conf"; }
seen="$(stamp)"

# wg-quick tries the kernel module first and falls back to wireguard-go by itself.
export WG_QUICK_USERSPACE_IMPLEMENTATION="${WG_QUICK_USERSPACE_IMPLEMENTATION:-wireguard-go}"
wg-quick up "$run/$iface.conf"
if ip -d link show "$iface" | grep -qw tun; then
  log "$iface up (wireguard-go, userspace: no kernel module here)"
else
  log "$iface up (kernel module)"
fi

# Only the tunnel, loopback and WireGuard's own UDP port get in; whatever else listens in this
# network namespace (RPC, metrics) is unreachable from outside the tunnel.
fence() {  # errexit is off inside `if`, hence the explicit returns
  local ipt="$1" port="$2" tcp
  "$ipt" -w -N TAGGERHUB-VPN 2>/dev/null || "$ipt" -w -F TAGGERHUB-VPN || return 1
  "$ipt" -w -A TAGGERHUB-VPN -i lo -j ACCEPT || return 1
  "$ipt" -w -A TAGGERHUB-VPN -i "$iface" -j ACCEPT || return 1
  "$ipt" -w -A TAGGERHUB-VPN -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT || return 1
  "$ipt" -w -A TAGGERHUB-VPN -p udp --dport "$port" -j ACCEPT || return 1
  # e.g. WG_FIREWALL_ALLOW_TCP=9234 lets Prometheus on the compose network scrape the metrics.
  for tcp in ${WG_FIREWALL_ALLOW_TCP:-}; do
    "$ipt" -w -A TAGGERHUB-VPN -p tcp --dport "$tcp" -j ACCEPT || return 1
  done
  if [ "$ipt" = ip6tables ]; then "$ipt" -w -A TAGGERHUB-VPN -p ipv6-icmp -j ACCEPT || return 1; fi
  "$ipt" -w -A TAGGERHUB-VPN -j DROP || return 1
  "$ipt" -w -C INPUT -j TAGGERHUB-VPN 2>/dev/null || "$ipt" -w -I INPUT -j TAGGERHUB-VPN
}
if [ "${WG_FIREWALL:-on}" = on ]; then
  port="$(wg show "$iface" listen-port)"
  for ipt in iptables ip6tables; do
    # Fail closed: without the fence the RPC port would be open to the container network.
    if ! fence "$ipt" "$port"; then
      log "could not set up the $ipt firewall (check NET_ADMIN and WG_FIREWALL_ALLOW_TCP); refusing to run without it"
      wg-quick down "$run/$iface.conf" || true
      exit 1
    fi
  done
  log "firewall on: only $iface, lo, udp/$port${WG_FIREWALL_ALLOW_TCP:+ and tcp/$WG_FIREWALL_ALLOW_TCP} are let in"
else
  log "firewall off (WG_FIREWALL=$WG_FIREWALL): everything listening here is reachable from the container network"
fi

stopping=0
shutdown() { stopping=1; }
trap shutdown TERM INT

while [ "$stopping" = 0 ]; do
  sleep "$interval" & wait $! || true
  [ "$stopping" = 0 ] || break
  now="$(stamp 2>/dev/null || echo gone)"
  if [ "$now" != "$seen" ] && [ "$now" != gone ]; then
    seen="$now"
    install -m 0600 "$conf" "$run/$iface.conf"
    # syncconf changes peers in place: established sessions of other peers carry on.
    if wg syncconf "$iface" <(wg-quick strip "$run/$iface.conf"); then
      log "applied changed $conf ($(wg show "$iface" peers | wc -l) peers)"
    else
      log "could not apply changed $conf; the tunnel keeps its previous peers"
    fi
  fi
done
log "stopping"
wg-quick down "$run/$iface.conf" || true
