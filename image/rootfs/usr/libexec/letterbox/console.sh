#!/bin/sh
# shellcheck disable=SC3045 # busybox ash has read -t
# One console (inittab: console.sh TTY): the first-boot setup until /data/letterbox.toml
# exists, a login prompt after that. Every console offers the setup, so a Pi with only a
# screen and keyboard can be set up too; the first one where Enter is pressed runs it and
# the others wait for it to finish.
tty=${1:?usage: console.sh TTY}
dev=/dev/$tty
config=/data/letterbox.toml
lock=/run/setup.lock

case "$tty" in
  tty[0-9]*) speed=38400 term=linux ;;
  *)         speed=115200 term=vt100 ;;
esac

# A UART this board lacks (ttyS1 on qemu virt, ttyAMA0 when a Pi gives it to Bluetooth)
# cannot be configured; park instead of failing, which init would restart every second.
if ! stty -F "$dev" "$speed" >/dev/null 2>&1; then
  exec sleep 2147483647
fi

if [ ! -e "$config" ]; then
  # init made us a session leader: opening the tty makes it our controlling terminal.
  exec <>"$dev" >&0 2>&0
  stty sane "$speed" 2>/dev/null
  while [ ! -e "$config" ]; do
    printf '\nletterbox first-boot setup. Press Enter to begin: '
    # Wait for Enter, looking every 2 s whether another console has finished the setup.
    # (busybox read says 1 both on a timeout and at the end of input: the short sleep keeps
    # a hung-up line from spinning.)
    while :; do
      read -r -t 2 _ && break
      [ -e "$config" ] && break 2
      sleep 0.2
    done
    [ -e "$config" ] && break
    if mkdir "$lock" 2>/dev/null; then
      /usr/libexec/letterbox/setup.sh
      rmdir "$lock"
    else
      echo "The setup is running on another console; waiting for it."
      while [ -d "$lock" ] && [ ! -e "$config" ]; do sleep 1; done
    fi
  done
  echo
fi

exec getty -L "$speed" "$tty" "$term"
