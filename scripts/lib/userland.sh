# shellcheck shell=bash
# The image's C programs, built from Debian's source packages: sourced by scripts/build-image.
#
# Why not Debian's arm64 binaries: they are linked against glibc and its companions
# (libcrypt, zlib, libtomcrypt, libgmp, libblkid, libnl, ...), 4.8 MB of shared libraries
# that the programs use a sliver of, and Debian's busybox-static has 269 applets. Built here
# from the same sources, with Debian's patches (security fixes included), by Debian's cross
# compiler (gcc-aarch64-linux-gnu) against Debian's musl (musl-dev), each program is one
# static file (PIE, but for busybox: see its recipe) and the system has no shared library:
#
#   busybox         Debian's busybox-static configuration, less the applets image/busybox.applets
#                   does not list
#   dropbear        SSH server and its host-key generator, with dropbear's own libtomcrypt
#   e2fsck          /data's check and growth at boot (e2fsprogs, its libraries built in)
#   resize2fs
#   wpa_supplicant  Wi-Fi (WPA2-PSK and open networks; image/wpa_supplicant.config), with a
#                   static libnl
#
# Each build runs once per source version, configuration, toolchain and recipe: the cache
# directory's name holds a hash of all of them (out/cache/src-build).

# The host packages whose files end up in the binaries, with their versions.
cross_toolchain() {
  local packages
  packages=$(dpkg -S "$(readlink -f "$(command -v aarch64-linux-gnu-gcc)")" \
    "$(aarch64-linux-gnu-gcc -print-libgcc-file-name)" | cut -d: -f1)
  # shellcheck disable=SC2086 # word list
  dpkg-query -W -f '${Package} ${Version}\n' binutils-aarch64-linux-gnu $packages | sort -u | tr '\n' ' '
}

# Hardening as in Debian's builds (stack protector, format checks, full RELRO, PIE; musl has
# no _FORTIFY_SOURCE), sized for an SD card.
TARGET_CFLAGS="-Os -fPIE -fstack-protector-strong -Wformat -Werror=format-security"
TARGET_LDFLAGS="-static-pie -Wl,-z,relro -Wl,-z,now"

# ---- The toolchain: Debian's cross gcc with a musl sysroot -------------------------------
# musl-dev's headers and static libc, linux-libc-dev's kernel headers, and musl's crypt()
# compiled from Debian's musl source (Debian's musl-dev leaves crypt out, as Debian's
# systems take it from libxcrypt; dropbear's password logins need it). musl-dev's own specs
# file drives gcc, pointed at this sysroot and taught -static-pie.
musl_toolchain() {
  local key sysroot src file
  # (The cache's path is part of the key: the specs file names the sysroot's.)
  key=$( (basename "${DEB[musl-dev]}"; basename "${DEB[linux-libc-dev]}"; cat "${SRC_DSC[musl]}"
    echo "$CACHE $TARGET_CFLAGS"; cross_toolchain; declare -f musl_toolchain) | sha256sum | cut -c1-16)
  MUSL=$CACHE/musl-toolchain-$key
  MUSL_CC="aarch64-linux-gnu-gcc -specs=$MUSL/musl-gcc.specs"
  MUSL_KEY=$key
  [ -e "$MUSL/.done" ] && return
  log "musl toolchain ($(basename "${DEB[musl-dev]}"))"
  rm -rf "$MUSL"
  sysroot=$MUSL/sysroot src=$MUSL/musl-src
  mkdir -p "$sysroot/include" "$sysroot/lib"
  cp -R "${TREE[musl-dev]}/usr/include/aarch64-linux-musl/." "$sysroot/include/"
  cp -R "${TREE[musl-dev]}/usr/lib/aarch64-linux-musl/." "$sysroot/lib/"
  # The kernel's headers; their arm64 asm/ lives under the multiarch directory.
  for file in "${TREE[linux-libc-dev]}"/usr/include/*; do
    [ "$(basename "$file")" = aarch64-linux-gnu ] || cp -R "$file" "$sysroot/include/"
  done
  cp -R "${TREE[linux-libc-dev]}/usr/include/aarch64-linux-gnu/." "$sysroot/include/"
  sed -e "s|/usr/include/aarch64-linux-musl|$sysroot/include|g" \
    -e "s|/usr/lib/aarch64-linux-musl|$sysroot/lib|g" \
    -e "s|%{!shared: \($sysroot/lib\)/Scrt1.o}|%{static-pie:\1/rcrt1.o;!shared:\1/Scrt1.o}|" \
    -e "s|%{static:-static}|%{static:-static} %{static-pie:-static -pie --no-dynamic-linker -z text}|" \
    "$sysroot/lib/musl-gcc.specs" >"$MUSL/musl-gcc.specs"
  grep -q rcrt1.o "$MUSL/musl-gcc.specs" || die "musl-dev's specs file has changed: $MUSL/musl-gcc.specs"
  dpkg-source -x "${SRC_DSC[musl]}" "$src" >"$MUSL/build.log" 2>&1 || die "dpkg-source -x musl failed"
  mkdir -p "$MUSL/crypt"
  for file in "$src"/src/crypt/*.c; do
    $MUSL_CC $TARGET_CFLAGS -std=c99 -D_XOPEN_SOURCE=700 -ffile-prefix-map="$src=." \
      -I"$src/arch/aarch64" -I"$src/arch/generic" -I"$src/src/include" -I"$src/src/internal" \
      -c "$file" -o "$MUSL/crypt/$(basename "$file" .c).o" 2>>"$MUSL/build.log" ||
      die "musl's $(basename "$file") did not compile: $(tail -n 3 "$MUSL/build.log")"
  done
  aarch64-linux-gnu-ar rcsD "$sysroot/lib/libcrypt.a" "$MUSL"/crypt/*.o
  install -m 0644 "$src/include/crypt.h" "$sysroot/include/crypt.h"
  rm -rf "$src" "$MUSL/crypt"
  touch "$MUSL/.done"
}

# from_source NAME RECIPE [INPUT...]: builds source package NAME with the function RECIPE,
# run in its unpacked tree with the output directory as argument, unless built before with the
# same inputs (files are hashed by content, other words as they are). Sets BUILT to the output
# directory.
from_source() {
  local name=$1 recipe=$2 key dir input status
  shift 2
  key=$( (cat "${SRC_DSC[$name]}"; echo "$MUSL_KEY $TARGET_CFLAGS $TARGET_LDFLAGS"
    for input in "$@"; do if [ -f "$input" ]; then cat "$input"; else echo "$input"; fi; done
    declare -f from_source "$recipe") | sha256sum | cut -c1-16)
  dir=$CACHE/src-build/$(basename "${SRC_DSC[$name]}" .dsc)-$key
  BUILT=$dir/out
  [ -e "$dir/.done" ] && return
  log "building $name from $(basename "${SRC_DSC[$name]}")"
  rm -rf "$dir"
  mkdir -p "$BUILT"
  dpkg-source -x "${SRC_DSC[$name]}" "$dir/src" >"$dir/build.log" 2>&1 ||
    die "dpkg-source -x ${SRC_DSC[$name]} failed: $(tail -n 3 "$dir/build.log")"
  # set -e holds inside the recipe only outside an || list.
  set +e
  (set -e; cd "$dir/src"; "$recipe" "$BUILT") >>"$dir/build.log" 2>&1
  status=$?
  set -e
  [ "$status" -eq 0 ] || die "$name did not build: $(tail -n 5 "$dir/build.log")"
  for input in "$BUILT"/*; do
    if [ -f "$input" ] && [ -x "$input" ]; then aarch64-linux-gnu-strip "$input"; fi
  done
  # Only the results and the log are kept (the tree is 25 to 45 MB).
  rm -rf "$dir/src" "$dir"/*.orig.* "$dir"/*.debian.tar.* "$dir"/*.diff.gz
  touch "$dir/.done"
}

# ---- Recipes -----------------------------------------------------------------------------
busybox_recipe() {
  local out=$1 version
  version=$(dpkg-parsechangelog -S Version)
  # Applet name -> config symbol, from the sources' "//applet:IF_SYMBOL(...APPLET(name, ..."
  # lines; every applet the list does not name is switched off, the rest keep Debian's
  # choices. Two of them changed for musl, which lacks the GNU regex extensions that
  # Debian's glibc build uses in grep (EXTRA_COMPAT) and in vi's search.
  grep -rhoE '//applet:IF_[A-Z0-9_]+\((IF_[A-Z_]+\()* *APPLET[A-Z_]*\( *[^, ]+ *,' \
    --include='*.c' --exclude-dir=.pc . |
    sed -E 's|//applet:IF_([A-Z0-9_]+)\((IF_[A-Z_]+\()* *APPLET[A-Z_]*\( *([^, ]+) *,|\3 \1|' |
    sort -u >applet-symbols
  sed -e 's/#.*//' -e 's/^[a-z]*://' "$BUSYBOX_APPLETS" | tr ' ' '\n' | grep . | sort -u >applets-kept
  awk 'NR == FNR { keep[$1] = 1; next } !($1 in keep) { print $2 }' applets-kept applet-symbols |
    sort -u | sed 's/.*/s|^CONFIG_&=y$|# CONFIG_& is not set|/' >config.sed
  # Static and not PIE, as Debian's busybox-static: nearly every command of the boot scripts
  # is an exec of it, and as a static PIE the boot spent 0.3 to 0.7 s more in them under qemu.
  printf '%s\n' 's|^CONFIG_EXTRA_COMPAT=y$|# CONFIG_EXTRA_COMPAT is not set|' \
    's|^CONFIG_FEATURE_VI_REGEX_SEARCH=y$|# CONFIG_FEATURE_VI_REGEX_SEARCH is not set|' >>config.sed
  sed -f config.sed debian/config/pkg/static >.config
  # The default for every question (yes ends on SIGPIPE, which pipefail would count).
  { yes '' || true; } | make oldconfig KCONFIG_NOTIMESTAMP=1 >/dev/null
  make -j"$(nproc)" CROSS_COMPILE=aarch64-linux-gnu- CC="$MUSL_CC" \
    EXTRA_CFLAGS="-fstack-protector-strong -Wformat -Werror=format-security -ffile-prefix-map=$PWD=." \
    EXTRA_LDFLAGS="-Wl,-z,relro -Wl,-z,now" \
    BB_EXTRA_VERSION="Debian $version" KCONFIG_NOTIMESTAMP=1 busybox
  install -m 0755 busybox "$out/busybox"
}

dropbear_recipe() {
  local out=$1
  # Debian's compile-time options (the default PATHs of a login).
  install -m 0644 debian/localoptions.h localoptions.h
  ./configure --build="$(gcc -dumpmachine)" --host=aarch64-linux-gnu --enable-bundled-libtom \
    --disable-zlib --disable-pam \
    --disable-lastlog --disable-utmp --disable-utmpx --disable-wtmp --disable-wtmpx \
    --disable-pututline --disable-pututxline \
    CC="$MUSL_CC" CFLAGS="$TARGET_CFLAGS -ffile-prefix-map=$PWD=." LDFLAGS="$TARGET_LDFLAGS"
  grep -q '^#define HAVE_CRYPT 1' config.h # password logins
  make -j"$(nproc)" PROGRAMS="dropbear dropbearkey"
  install -m 0755 dropbear dropbearkey "$out/"
}

e2fsprogs_recipe() {
  local out=$1
  ./configure --build="$(gcc -dumpmachine)" --host=aarch64-linux-gnu --disable-nls \
    --disable-elf-shlibs --disable-rpath PKG_CONFIG=false \
    --disable-fuse2fs --disable-debugfs --disable-imager --disable-defrag --disable-uuidd \
    --disable-fsck --disable-e2initrd-helper --disable-tdb --without-libarchive \
    CC="$MUSL_CC" CFLAGS="$TARGET_CFLAGS -ffile-prefix-map=$PWD=." LDFLAGS="$TARGET_LDFLAGS"
  make -j"$(nproc)" libs
  make -j"$(nproc)" -C e2fsck e2fsck
  make -j"$(nproc)" -C resize resize2fs
  install -m 0755 e2fsck/e2fsck resize/resize2fs "$out/"
}

# libnl for wpa_supplicant: its core and generic-netlink libraries, static, with headers.
libnl_recipe() {
  local out=$1
  # Debian's patches touch the automake inputs; the shipped configure is what builds.
  touch aclocal.m4 && touch configure Makefile.in lib/defs.h.in
  ./configure --build="$(gcc -dumpmachine)" --host=aarch64-linux-gnu --disable-shared \
    --enable-static --disable-cli --disable-debug PKG_CONFIG=false \
    CC="$MUSL_CC" CFLAGS="$TARGET_CFLAGS -ffile-prefix-map=$PWD=."
  make -j"$(nproc)" lib/libnl-3.la lib/libnl-genl-3.la
  install -m 0644 lib/.libs/libnl-3.a lib/.libs/libnl-genl-3.a "$out/"
  cp -R include "$out/"
}

# Debian's wpasupplicant has every feature (EAP and its TLS, WPS, P2P, mesh, D-Bus, smart
# cards): 12 MB with OpenSSL, D-Bus, libsystemd and libgcrypt. The appliance joins one
# WPA2-PSK or open network (`letterbox wifi` writes only those): image/wpa_supplicant.config.
wpa_supplicant_recipe() {
  local out=$1
  install -m 0644 "$WPA_CONFIG" wpa_supplicant/.config
  # The makefile appends its own -I options to CFLAGS from the environment, and its
  # libraries to LIBS, which must not come from ours.
  env -u LIBS -u EXTRA_CFLAGS -u CPPFLAGS \
    CFLAGS="-MMD $TARGET_CFLAGS -Wall -ffile-prefix-map=$PWD=. -I$LIBNL/include" \
    LDFLAGS="$TARGET_LDFLAGS -L$LIBNL" \
    make -C wpa_supplicant -j"$(nproc)" CC="$MUSL_CC" PKG_CONFIG=false wpa_supplicant
  install -m 0755 wpa_supplicant/wpa_supplicant "$out/"
}

# userland: builds them all; sets USERLAND_BIN (busybox, dropbear, ...) and, with Wi-Fi,
# WPA_SUPPLICANT.
userland() {
  musl_toolchain
  USERLAND_BIN=$BUILD/userland
  mkdir -p "$USERLAND_BIN"
  BUSYBOX_APPLETS=$PWD/image/busybox.applets from_source busybox busybox_recipe image/busybox.applets
  cp "$BUILT"/* "$USERLAND_BIN/"
  from_source dropbear dropbear_recipe
  cp "$BUILT"/* "$USERLAND_BIN/"
  from_source e2fsprogs e2fsprogs_recipe
  cp "$BUILT"/* "$USERLAND_BIN/"
  if [ "$WIFI" = yes ]; then
    from_source libnl3 libnl_recipe
    LIBNL=$BUILT
    WPA_CONFIG=$PWD/image/wpa_supplicant.config \
      from_source wpa wpa_supplicant_recipe image/wpa_supplicant.config "$LIBNL"
    # shellcheck disable=SC2034 # build-image's
    WPA_SUPPLICANT=$BUILT/wpa_supplicant
  fi
}
