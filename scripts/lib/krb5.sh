# shellcheck shell=bash
# ensure_krb5_user: MIT Kerberos's user tools (kinit, klist, kdestroy) for the secure-cluster
# tests, Debian's krb5-user unpacked with the libraries it needs beyond the machine's own
# Kerberos runtime (libgssapi-krb5-2, which hdfs-native and Eddy load at run time) into
# target/tools/krb5 (scripts/lib/debs.sh). Prints the directory; the tools are in usr/bin
# there, run with LD_LIBRARY_PATH set to its usr/lib/<multiarch> directory.
# shellcheck source=debs.sh
. "$(dirname "${BASH_SOURCE[0]}")/debs.sh"
KRB5_USER_PACKAGES="krb5-user libgssrpc4 libkadm5clnt-mit12 libkadm5srv-mit12 libkdb5-10"
kinit_runs() {
  if LD_LIBRARY_PATH="$(debs_lib_dir "$1")" ldd "$1/usr/bin/kinit" | grep -q "not found"; then
    echo "the unpacked kinit misses libraries (is libkrb5-3 installed?)" >&2
    return 1
  fi
}
ensure_krb5_user() {
  unpack_debs "$PWD/target/tools/krb5" usr/bin/kinit "$KRB5_USER_PACKAGES" \
    "the Kerberos tests need Debian's krb5-user (or set EDDY_KINIT to a kinit binary)" kinit_runs
}
