# A throwaway "lab PC" for the provisioning tests: Debian bookworm with systemd as PID 1,
# the packages the role installs already present (the test hosts have no registry access),
# and nothing of taggerhub: the playbook brings that.
ARG BASE_IMAGE=debian:bookworm
FROM ${BASE_IMAGE} AS labpc
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      systemd systemd-sysv dbus udev nftables python3 python3-venv python3-apt python3-packaging procps ca-certificates iproute2 \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && rm -f /etc/systemd/system/*.wants/* /lib/systemd/system/multi-user.target.wants/getty* \
 && systemctl mask getty.target console-getty.service systemd-logind.service
STOPSIGNAL SIGRTMIN+3
CMD ["/lib/systemd/systemd"]

# A lab PC for Docker mode: Debian's Docker engine (nested here, on the vfs driver); the compose
# v2 plugin, which bookworm does not package, is mounted from the machine running the tests.
FROM labpc AS labpc-docker
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io python3-docker iptables \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
