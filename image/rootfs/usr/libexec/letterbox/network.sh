#!/bin/sh
# DHCP on every network interface, also on those that appear later (USB Ethernet on a Pi 3
# shows up seconds after boot). One udhcpc per interface; it keeps the lease renewed in the
# background and configures the interface through /usr/share/udhcpc/default.script. IPv6
# autoconfiguration is the kernel's own.
#
#   network.sh early   (rcS, right after the modules) start DHCP on the interfaces there
#                      are, without waiting: the link comes up and the lease arrives while
#                      the rest of the boot runs (the kernel activates a new link only up
#                      to a second after it is set up)
#   network.sh         (inittab, respawn) the same, every 5 s, for interfaces without one

# dhcp IFC: starts udhcpc on IFC unless one runs there already (or is being started: the
# early start and the loop may meet). The link must be up first: a DHCP request sent before
# the kernel activated it is lost, and udhcpc -b then retries only 20 s later.
dhcp() {
  pidfile=/run/udhcpc.$1.pid
  if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    return 0
  fi
  mkdir "/run/dhcp-starting.$1" 2>/dev/null || return 0
  ip link set "$1" up
  n=0
  while [ "$(cat "/sys/class/net/$1/operstate" 2>/dev/null)" != up ] && [ $n -lt 60 ]; do
    sleep 0.05
    n=$((n + 1))
  done
  # -b: go to the background at once if no lease comes in the first round.
  # -O ntpsrv: ask for the network's time servers too (clock.sh uses them).
  udhcpc -b -S -O ntpsrv -i "$1" -p "$pidfile" -s /usr/share/udhcpc/default.script \
    -x "hostname:$(hostname)" >/dev/null 2>&1
  rmdir "/run/dhcp-starting.$1"
}

interfaces() {
  for path in /sys/class/net/*; do
    [ "${path##*/}" = lo ] || echo "${path##*/}"
  done
}

if [ "$1" = early ]; then
  for ifc in $(interfaces); do
    dhcp "$ifc" &
  done
  exit 0
fi

while :; do
  for ifc in $(interfaces); do
    dhcp "$ifc"
  done
  sleep 5
done
