"""Where the eddy-driver and eddy-mapper binaries are, and the console scripts that run them.

A wheel built by the project carries both in ``eddy/bin/``; ``eddy-driver`` and
``eddy-mapper`` on the venv's PATH (and ``python -m eddy``, which is ``eddy-driver``) run
them with the arguments given.
"""

import os
import shutil
import sys

BUNDLED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin")


def find_binary(name, search_path=True):
    """Path of ``name`` (``eddy-driver`` or ``eddy-mapper``): ``$EDDY_BIN_DIR``, then
    ``eddy/bin/`` in this package, then (with ``search_path``) ``PATH``. Raises
    ``FileNotFoundError`` saying where it looked."""
    looked = []
    env_dir = os.environ.get("EDDY_BIN_DIR")
    if env_dir:
        looked.append(env_dir)
        candidate = os.path.join(env_dir, name)
        if os.path.isfile(candidate):
            # Absolute: EDDY_BIN_DIR may be relative, e.g. "." for binaries that YARN
            # localized into a container's working directory.
            return os.path.abspath(candidate)
    looked.append(BUNDLED)
    candidate = os.path.join(BUNDLED, name)
    if os.path.isfile(candidate):
        return candidate
    if search_path:
        on_path = shutil.which(name)
        # The venv's console script of the same name is this package, not the binary.
        if on_path and not _is_console_script(on_path):
            return on_path
        looked.append("PATH")
    raise FileNotFoundError(
        f"cannot find {name} (looked in {', '.join(looked)}): install the eddy wheel that carries it "
        f"(pip install ./python from a source checkout), or build it with `cargo build --release --bins` "
        f"and set EDDY_BIN_DIR to target/release"
    )


def _is_console_script(path):
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    return head.startswith(b"#!") and b"eddy.binaries" in head


def _exec(name):
    try:
        binary = find_binary(name, search_path=False)
    except FileNotFoundError as e:
        sys.exit(str(e))
    os.execv(binary, [name, *sys.argv[1:]])


def driver_main():
    """The ``eddy-driver`` console script."""
    _exec("eddy-driver")


def mapper_main():
    """The ``eddy-mapper`` console script."""
    _exec("eddy-mapper")
