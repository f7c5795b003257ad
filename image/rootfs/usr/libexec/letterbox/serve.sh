#!/bin/sh
# The mail server, under init (respawn). letterbox starts as root, binds its ports (25, 587,
# 465, 110, 995, 143, 993, 4190, 80, 443), hands /data/letterbox to the user letterbox and drops to it (run_as).
# Its log goes to syslog: `logread | grep letterbox`.
config=/data/letterbox.toml

# First boot: wait for the setup on the console to write the configuration.
while [ ! -e "$config" ]; do sleep 0.5; done

# The first start of a boot waits (at most 10 s) for clock.sh's first time sync: ACME,
# certificate checks and DKIM need the right time. A running real-time clock has it already.
n=0
while [ ! -e /run/letterbox/clock-tried ] && [ ! -e /run/letterbox/clock-from-rtc ] &&
  [ $n -lt 20 ]; do
  sleep 0.5
  n=$((n + 1))
done

# busybox init restarts a service the moment it exits; a config error would spin. Every
# start after the first of this boot waits 2 s.
if [ -e /run/letterbox.started ]; then sleep 2; fi
touch /run/letterbox.started

{
  letterbox serve --config "$config" 2>&1
  echo "letterbox exited with status $?"
} | logger -t letterbox
