#!/bin/sh
# Wi-Fi (Pi 3, 3+, 4, Zero 2 W: brcmfmac and its firmware, wpa_supplicant from Debian's
# installer build: no D-Bus, a fraction of the size).
#
#   wifi.sh import  (rcS, /data mounted) wifi.txt on the boot partition, which the user may
#                   write from any computer (ssid =, password =, country =, hidden =),
#                   becomes /data/etc/wpa_supplicant.conf (0600, root; the WPA key derived
#                   from the passphrase, not the passphrase), and wifi.txt is wiped and
#                   removed (`letterbox wifi import`). The setup writes the same file
#                   (`letterbox wifi set`).
#   wifi.sh start   (rcS, in the background) once the radio's interface appears (brcmfmac
#                   loads its firmware first: up to 10 s), wpa_supplicant on it; DHCP
#                   comes from network.sh like on every interface.
#
# The radio itself is untested: qemu has none (README, "Wi-Fi").
conf=/data/etc/wpa_supplicant.conf
say() { echo "letterbox: $*"; logger -t wifi "$*"; }

case "$1" in
  import)
    /usr/libexec/letterbox/slot.sh mount 2>/dev/null || exit 0
    if [ -f /run/boot/wifi.txt ]; then
      if out=$(letterbox wifi import /run/boot/wifi.txt --conf "$conf" 2>&1); then
        say "$out"
      else
        say "WARNING: wifi.txt on the boot partition was not taken: $out"
      fi
    fi
    sync
    umount /run/boot 2>/dev/null
    ;;
  start)
    [ -f "$conf" ] || exit 0
    command -v wpa_supplicant >/dev/null || { say "no wpa_supplicant in this system"; exit 0; }
    n=0
    while [ $n -lt 100 ]; do
      for path in /sys/class/net/*; do
        [ -d "$path/wireless" ] || [ -d "$path/phy80211" ] || continue
        ifc=${path##*/}
        wpa_supplicant -B -s -i "$ifc" -c "$conf" -P "/run/wpa_supplicant.$ifc.pid" ||
          say "WARNING: wpa_supplicant did not start on $ifc"
        say "wpa_supplicant started on $ifc"
        exit 0
      done
      sleep 0.1
      n=$((n + 1))
    done
    say "Wi-Fi is configured ($conf), but this board has no Wi-Fi interface"
    ;;
  *)
    echo "usage: $0 import|start" >&2
    exit 2
    ;;
esac
