# shellcheck shell=bash
# ensure_sshd: a real SSH server and client for the `eddy-driver ssh` tests, Debian's OpenSSH,
# unpacked with the library it needs into target/tools/openssh (nothing is installed into the
# system: `apt-get download` fetches the packages, `dpkg -x` unpacks them). Prints the
# directory; the binary is usr/sbin/sshd there, run with LD_LIBRARY_PATH set to its
# usr/lib/<multiarch> directory (tests/src/sshd.rs does); the tests put its usr/bin (ssh,
# ssh-keygen) first on the PATH.
SSHD_PACKAGES="openssh-server openssh-client libwrap0"
ensure_sshd() {
  local root="$PWD/target/tools/openssh"
  if [ -x "$root/usr/sbin/sshd" ] && [ "$(cat "$root/.packages" 2>/dev/null)" = "$SSHD_PACKAGES" ]; then
    echo "$root"
    return 0
  fi
  command -v apt-get >/dev/null 2>&1 || { echo "apt-get is missing: the SSH tests need Debian's openssh-server (or set EDDY_SSHD to an sshd binary)" >&2; return 1; }
  local debs
  debs="$(mktemp -d)"
  echo "== fetching sshd from Debian's packages into $root" >&2
  # shellcheck disable=SC2086 # the package list is words
  (cd "$debs" && apt-get download $SSHD_PACKAGES >/dev/null 2>&1) || {
    rm -rf "$debs"
    echo "apt-get download $SSHD_PACKAGES failed (are the package lists there? apt-get update)" >&2
    return 1
  }
  rm -rf "$root"
  mkdir -p "$root"
  for deb in "$debs"/*.deb; do dpkg -x "$deb" "$root"; done
  rm -rf "$debs"
  # sshd has no --version; -V prints it and exits non-zero, so only the library check counts.
  if LD_LIBRARY_PATH="$(echo "$root"/usr/lib/*-linux-gnu*)" ldd "$root/usr/sbin/sshd" | grep -q "not found"; then
    echo "the unpacked sshd misses libraries" >&2
    return 1
  fi
  echo "$SSHD_PACKAGES" >"$root/.packages"
  echo "$root"
}
