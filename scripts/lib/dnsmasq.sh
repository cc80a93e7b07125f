# shellcheck shell=bash
# ensure_dnsmasq: a real DNS server for the Kubernetes discovery tests, Debian's dnsmasq,
# unpacked with the libraries it needs into target/tools/dnsmasq (nothing is installed into
# the system: `apt-get download` fetches the packages, `dpkg -x` unpacks them). Prints the
# directory; the binary is usr/sbin/dnsmasq there, run with LD_LIBRARY_PATH set to its
# usr/lib/<multiarch> directory (tests/src/dns.rs does).
DNSMASQ_PACKAGES="dnsmasq-base libnetfilter-conntrack3 libnftables1 libnfnetlink0 libmnl0 libnftnl11 libjansson4 libxtables12"
ensure_dnsmasq() {
  local root="$PWD/target/tools/dnsmasq"
  if [ -x "$root/usr/sbin/dnsmasq" ] && [ "$(cat "$root/.packages" 2>/dev/null)" = "$DNSMASQ_PACKAGES" ]; then
    echo "$root"
    return 0
  fi
  command -v apt-get >/dev/null 2>&1 || { echo "apt-get is missing: the DNS tests need Debian's dnsmasq (or set EDDY_DNSMASQ to a dnsmasq binary)" >&2; return 1; }
  local debs
  debs="$(mktemp -d)"
  echo "== fetching dnsmasq from Debian's packages into $root" >&2
  # shellcheck disable=SC2086 # the package list is words
  (cd "$debs" && apt-get download $DNSMASQ_PACKAGES >/dev/null 2>&1) || {
    rm -rf "$debs"
    echo "apt-get download $DNSMASQ_PACKAGES failed (are the package lists there? apt-get update)" >&2
    return 1
  }
  rm -rf "$root"
  mkdir -p "$root"
  for deb in "$debs"/*.deb; do dpkg -x "$deb" "$root"; done
  rm -rf "$debs"
  LD_LIBRARY_PATH="$(echo "$root"/usr/lib/*-linux-gnu*)" "$root/usr/sbin/dnsmasq" --version >/dev/null \
    || { echo "the unpacked dnsmasq does not run" >&2; return 1; }
  echo "$DNSMASQ_PACKAGES" >"$root/.packages"
  echo "$root"
}
