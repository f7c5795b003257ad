#!/bin/sh
# /data, the ext4 partition labelled "data" (rcS runs this once, before anything uses it):
#
#   1. find it on a disk that also has the BOOT partition (an SD card first, when several
#      have both; SD cards and USB disks are probed asynchronously: up to 10 s): findfs
#      first, then, when its answer is not that, every partition's label;
#   2. grow it to the end of the card when there is room after it: the image carries a small
#      partition, the card is 16 to 64 GB. Only the partition table entry and then the file
#      system grow; nothing is moved, so an interrupted grow is finished at the next boot;
#   3. check it (e2fsck -p, every boot; it repairs what is safe to repair by itself);
#   4. mount it on /data;
#   5. grow the file system to the partition (resize2fs, Debian's e2fsprogs).
#
# Why the partition table is written here and not by sfdisk: busybox has no sfdisk, and
# growing the last MBR partition is one 4-byte field (util-linux's libfdisk is 0.5 MB more in
# the image). The table is MBR as scripts/build-image writes it; anything else is left alone.
say() { echo "letterbox: $*"; }

# disk_of PARTITION: sets $disk_name to the disk it is on (mmcblk0 for /dev/mmcblk0p2).
# (Shell expansions into a variable, not dirname, basename or a $(...) of its own: every
# process costs at boot, most under qemu.)
disk_of() {
  path=$(readlink -f "/sys/class/block/${1#/dev/}")
  path=${path%/*}
  disk_name=${path##*/}
}

# label_of PARTITION: the label of an ext2/3/4 (s_volume_name) or FAT32 (BS_VolLab) file
# system on it. (Debian's busybox has no blkid applet, and util-linux's is 0.3 MB more.)
label_of() {
  if [ "$(od -An -tx1 -j 1080 -N2 "$1" 2>/dev/null | tr -d ' ')" = 53ef ]; then
    dd if="$1" bs=1 skip=1144 count=16 2>/dev/null | tr -d '\000'
  elif [ "$(dd if="$1" bs=1 skip=82 count=5 2>/dev/null)" = FAT32 ]; then
    dd if="$1" bs=1 skip=71 count=11 2>/dev/null | sed 's/ *$//'
  fi
}

# list_labels: "DEVICE LABEL" for every labelled partition the kernel knows.
list_labels() {
  for sys in /sys/class/block/*; do
    [ -e "$sys/partition" ] || continue
    name=$(label_of "/dev/${sys##*/}")
    [ -n "$name" ] && echo "/dev/${sys##*/} $name"
  done
}

# labelled LABEL: the partitions of list_labels with that label.
labelled() {
  awk -v want="$1" '$2 == want { print $1 }' /run/labels.txt
}

# note_boot_partition: $boot, for slot.sh.
note_boot_partition() {
  mkdir -p /run/letterbox
  echo "$boot" >/run/letterbox/boot-partition
}

# find_data: $dev, the partition labelled "data" on the same disk as a partition labelled
# BOOT (an SD card first), and that BOOT partition in /run/letterbox/boot-partition for
# slot.sh. A USB stick that happens to have a "data" partition is never taken for /data.
find_data() {
  list_labels >/run/labels.txt
  for boot in $(labelled BOOT | grep mmcblk) $(labelled BOOT | grep -v mmcblk); do
    disk_of "$boot"
    disk=$disk_name
    for dev in $(labelled data); do
      disk_of "$dev"
      if [ "$disk_name" = "$disk" ]; then
        note_boot_partition
        return 0
      fi
    done
  done
  dev=
  return 1
}

# find_data_fast: the usual case, in two probes: busybox findfs's first BOOT and first data
# file system are partitions of one disk, and that disk is an SD card or the only disk
# (findfs goes through /dev in its own order, which decides nothing then).
find_data_fast() {
  boot=$(findfs LABEL=BOOT 2>/dev/null) && dev=$(findfs LABEL=data 2>/dev/null) || return 1
  [ -e "/sys/class/block/${boot#/dev/}/partition" ] &&
    [ -e "/sys/class/block/${dev#/dev/}/partition" ] || return 1
  disk_of "$boot"
  boot_disk=$disk_name
  disk_of "$dev"
  [ "$disk_name" = "$boot_disk" ] || return 1
  case "$boot" in
    /dev/mmcblk*) ;;
    *)
      disks=0
      for disk in /sys/block/*; do
        case "${disk##*/}" in loop* | ram* | zram*) ;; *) disks=$((disks + 1)) ;; esac
      done
      [ "$disks" -eq 1 ] || return 1
      ;;
  esac
  note_boot_partition
}

tries=0
while [ $tries -lt 100 ]; do
  find_data_fast && break
  find_data && break
  tries=$((tries + 1))
  sleep 0.1
done
if [ -z "$dev" ]; then
  say "WARNING: no data partition (ext4, label data) next to the boot partition; /data is in RAM and is lost at poweroff"
  mount -t tmpfs -o mode=755 tmpfs /data
  exit 0
fi

# le32 FILE OFFSET: the little-endian 32-bit number at OFFSET.
le32() {
  od -An -tu4 -j "$2" -N4 "$1" | tr -d ' '
}
# put_le32 FILE OFFSET VALUE
put_le32() {
  v=$3
  printf "$(printf '\\%03o\\%03o\\%03o\\%03o' $((v & 255)) $((v >> 8 & 255)) \
    $((v >> 16 & 255)) $((v >> 24 & 255)))" |
    dd of="$1" bs=1 seek="$2" count=4 conv=notrunc 2>/dev/null
}

# grow_partition: extends the entry of $dev in the MBR to the end of the disk (aligned down
# to 4 MiB), when the disk has at least 16 MiB more; prints nothing when there is no room.
# (sysfs is read with the shell's own read, and the room checked before the MBR: an
# ordinary boot, with nothing to grow, runs one process here.)
grow_partition() {
  part=${dev#/dev/}
  sys=$(readlink -f "/sys/class/block/$part")
  disk=${sys%/*}
  disk=${disk##*/}
  { read -r number <"$sys/partition"; } 2>/dev/null || return 0
  [ -n "$number" ] && [ "$number" -le 4 ] || return 0 # a logical or GPT partition: not ours
  read -r start <"$sys/start"
  read -r size <"$sys/size"
  read -r total <"/sys/class/block/$disk/size"
  # The MBR limit is 2^32 sectors (2 TiB); 8192 sectors are 4 MiB.
  [ "$total" -gt 4294967295 ] && total=4294967295
  want=$(((total / 8192 * 8192) - start))
  [ "$want" -ge $((size + 32768)) ] || return 0
  mbr=/dev/$disk
  entry=$((446 + 16 * (number - 1)))
  # The entry must be the partition the kernel sees, and the MBR must be an MBR.
  [ "$(od -An -tx1 -j 510 -N2 "$mbr" | tr -d ' ')" = 55aa ] || return 0
  [ "$(le32 "$mbr" $((entry + 8)))" = "$start" ] || return 0
  [ "$(le32 "$mbr" $((entry + 12)))" = "$size" ] || return 0
  # No later partition may start before the new end.
  n=1
  while [ $n -le 4 ]; do
    other=$(le32 "$mbr" $((446 + 16 * (n - 1) + 8)))
    if [ "$n" != "$number" ] && [ "$other" -gt "$start" ] && [ "$other" -lt $((start + want)) ]; then
      return 0
    fi
    n=$((n + 1))
  done
  put_le32 "$mbr" $((entry + 12)) "$want"
  sync
  blockdev --rereadpt "$mbr"
  # The kernel re-creates the partition device; wait for its new size.
  tries=0
  while [ "$(cat "/sys/class/block/$part/size" 2>/dev/null)" != "$want" ] && [ $tries -lt 50 ]; do
    sleep 0.1
    tries=$((tries + 1))
  done
  say "data partition $dev grown from $((size / 2048)) MiB to $((want / 2048)) MiB"
}
grow_partition

# e2fsck -p: 0 clean, 1 repaired, 2 repaired and a reboot is due (not for an unmounted file
# system), 4 and more: it needs a person (e2fsck -f -y by hand). It is mounted even then, so
# mail keeps flowing; the warning stays in the log (logread).
e2fsck -p "$dev" >/run/e2fsck.log 2>&1
status=$?
if [ $status -ge 4 ]; then
  say "WARNING: e2fsck found errors on $dev it did not repair (status $status): run e2fsck -f $dev"
  logger -t e2fsck -p daemon.err "errors left on $dev (status $status)"
elif [ $status -ne 0 ]; then
  say "e2fsck repaired $dev (status $status)"
fi

if ! mount -t ext4 -o noatime "$dev" /data; then
  say "WARNING: $dev does not mount; /data is in RAM and is lost at poweroff"
  mount -t tmpfs -o mode=755 tmpfs /data
  exit 0
fi

# The file system follows the partition: grown while mounted (ext4's online resize, which
# needs no forced check first) when the partition is larger by more than 4 MiB. The sizes
# come from the superblock (s_blocks_count_lo at byte 1028, s_log_block_size at 1048) and
# sysfs, so an ordinary boot runs no resize2fs.
# Both fields in one od: the sixth 32-bit word from byte 1028 is byte 1048.
# shellcheck disable=SC2046 # od's numbers are the words wanted
set -- $(od -An -tu4 -j 1028 -N24 "$dev")
fs_blocks=${1:-0}
block_size=$((1024 << ${6:-0}))
read -r part_sectors <"/sys/class/block/${dev#/dev/}/size"
part_bytes=$((part_sectors * 512))
fs_mib=$((fs_blocks * block_size >> 20))
if [ $((fs_blocks * block_size + 4194304)) -lt "$part_bytes" ]; then
  if resize2fs "$dev" >/run/resize2fs.log 2>&1; then
    say "data file system grown from $fs_mib MiB to $((part_bytes >> 20)) MiB"
    # What the kernel now says (df), not the partition: a resize may stop short of it.
    fs_mib=$(df -m /data | awk 'NR == 2 { print $2 }')
  else
    say "WARNING: resize2fs $dev failed: $(tail -n 1 /run/resize2fs.log)"
  fi
fi
say "data partition $dev mounted on /data (file system of $fs_mib MiB)"
