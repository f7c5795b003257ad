#!/bin/sh
# The mail server, under init (respawn). letterbox starts as root, binds ports 25, 587, 465,
# 110 and 995, hands /data/letterbox to the user letterbox and drops to it (run_as).
# Its log goes to syslog: `logread | grep letterbox`.
config=/data/letterbox.toml

# First boot: wait for the setup on the console to write the configuration.
while [ ! -e "$config" ]; do sleep 0.5; done

# busybox init restarts a service the moment it exits; a config error would spin. Every
# start after the first of this boot waits 2 s.
if [ -e /run/letterbox.started ]; then sleep 2; fi
touch /run/letterbox.started

{
  letterbox serve --config "$config" 2>&1
  echo "letterbox exited with status $?"
} | logger -t letterbox
