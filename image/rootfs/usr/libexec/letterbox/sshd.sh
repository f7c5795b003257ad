#!/bin/sh
# SSH console (dropbear, built from Debian's source as a static binary: scripts/lib/userland.sh),
# under init (respawn). Host keys are made on the first start and kept in /data/ssh; root
# logs in with a key from /data/ssh/authorized_keys (/root/.ssh points there) or with the
# root password from the first-boot setup. Before the setup nobody can log in.
keys=/data/ssh
for type in ed25519 ecdsa; do
  key=$keys/dropbear_${type}_host_key
  if [ ! -s "$key" ]; then
    dropbearkey -t "$type" -f "$key.new" >/dev/null 2>&1 && mv "$key.new" "$key"
  fi
done

if [ -e /run/dropbear.started ]; then sleep 2; fi
touch /run/dropbear.started

# -F foreground (init supervises), logs to syslog; -p port; -r host keys.
exec dropbear -F -p 22 -P /run/dropbear.pid \
  -r "$keys/dropbear_ed25519_host_key" -r "$keys/dropbear_ecdsa_host_key"
