# shellcheck shell=bash
# build_wheel: builds the eddy wheel (python/) with the eddy-driver and eddy-mapper binaries of
# EDDY_WHEEL_BINARIES (default target/debug, which the test command builds) inside, into
# target/wheels; prints its path. driver_venv_over BASE DIR: a venv at DIR that sees BASE's
# packages (pyspark, pyarrow) through a .pth file and holds the eddy wheel itself, so that a
# Spark driver runs with eddy installed and its executors (BASE's Python) without, as on a
# cluster where nothing of Eddy is installed.
# shellcheck source=venv.sh
. "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
build_wheel() {
  local binaries="${EDDY_WHEEL_BINARIES:-$PWD/target/debug}" b
  for b in eddy-driver eddy-mapper; do
    [[ -x "$binaries/$b" ]] || { echo "no $b in $binaries: run cargo build --workspace --bins first" >&2; return 1; }
  done
  # setuptools comes from pip's isolated build environment, pinned in python/pyproject.toml.
  ensure_venv target/wheel-build-venv wheel==0.48.0 >&2 || return 1
  rm -rf target/wheels
  EDDY_WHEEL_BINARIES="$binaries" target/wheel-build-venv/bin/pip wheel --quiet --disable-pip-version-check --no-deps \
    -w target/wheels ./python >&2 || return 1
  rm -rf python/build python/eddy.egg-info
  ls "$PWD"/target/wheels/eddy-*.whl
}
driver_venv_over() {
  local base=$1 dir=$2 wheel base_site site
  wheel="$(build_wheel)"
  rm -rf "$dir"
  python3 -m venv "$dir"
  base_site="$("$base/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  site="$("$dir/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$base_site" >"$site/eddy-base-venv.pth"
  echo "== installing $(basename "$wheel") ($(du -h "$wheel" | cut -f1)) into $dir (over $base)" >&2
  "$dir/bin/pip" install --quiet --disable-pip-version-check --no-deps "$wheel" >&2
}
