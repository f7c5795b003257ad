#!/bin/sh
# The clock without a battery ("fake-hwclock"): a Raspberry Pi starts in 1970. busybox has
# no NTP client, so the best estimate is the time saved at the last shutdown, or the build
# time for a new card. qemu virt has an RTC that is already ahead of both.
#
#   clock.sh restore   at boot (rcS): move the clock forward to the saved time, never back
#   clock.sh save      write the current time to /data/clock (rcK, and the loop below)
#   clock.sh keep      save every 10 minutes, so a power cut loses at most that (inittab)
#
# A real SNTP client is future work.
saved=/data/clock

save() {
  # Only onto the real data partition, and atomically: a torn file would be worse than none.
  grep -q ' /data ext4 ' /proc/mounts || return 0
  date +%s >"$saved.new" && mv "$saved.new" "$saved"
}

case "$1" in
  restore)
    now=$(date +%s)
    target=$(cat /etc/letterbox/build-epoch)
    last=$(cat "$saved" 2>/dev/null)
    case "$last" in '' | *[!0-9]*) last=0 ;; esac
    [ "$last" -gt "$target" ] && target=$last
    if [ "$target" -gt "$now" ]; then
      date -s "@$target" >/dev/null && echo "letterbox: clock set forward to $(date)"
    fi
    ;;
  save) save ;;
  keep) while sleep 600; do save; done ;;
  *)
    echo "usage: $0 restore|save|keep" >&2
    exit 2
    ;;
esac
