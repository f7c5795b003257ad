#!/bin/sh
# The two system slots and the trial of a new one (updates in place with automatic rollback).
#
# The boot partition (FAT, label BOOT) holds two slots, a/ and b/, each a whole system:
# vmlinuz, initramfs, cmdline.txt (with letterbox.slot=a or b), the device trees and
# version. /slot.txt says which one the firmware loads ("os_prefix=a/"; config.txt includes
# it); /data is shared. letterbox-update writes the other slot, records a trial in
# /trial.txt on the boot partition (not on /data: a new system whose /data does not mount
# must still find it), points slot.txt at the new slot and reboots. Then:
#
#   slot.sh boot    (rcS, after /data is mounted) if a trial is under way and this boot is
#                   its second attempt (the first one did not confirm: it hung, crashed or
#                   lost power, and the watchdog or a person restarted it), go back to the
#                   old slot and reboot; on the old slot, end the trial as failed.
#                   Then, on any slot: put back the store a rolled-back or abandoned
#                   trial migrated (restore_store). The trial that goes on is copied to
#                   /run/letterbox/trial.txt for slot.sh check; the boot partition stays
#                   mounted for rcS's next step (wifi.sh import), and rcS unmounts it
#                   (unless a store is restored: that runs with it unmounted).
#   slot.sh check   (inittab ::once) in a trial (the copy of slot.sh boot says so), wait
#                   until /data is the ext4 partition,
#                   letterbox answers on every configured listener (`letterbox probe`) and
#                   `letterbox verify` accepts the store: then the new slot is confirmed;
#                   otherwise (at most CHECK_SECONDS, or once letterbox has exited three
#                   times) go back to the old slot and reboot.
#   slot.sh active  the slot this system was booted from
#   slot.sh mount   the boot partition, read-write on /run/boot; slot.sh unmount
#   slot.sh switch SLOT   the firmware loads SLOT from the next boot on
#
# Why not the Pi's tryboot: the firmware's one-time boot flag is set through a firmware
# call that only Raspberry Pi's own kernel makes on reboot ("reboot '0 tryboot'"); Debian's
# kernel, which this image uses, has no way to set it. The trial is therefore kept by the
# system itself, and a slot whose kernel does not reach user space at all is not caught
# (README, "Updates").
state=/data/update
history=$state/history
restore=$state/restore
boot_mnt=/run/boot
trial=$boot_mnt/trial.txt
boot_trial=/run/letterbox/trial.txt # the trial as slot.sh boot left it
CHECK_SECONDS=${CHECK_SECONDS:-180}

say() { echo "letterbox: $*"; logger -t update "$*"; }

active() {
  sed -n 's/.*letterbox\.slot=\([ab]\).*/\1/p' /proc/cmdline
}

other() {
  case "$1" in a) echo b ;; b) echo a ;; *) return 1 ;; esac
}

# The boot partition, mounted read-write on /run/boot (rcS loaded vfat): the one
# data.sh found next to /data, else the first one labelled BOOT.
mount_boot() {
  grep -q " $boot_mnt " /proc/mounts && return 0
  dev=
  { read -r dev </run/letterbox/boot-partition; } 2>/dev/null
  [ -b "$dev" ] || dev=$(findfs LABEL=BOOT 2>/dev/null) ||
    { say "no boot partition (label BOOT)"; return 1; }
  mkdir -p "$boot_mnt"
  mount -t vfat -o rw,noatime,umask=022 "$dev" "$boot_mnt"
}

# (Never fails: a busy mount stays, and the next unmount takes it.)
unmount_boot() {
  sync
  umount "$boot_mnt" 2>/dev/null
  return 0
}

# set_slot SLOT: the firmware loads SLOT from the next boot on.
set_slot() {
  mount_boot || return 1
  printf 'os_prefix=%s/\n' "$1" >"$boot_mnt/slot.txt.new" &&
    sync && mv "$boot_mnt/slot.txt.new" "$boot_mnt/slot.txt" && sync
}

# The trial's fields ("NAME VALUE" lines).
read_trial() { # [FILE]: the trial on the boot partition, or that copy
  from=$(sed -n 's/^from //p' "${1:-$trial}")
  to=$(sed -n 's/^to //p' "${1:-$trial}")
  version=$(sed -n 's/^version //p' "${1:-$trial}")
  started=$(sed -n 's/^started //p' "${1:-$trial}")
}

record() { # record OUTCOME WHY: one line of the update history
  mkdir -p "$state"
  printf '%s %s %s -> %s (%s) %s\n' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "$1" \
    "$from" "$to" "$version" "$2" >>"$history"
}

# The data dir letterbox serves (setup.sh writes it into letterbox.toml).
data_dir() {
  dir=$(sed -n 's/^data_dir *= *"\([^"]*\)".*/\1/p' /data/letterbox.toml 2>/dev/null)
  echo "${dir:-/data/letterbox}"
}

# note_migration: when the trial's letterbox migrated the store to a newer schema (it keeps
# the store as it was in backups/before-schema-*.mdb first), the old letterbox cannot open
# it: the old slot's boot puts that copy back (restore_store).
note_migration() {
  [ -n "$started" ] || return 0
  for snapshot in "$(data_dir)"/backups/before-schema-*.mdb; do
    [ -f "$snapshot" ] && [ "$(stat -c %Y "$snapshot")" -ge "$started" ] || continue
    echo "$snapshot" >"$restore.new" && mv "$restore.new" "$restore"
    say "the new system migrated the store; the old one gets $snapshot back"
    return 0
  done
}

# restore_store: puts back the store of before a rolled-back trial's migration, before
# letterbox starts. The migrated store is kept as backups/after-trial-TIME.mdb: the mail
# that came in during the trial is there, for the newer version (or `letterbox export` of
# it) to read. Every step can be repeated, so a power cut half-way is finished next boot.
restore_store() {
  [ -f "$restore" ] || return 0
  snapshot=$(cat "$restore")
  backups=$(data_dir)/backups
  dir=$(data_dir)/mail # the LMDB environment
  if [ ! -f "$snapshot" ]; then
    say "WARNING: $snapshot, the store of before the update, is gone; the store stays as it is"
    rm -f "$restore"
    return 0
  fi
  if [ ! -f "$dir/data.mdb.restored" ]; then
    cp -p "$snapshot" "$dir/data.mdb.partial" && sync &&
      mv "$dir/data.mdb.partial" "$dir/data.mdb.restored" ||
      { say "WARNING: no room to put back $snapshot"; rm -f "$dir/data.mdb.partial"; return 0; }
  fi
  if [ -f "$dir/data.mdb" ]; then
    # A unique name: the clock may not be right yet, and nothing kept is overwritten.
    n=1
    kept=$backups/after-trial-$(date -u '+%Y%m%dT%H%M%SZ').mdb
    while [ -e "$kept" ]; do
      n=$((n + 1))
      kept=$backups/after-trial-$(date -u '+%Y%m%dT%H%M%SZ')-$n.mdb
    done
    mv "$dir/data.mdb" "$kept"
    say "the store of the failed update is kept in $kept (mail that came in during the trial is there)"
  fi
  mv "$dir/data.mdb.restored" "$dir/data.mdb" && rm -f "$dir/lock.mdb" && sync
  printf '%s restored-store %s (the migrated store: %s)\n' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" \
    "$snapshot" "${kept:-kept earlier}" >>"$history"
  rm -f "$restore"
  sync
}

# restore_store_unmounted: restore_store (a copy of the whole store) with the boot partition
# unmounted, so that a power cut during it leaves the FAT clean; wifi.sh import mounts it
# again then. (Rare: only after a rolled-back migration.)
restore_store_unmounted() {
  [ -f "$restore" ] || return 0
  unmount_boot
  restore_store
}

# roll_back WHY: back to the slot the trial started from, and reboot into it. During rcS
# (init runs nothing else yet) the reboot is immediate, after /data is unmounted; later it is
# init's orderly one (rcK lets letterbox drain).
roll_back() {
  say "the update to slot $to ($version) failed: $1; going back to slot $from"
  note_migration
  # The trial ends only when slot.txt names the old slot again; otherwise the next boot of
  # the new slot is a second attempt, and goes back from rcS.
  if set_slot "$from"; then
    record "rolled-back" "$1"
    rm -f "$trial" "$boot_trial"
  else
    say "WARNING: could not write slot.txt; the next boot tries again"
  fi
  unmount_boot
  sync
  if [ "$phase" = boot ]; then
    umount /data 2>/dev/null || mount -o remount,ro /data
    reboot -f
  else
    reboot
  fi
  exit 0
}

phase=$1
case "$1" in
  active) active ;;
  mount) mount_boot ;;
  unmount) unmount_boot ;;
  switch) other "$2" >/dev/null && set_slot "$2" ;;
  boot)
    mount_boot 2>/dev/null || { restore_store; exit 0; }
    # A trial begun by a letterbox-update that kept it on /data (before 2026-12-03).
    if [ -f "$state/trial" ] && [ ! -e "$trial" ]; then
      cp "$state/trial" "$trial" && sync && rm -f "$state/trial"
    fi
    if [ ! -e "$trial" ]; then
      restore_store_unmounted
      exit 0
    fi
    read_trial
    here=$(active)
    if [ "$here" = "$to" ]; then
      if grep -q '^attempt ' "$trial"; then
        roll_back "its first boot never confirmed it"
      fi
      echo "attempt $(date +%s)" >>"$trial"
      say "trying slot $here ($version); it is kept once letterbox answers and the store verifies"
    else
      # Booted from the old slot during a trial: somebody (or the firmware) went back. Stay
      # here: slot.txt names this slot again.
      if set_slot "$here"; then
        note_migration
        record "abandoned" "the old slot $here was booted during the trial"
        rm -f "$trial"
      fi
    fi
    if [ -e "$trial" ]; then
      mkdir -p /run/letterbox && cp "$trial" "$boot_trial"
    fi
    restore_store_unmounted
    ;;
  check)
    [ -e "$boot_trial" ] || exit 0
    read_trial "$boot_trial"
    [ "$(active)" = "$to" ] || exit 0
    # A hang from here on resets the board when it has a watchdog (Pi: bcm2835_wdt); the
    # next boot then finds the unconfirmed attempt and goes back.
    if [ -e /dev/watchdog ]; then
      # 15 s: the most bcm2835_wdt allows.
      watchdog -T 15 -t 5 /dev/watchdog
    fi
    # data.sh falls back to RAM when /data does not mount: letterbox would answer, on an
    # empty store.
    grep -q '^[^ ]* /data ext4 ' /proc/mounts || roll_back "the data partition did not mount"
    began=$(date +%s)
    while :; do
      if timeout 20 letterbox probe --timeout 5 >/run/letterbox/probe.log 2>&1; then
        left=$((CHECK_SECONDS - ($(date +%s) - began)))
        [ "$left" -gt 30 ] || left=30
        if ! verdict=$(timeout "$left" letterbox verify 2>&1); then
          roll_back "letterbox verify: $(echo "$verdict" | tail -n 1)"
        fi
        mount_boot && rm -f "$trial" && unmount_boot ||
          roll_back "the trial could not be ended on the boot partition"
        rm -f "$boot_trial"
        say "slot $to ($version) is confirmed: letterbox answers and the store verifies"
        record "confirmed" "after $(($(date +%s) - began)) s"
        sync
        exit 0
      fi
      exits=$(logread 2>/dev/null | grep -c 'letterbox exited with status')
      [ "$exits" -ge 3 ] && roll_back "letterbox exited $exits times at start"
      [ $(($(date +%s) - began)) -ge "$CHECK_SECONDS" ] &&
        roll_back "letterbox did not answer within $CHECK_SECONDS s: $(grep FAILED /run/letterbox/probe.log | head -n 1)"
      sleep 1
    done
    ;;
  *)
    echo "usage: $0 boot|check|active|mount|unmount|switch SLOT" >&2
    exit 2
    ;;
esac
