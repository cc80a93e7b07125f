# shellcheck shell=bash
# unpack_debs ROOT BINARY "PACKAGES" HINT CHECK: Debian packages unpacked into ROOT for the
# tests, with nothing installed into the system (`apt-get download` fetches them, `dpkg -x`
# unpacks them). Skipped when ROOT/BINARY exists and ROOT/.packages names the same packages.
# HINT says what to do without apt-get; CHECK is a function given ROOT that fails when the
# unpacked binary cannot run. Prints ROOT.
unpack_debs() {
  local root="$1" binary="$2" packages="$3" hint="$4" check="$5"
  local name
  name="$(basename "$binary")"
  if [ -x "$root/$binary" ] && [ "$(cat "$root/.packages" 2>/dev/null)" = "$packages" ]; then
    echo "$root"
    return 0
  fi
  command -v apt-get >/dev/null 2>&1 || { echo "apt-get is missing: $hint" >&2; return 1; }
  local debs
  debs="$(mktemp -d)"
  echo "== fetching $name from Debian's packages into $root" >&2
  # shellcheck disable=SC2086 # the package list is words
  (cd "$debs" && apt-get download $packages >/dev/null 2>&1) || {
    rm -rf "$debs"
    echo "apt-get download $packages failed (are the package lists there? apt-get update)" >&2
    return 1
  }
  rm -rf "$root"
  mkdir -p "$root"
  for deb in "$debs"/*.deb; do dpkg -x "$deb" "$root"; done
  rm -rf "$debs"
  "$check" "$root" || return 1
  echo "$packages" >"$root/.packages"
  echo "$root"
}

# The multiarch library directory of an unpacked tree, for LD_LIBRARY_PATH.
debs_lib_dir() {
  echo "$1"/usr/lib/*-linux-gnu*
}
