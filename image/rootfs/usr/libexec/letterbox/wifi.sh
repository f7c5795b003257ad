#!/bin/sh
# Wi-Fi (Pi 3, 3+, 4, Zero 2 W: brcmfmac and its firmware, and a wpa_supplicant built
# from Debian's source for WPA2-PSK only: scripts/build-image, image/wpa_supplicant.config).
#
#   wifi.sh import  (rcS, /data mounted, the boot partition on /run/boot: slot.sh boot
#                   mostly leaves it there, and rcS unmounts it) wifi.txt there, which the
#                   user may
#                   write from any computer (ssid =, password =, country =, hidden =),
#                   becomes /data/etc/wpa_supplicant.conf (0600, root; the WPA key derived
#                   from the passphrase, not the passphrase), and wifi.txt is wiped and
#                   removed (`letterbox wifi import`). The setup writes the same file
#                   (`letterbox wifi set`).
#   wifi.sh start   (rcS, in the background) when Wi-Fi is configured: unpacks
#                   /usr/lib/letterbox/wifi.tar.xz, loads brcmfmac and, once the radio's
#                   interface appears (brcmfmac loads its firmware first: up to 10 s),
#                   starts wpa_supplicant on it; DHCP comes from network.sh like on every
#                   interface.
#
# The Pi's radio is untested; scripts/test-image lets this start join a WPA2 network on
# simulated radios (mac80211_hwsim) under qemu (README, "Wi-Fi").
conf=/data/etc/wpa_supplicant.conf
say() { echo "letterbox: $*"; logger -t wifi "$*"; }

case "$1" in
  import)
    # Only onto the real /data: into the RAM fallback, wifi.txt would be wiped for nothing.
    grep -q '^[^ ]* /data ext4 ' /proc/mounts || exit 0
    /usr/libexec/letterbox/slot.sh mount 2>/dev/null || exit 0
    if [ -f /run/boot/wifi.txt ]; then
      if out=$(letterbox wifi import /run/boot/wifi.txt --conf "$conf" 2>&1); then
        say "$out"
      else
        say "WARNING: wifi.txt on the boot partition was not taken: $out"
      fi
    fi
    # Firmware Debian lacks (the Zero 2 W's brcmfmac43436-sdio.*): a firmware/ folder on
    # the boot partition is kept in /data/firmware and used from then on.
    if [ -d /run/boot/firmware ]; then
      mkdir -p /data/firmware && cp -R /run/boot/firmware/. /data/firmware/ &&
        say "firmware from the boot partition kept in /data/firmware"
    fi
    sync
    ;;
  start)
    [ -f "$conf" ] || exit 0
    # The unpacking, the module loads and the wait at the lowest priority (busybox has
    # renice, not nice): letterbox starts at the same time, and a Pi Zero 2 W or qemu has
    # little CPU to spare. wpa_supplicant itself gets the normal priority back.
    renice -n 19 $$ >/dev/null 2>&1
    # wpa_supplicant, its libraries, brcmfmac and the chips' firmware: one archive, unpacked
    # into the (RAM) root only now, so a box on a cable does not hold its 4.5 MB.
    bundle=/usr/lib/letterbox/wifi.tar.xz
    [ -f "$bundle" ] || { say "Wi-Fi is configured, but this system was built without it"; exit 0; }
    if [ ! -x /sbin/wpa_supplicant ]; then
      tar -x -J -f "$bundle" -C / || { say "WARNING: the Wi-Fi files did not unpack"; exit 0; }
    fi
    version=$(wpa_supplicant -v 2>&1 | head -n 1)
    case "$version" in
      wpa_supplicant\ v*) say "$version is ready" ;;
      *) say "WARNING: wpa_supplicant does not run: $version"; exit 0 ;;
    esac
    [ -d /data/firmware ] && cp -R /data/firmware/. /lib/firmware/
    modprobe -q brcmfmac || say "WARNING: brcmfmac did not load"
    # brcmfmac loads the chip's firmware before the interface appears: up to 10 s.
    n=0
    while [ $n -lt 20 ]; do
      for path in /sys/class/net/*; do
        [ -d "$path/wireless" ] || [ -d "$path/phy80211" ] || continue
        ifc=${path##*/}
        if wpa_supplicant -B -s -i "$ifc" -c "$conf" -P "/run/wpa_supplicant.$ifc.pid"; then
          renice 0 -p "$(cat "/run/wpa_supplicant.$ifc.pid")" >/dev/null 2>&1
          say "wpa_supplicant started on $ifc"
        else
          say "WARNING: wpa_supplicant did not start on $ifc"
        fi
        exit 0
      done
      sleep 0.5
      n=$((n + 1))
    done
    say "Wi-Fi is configured ($conf), but this board has no Wi-Fi interface"
    ;;
  *)
    echo "usage: $0 import|start" >&2
    exit 2
    ;;
esac
