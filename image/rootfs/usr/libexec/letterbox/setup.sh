#!/bin/sh
# shellcheck disable=SC2154 # ask and ask_secret assign through eval
# First-boot setup, run by console.sh on the console where Enter was pressed. It asks for the
# mail domain, the host name, the first user and the root password (and an optional SSH key),
# and writes /data/letterbox.toml last: that file appearing is what lets init's serve.sh
# start letterbox, and what turns the consoles into login prompts.
#
# Every prompt is a plain line ending in ": " and takes one answer per line, so a program
# can answer it over a serial line (image/boot-test.py does).
config=/data/letterbox.toml
new=$config.new
umask 077

# ask VAR PROMPT [DEFAULT]: one line into VAR, DEFAULT when the line is empty.
ask() {
  printf '%s: ' "$2"
  IFS= read -r answer || exit 1
  [ -n "$answer" ] || answer=${3:-}
  eval "$1=\$answer"
}

# ask_secret VAR PROMPT REPEAT_PROMPT: a non-empty line, typed twice, without echo.
ask_secret() {
  while :; do
    stty -echo 2>/dev/null # before the prompt: an answer typed ahead is not echoed either
    printf '%s: ' "$2"
    IFS= read -r first || exit 1
    printf '\n%s: ' "$3"
    IFS= read -r second || exit 1
    stty echo 2>/dev/null
    echo
    if [ -z "$first" ]; then
      echo "An empty password is not allowed."
    elif [ "$first" != "$second" ]; then
      echo "The two entries differ; once more."
    else
      eval "$1=\$first"
      return
    fi
  done
}

# A DNS name with at least two labels, lower case.
is_name() {
  echo "$1" | grep -Eq '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'
}

lower() { echo "$1" | tr '[:upper:]' '[:lower:]'; }

echo
echo "Setting up letterbox. An empty answer takes the [default]."

while :; do
  ask domain "Mail domain (the part after the @)"
  domain=$(lower "$domain")
  is_name "$domain" && break
  echo "Not a domain name: '$domain'."
done

while :; do
  ask host "Host name of this server [mail.$domain]" "mail.$domain"
  host=$(lower "$host")
  is_name "$host" && break
  echo "Not a host name: '$host'."
done

# The configuration, first under a temporary name: the user is added with it.
cat >"$new" <<EOF
# letterbox configuration, written by the first-boot setup on $(date -u '+%Y-%m-%d %H:%M UTC').
# Reference: the "Configuration" section of letterbox's README. Check a change with
# \`letterbox config check\`; \`kill -HUP \$(pidof letterbox)\` reloads it, and a listener
# change needs \`kill \$(pidof letterbox)\` (init restarts it).
hostname = "$host"
domains = ["$domain"]
data_dir = "/data/letterbox"
run_as = "letterbox"

[[listener]]
kind = "smtp"
address = "0.0.0.0"
port = 25

[[listener]]
kind = "submission"
address = "0.0.0.0"
port = 587

[[listener]]
kind = "submissions"
address = "0.0.0.0"
port = 465

[[listener]]
kind = "pop3"
address = "0.0.0.0"
port = 110

[[listener]]
kind = "pop3s"
address = "0.0.0.0"
port = 995

[[listener]]
kind = "imap"
address = "0.0.0.0"
port = 143

[[listener]]
kind = "imaps"
address = "0.0.0.0"
port = 993

[[listener]]
kind = "managesieve"
address = "0.0.0.0"
port = 4190

# ACME challenges and the MTA-STS policy; certificates come once an [acme] section is added.
[[listener]]
kind = "http"
address = "0.0.0.0"
port = 80

[[listener]]
kind = "https"
address = "0.0.0.0"
port = 443
EOF
# Readable by root and the letterbox group only: it may get smarthost credentials.
chgrp letterbox "$new" && chmod 640 "$new"
letterbox --config "$new" config check >/dev/null || exit 1

while :; do
  ask address "First user's address (also the login), e.g. you@$domain"
  address=$(lower "$address")
  ask_secret password "Password for $address" "Repeat the password"
  # A second run of the setup (after removing letterbox.toml) finds the account there.
  action=add
  # (grep without -q reads to the end: letterbox aborts on a closed pipe.)
  if letterbox --config "$new" user list 2>/dev/null | grep -xF "$address" >/dev/null; then
    action=passwd
  fi
  if printf '%s\n' "$password" |
    letterbox --config "$new" user "$action" "$address" --password-stdin; then
    break
  fi
  echo "Once more."
done
# RFC 5321 4.5.1: every mail domain needs a postmaster.
if [ "$address" != "postmaster@$domain" ]; then
  letterbox --config "$new" alias add "postmaster@$domain" "$address" >/dev/null 2>&1 &&
    echo "postmaster@$domain delivers to $address."
fi

ask_secret rootpw "Root password (console and SSH)" "Repeat the root password"
hash=$(printf '%s\n' "$rootpw" | mkpasswd -m sha512)
case "$hash" in
  \$6\$*) ;; # SHA-512 crypt
  *) echo "mkpasswd failed"; exit 1 ;;
esac
days=$(($(date +%s) / 86400))
printf 'root:%s:%s:0:99999:7:::\nletterbox:!:%s:0:99999:7:::\n' "$hash" "$days" "$days" \
  >/data/etc/shadow.new
mv /data/etc/shadow.new /data/etc/shadow

while :; do
  ask key "SSH public key for root (one line; empty for none)"
  case "$key" in
    '') break ;;
    ssh-* | ecdsa-* | sk-*)
      echo "$key" >>/data/ssh/authorized_keys
      break
      ;;
    *) echo "That does not look like an OpenSSH public key (ssh-ed25519 AAAA...)." ;;
  esac
done

# Wi-Fi: asked on every board (a cable needs none; qemu has no radio, the test answers it),
# unless the image was built without it (WIFI=no).
while [ -f /usr/lib/letterbox/wifi.tar.xz ]; do
  ask ssid "Wi-Fi network name (empty for none: cable only)"
  [ -n "$ssid" ] || break
  ask_secret wifipw "Wi-Fi password for $ssid" "Repeat the Wi-Fi password"
  ask country "Wi-Fi country (two letters, e.g. GB, DE, US)"
  if printf '%s\n' "$wifipw" | letterbox wifi set "$ssid" --country "$country"; then
    # rcS found no Wi-Fi settings at boot: start it now.
    /usr/libexec/letterbox/wifi.sh start >/dev/null 2>&1 &
    break
  fi
  echo "Once more."
done

hostname "$host"
printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s %s\n' "$host" "${host%%.*}" >/etc/hosts
sync
mv "$new" "$config"
sync

echo
echo "Done. letterbox is starting: SMTP on 25, submission on 587 and 465, POP3 on 110 and 995,"
echo "IMAP on 143 and 993, ManageSieve on 4190, and 80/443 for certificates (ACME) and MTA-STS."
addresses=$(ip -4 -o addr show scope global | awk '{ sub("/.*", "", $4); printf " %s", $4 }')
echo "This machine's addresses:${addresses:- (none yet)}. Log in as root to add users:"
echo "  letterbox user add bob@$domain"
echo
echo "Publish these DNS records for $domain; later, 'letterbox check' tells what is missing:"
letterbox --config "$config" check --records 2>&1
