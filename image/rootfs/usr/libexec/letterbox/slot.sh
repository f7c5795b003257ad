#!/bin/sh
# The two system slots and the trial of a new one (updates in place with automatic rollback).
#
# The boot partition (FAT, label BOOT) holds two slots, a/ and b/, each a whole system:
# vmlinuz, initramfs, cmdline.txt (with letterbox.slot=a or b), the device trees and
# version. /slot.txt says which one the firmware loads ("os_prefix=a/"; config.txt includes
# it); /data is shared. letterbox-update writes the other slot, records a trial in
# /data/update/trial, points slot.txt at the new slot and reboots. Then:
#
#   slot.sh boot    (rcS, after /data is mounted) if a trial is under way and this boot is
#                   its second attempt (the first one did not confirm: it hung, crashed or
#                   lost power, and the watchdog or a person restarted it), go back to the
#                   old slot and reboot; on the old slot, end the trial as failed.
#   slot.sh check   (inittab ::once) in a trial, wait until letterbox answers on SMTP, IMAP
#                   and POP3 and `letterbox verify` accepts the store: then the new slot is
#                   confirmed; otherwise (at most CHECK_SECONDS, or once letterbox has
#                   exited three times) go back to the old slot and reboot.
#   slot.sh active  the slot this system was booted from
#   slot.sh mount   the boot partition, read-write on /run/boot
#   slot.sh switch SLOT   the firmware loads SLOT from the next boot on
#
# Why not the Pi's tryboot: the firmware's one-time boot flag is set through a firmware
# call that only Raspberry Pi's own kernel makes on reboot ("reboot '0 tryboot'"); Debian's
# kernel, which this image uses, has no way to set it. The trial is therefore kept by the
# system itself, and a slot whose kernel does not reach user space at all is not caught
# (README, "Updates").
state=/data/update
trial=$state/trial
history=$state/history
boot_mnt=/run/boot
CHECK_SECONDS=${CHECK_SECONDS:-180}

say() { echo "letterbox: $*"; logger -t update "$*"; }

active() {
  sed -n 's/.*letterbox\.slot=\([ab]\).*/\1/p' /proc/cmdline
}

other() {
  case "$1" in a) echo b ;; b) echo a ;; *) return 1 ;; esac
}

# The boot partition, mounted read-write on /run/boot (vfat loads on demand).
mount_boot() {
  grep -q " $boot_mnt " /proc/mounts && return 0
  dev=$(findfs LABEL=BOOT 2>/dev/null) || { say "no boot partition (label BOOT)"; return 1; }
  mkdir -p "$boot_mnt"
  mount -t vfat -o rw,noatime,umask=022 "$dev" "$boot_mnt"
}

# set_slot SLOT: the firmware loads SLOT from the next boot on.
set_slot() {
  mount_boot || return 1
  printf 'os_prefix=%s/\n' "$1" >"$boot_mnt/slot.txt.new" &&
    sync && mv "$boot_mnt/slot.txt.new" "$boot_mnt/slot.txt" && sync
}

# field NAME: a "NAME VALUE" line of the trial file.
field() {
  sed -n "s/^$1 //p" "$trial" 2>/dev/null
}

record() { # record OUTCOME WHY: one line of the update history
  mkdir -p "$state"
  printf '%s %s %s -> %s (%s) %s\n' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "$1" \
    "$(field from)" "$(field to)" "$(field version)" "$2" >>"$history"
}

# roll_back WHY: back to the slot the trial started from, and reboot into it. During rcS
# (init runs nothing else yet) the reboot is immediate, after /data is unmounted; later it is
# init's orderly one (rcK lets letterbox drain).
roll_back() {
  say "the update to slot $(field to) ($(field version)) failed: $1; going back to slot $(field from)"
  # The trial ends only when slot.txt names the old slot again; otherwise the next boot of
  # the new slot is a second attempt, and goes back from rcS.
  if set_slot "$(field from)"; then
    record "rolled-back" "$1"
    rm -f "$trial"
  else
    say "WARNING: could not write slot.txt; the next boot tries again"
  fi
  umount "$boot_mnt" 2>/dev/null
  sync
  if [ "$phase" = boot ]; then
    umount /data 2>/dev/null || mount -o remount,ro /data
    reboot -f
  else
    reboot
  fi
  exit 0
}

# letterbox_answers: the greeting of each mail protocol on localhost, within 5 s each.
letterbox_answers() {
  for probe in "25 220 " "143 \\* OK" "110 +OK"; do
    port=${probe%% *}
    greeting=${probe#* }
    printf 'QUIT\r\n' | timeout 5 nc 127.0.0.1 "$port" 2>/dev/null | head -n 1 |
      grep -q "^$greeting" || return 1
  done
}

phase=$1
case "$1" in
  active) active ;;
  mount) mount_boot ;;
  switch) other "$2" >/dev/null && set_slot "$2" ;;
  boot)
    [ -e "$trial" ] || exit 0
    here=$(active)
    if [ "$here" = "$(field to)" ]; then
      if grep -q '^attempt ' "$trial"; then
        roll_back "its first boot never confirmed it"
      fi
      echo "attempt $(date +%s)" >>"$trial"
      say "trying slot $here ($(field version)); it is kept once letterbox answers and the store verifies"
    else
      # Booted from the old slot during a trial: somebody (or the firmware) went back. Stay
      # here: slot.txt names this slot again.
      if set_slot "$here"; then
        record "abandoned" "the old slot $here was booted during the trial"
        rm -f "$trial"
      fi
    fi
    ;;
  check)
    [ -e "$trial" ] && [ "$(active)" = "$(field to)" ] || exit 0
    # A hang from here on resets the board when it has a watchdog (Pi: bcm2835_wdt); the
    # next boot then finds the unconfirmed attempt and goes back.
    if [ -e /dev/watchdog ]; then
      # 15 s: the most bcm2835_wdt allows.
      watchdog -T 15 -t 5 /dev/watchdog
    fi
    began=$(date +%s)
    while :; do
      if letterbox_answers; then
        left=$((CHECK_SECONDS - ($(date +%s) - began)))
        [ "$left" -gt 30 ] || left=30
        if ! verdict=$(timeout "$left" letterbox verify 2>&1); then
          roll_back "letterbox verify: $(echo "$verdict" | tail -n 1)"
        fi
        say "slot $(field to) ($(field version)) is confirmed: letterbox answers and the store verifies"
        record "confirmed" "after $(($(date +%s) - began)) s"
        rm -f "$trial"
        sync
        exit 0
      fi
      exits=$(logread 2>/dev/null | grep -c 'letterbox exited with status')
      [ "$exits" -ge 3 ] && roll_back "letterbox exited $exits times at start"
      [ $(($(date +%s) - began)) -ge "$CHECK_SECONDS" ] &&
        roll_back "letterbox did not answer within $CHECK_SECONDS s"
      sleep 1
    done
    ;;
  *)
    echo "usage: $0 boot|check|active|mount|switch SLOT" >&2
    exit 2
    ;;
esac
