# shellcheck shell=bash
# ensure_chromium: prints the path of a headless Chromium for the web console's browser
# tests: the system's /usr/bin/chromium when it is installed, else Debian's chromium with the
# libraries this machine lacks (asked of apt-get, nothing installed), unpacked into
# target/tools/chromium (scripts/lib/debs.sh) behind a wrapper that sets LD_LIBRARY_PATH.
# shellcheck source=debs.sh
. "$(dirname "${BASH_SOURCE[0]}")/debs.sh"
chromium_libs() {
  echo "$(debs_lib_dir "$1"):$(debs_lib_dir "$1")/pulseaudio"
}
chromium_runs() {
  LD_LIBRARY_PATH="$(chromium_libs "$1")" "$1/usr/lib/chromium/chromium" --headless --no-sandbox --version >/dev/null 2>&1 || {
    echo "the unpacked chromium does not start (missing libraries?): LD_LIBRARY_PATH=$(chromium_libs "$1") $1/usr/lib/chromium/chromium --version" >&2
    return 1
  }
}
ensure_chromium() {
  if [ -x /usr/bin/chromium ]; then
    echo /usr/bin/chromium
    return 0
  fi
  local packages root
  # Only what this machine lacks, without recommendations (fonts and GTK themes are not needed headless).
  packages="$(apt-get install -s --no-install-recommends chromium 2>/dev/null | awk '/^Inst /{print $2}' | sort | tr '\n' ' ')"
  [ -n "$packages" ] || { echo "apt-get cannot say which packages chromium needs (apt-get update?)" >&2; return 1; }
  root="$(unpack_debs "$PWD/target/tools/chromium" usr/lib/chromium/chromium "${packages% }" \
    "the web console tests need Debian's chromium (or set EDDY_CHROMIUM to a Chromium binary)" chromium_runs)" || return 1
  cat >"$root/chromium" <<WRAPPER
#!/bin/sh
LD_LIBRARY_PATH="$(chromium_libs "$root")\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$root/usr/lib/chromium/chromium" "\$@"
WRAPPER
  chmod +x "$root/chromium"
  echo "$root/chromium"
}
