# shellcheck shell=bash
# ensure_dnsmasq: a real DNS server for the Kubernetes discovery tests, Debian's dnsmasq,
# unpacked with the libraries it needs into target/tools/dnsmasq (scripts/lib/debs.sh). Prints
# the directory; the binary is usr/sbin/dnsmasq there, run with LD_LIBRARY_PATH set to its
# usr/lib/<multiarch> directory (tests/src/dns.rs does).
# shellcheck source=debs.sh
. "$(dirname "${BASH_SOURCE[0]}")/debs.sh"
DNSMASQ_PACKAGES="dnsmasq-base libnetfilter-conntrack3 libnftables1 libnfnetlink0 libmnl0 libnftnl11 libjansson4 libxtables12"
dnsmasq_runs() {
  LD_LIBRARY_PATH="$(debs_lib_dir "$1")" "$1/usr/sbin/dnsmasq" --version >/dev/null \
    || { echo "the unpacked dnsmasq does not run" >&2; return 1; }
}
ensure_dnsmasq() {
  unpack_debs "$PWD/target/tools/dnsmasq" usr/sbin/dnsmasq "$DNSMASQ_PACKAGES" \
    "the DNS tests need Debian's dnsmasq (or set EDDY_DNSMASQ to a dnsmasq binary)" dnsmasq_runs
}
