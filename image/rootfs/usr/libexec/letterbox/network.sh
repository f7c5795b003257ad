#!/bin/sh
# DHCP on every network interface, also on those that appear later (USB Ethernet on a Pi 3
# shows up seconds after boot), under init (respawn). One udhcpc per interface; it keeps
# the lease renewed in the background and configures the interface through
# /usr/share/udhcpc/default.script. IPv6 autoconfiguration is the kernel's own.
while :; do
  for path in /sys/class/net/*; do
    ifc=${path##*/}
    [ "$ifc" = lo ] && continue
    pidfile=/run/udhcpc.$ifc.pid
    if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      continue
    fi
    ip link set "$ifc" up
    # -b: go to the background at once if no lease comes in the first round.
    # -O ntpsrv: ask for the network's time servers too (clock.sh uses them).
    udhcpc -b -S -O ntpsrv -i "$ifc" -p "$pidfile" -s /usr/share/udhcpc/default.script \
      -x "hostname:$(hostname)" >/dev/null 2>&1
  done
  sleep 5
done
