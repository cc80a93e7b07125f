# shellcheck shell=bash
# ensure_venv DIR PACKAGE...: a virtualenv at DIR holding exactly the pinned PACKAGEs, made
# (or remade) when its stamp differs. The machine's own Python stays untouched: nothing the
# scripts need may depend on what someone installed into it by hand.
ensure_venv() {
  local dir=$1
  shift
  local want="$*"
  if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.eddy-packages" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  echo "== installing $want into $dir"
  rm -rf "$dir"
  python3 -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
  echo "$want" >"$dir/.eddy-packages"
}
