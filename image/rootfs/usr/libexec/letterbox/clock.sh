#!/bin/sh
# The clock without a battery: a Raspberry Pi starts in 1970.
#
#   clock.sh restore   at boot (rcS): move the clock forward to the time saved at the last
#                      shutdown (or the build time of a new card), never back; the estimate
#                      for boots without network. A board with a running real-time clock
#                      (qemu virt; a Pi with an RTC module) is ahead of both already: then
#                      the time is trusted as it is (/run/letterbox/clock-from-rtc).
#   clock.sh save      write the current time to /data/clock (rcK, and the loop below)
#   clock.sh keep      (inittab) once the network is up, set the clock from time servers
#                      with `letterbox clock sync` (SNTP: [clock] servers, else the DHCP
#                      lease's, else pool.ntp.org), then again every 6 hours; save
#                      it every 10 minutes, so a power cut loses at most that.
#
# serve.sh waits (at most 10 s) for the first sync attempt, so letterbox starts with the
# right time when the network gives it, unless the real-time clock gave it already.
saved=/data/clock
tried=/run/letterbox/clock-tried
from_rtc=/run/letterbox/clock-from-rtc

sync_clock() {
  letterbox clock sync --timeout 3 2>&1 | logger -t clock
}

save() {
  # Only onto the real data partition, and atomically: a torn file would be worse than none.
  grep -q ' /data ext4 ' /proc/mounts || return 0
  date +%s >"$saved.new" && mv "$saved.new" "$saved"
}

case "$1" in
  restore)
    # (Files are read with the shell's read: a process less each, at every boot.)
    now=$(date +%s)
    read -r target </etc/letterbox/build-epoch
    last=
    { read -r last <"$saved"; } 2>/dev/null
    case "$last" in '' | *[!0-9]*) last=0 ;; esac
    [ "$last" -gt "$target" ] && target=$last
    rtc=0
    { read -r rtc </sys/class/rtc/rtc0/since_epoch; } 2>/dev/null
    case "$rtc" in '' | *[!0-9]*) rtc=0 ;; esac
    if [ "$target" -gt "$now" ]; then
      date -s "@$target" >/dev/null && echo "letterbox: clock set forward to $(date)"
    elif [ "$rtc" -ge "$target" ]; then
      # The kernel set the time from this clock at boot, and it is past every time this box
      # has seen: a clock that kept running.
      mkdir -p /run/letterbox
      touch "$from_rtc"
      echo "letterbox: clock from the real-time clock: $(date)"
    fi
    ;;
  save) save ;;
  keep)
    mkdir -p /run/letterbox
    # Up to 10 s for a default route (the DHCP lease), then one attempt either way.
    n=0
    while [ $n -lt 10 ] && ! ip route | grep -q '^default'; do sleep 1; n=$((n + 1)); done
    sync_clock
    touch "$tried"
    rounds=0
    while sleep 600; do
      save
      rounds=$((rounds + 1))
      [ $((rounds % 36)) -eq 0 ] && sync_clock
    done
    ;;
  *)
    echo "usage: $0 restore|save|keep" >&2
    exit 2
    ;;
esac
