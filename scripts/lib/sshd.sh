# shellcheck shell=bash
# ensure_sshd: a real SSH server and client for the `eddy-driver ssh` tests, Debian's OpenSSH,
# unpacked with the library it needs into target/tools/openssh (scripts/lib/debs.sh). Prints
# the directory; the binary is usr/sbin/sshd there, run with LD_LIBRARY_PATH set to its
# usr/lib/<multiarch> directory (tests/src/sshd.rs does); the tests put its usr/bin (ssh,
# ssh-keygen) first on the PATH.
# shellcheck source=debs.sh
. "$(dirname "${BASH_SOURCE[0]}")/debs.sh"
SSHD_PACKAGES="openssh-server openssh-client libwrap0"
# sshd has no --version (-V prints it and exits non-zero), so only its libraries are checked.
sshd_links() {
  if LD_LIBRARY_PATH="$(debs_lib_dir "$1")" ldd "$1/usr/sbin/sshd" | grep -q "not found"; then
    echo "the unpacked sshd misses libraries" >&2
    return 1
  fi
}
ensure_sshd() {
  unpack_debs "$PWD/target/tools/openssh" usr/sbin/sshd "$SSHD_PACKAGES" \
    "the SSH tests need Debian's openssh-server (or set EDDY_SSHD to an sshd binary)" sshd_links
}
