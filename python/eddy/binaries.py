"""Where the eddy-driver and eddy-mapper binaries are."""

import os
import shutil


def find_binary(name):
    """Path of ``name`` (``eddy-driver`` or ``eddy-mapper``): ``$EDDY_BIN_DIR``, then
    ``eddy/bin/`` in this package, then ``PATH``. Raises ``FileNotFoundError`` saying where
    it looked."""
    looked = []
    env_dir = os.environ.get("EDDY_BIN_DIR")
    if env_dir:
        looked.append(env_dir)
        candidate = os.path.join(env_dir, name)
        if os.path.isfile(candidate):
            # Absolute: EDDY_BIN_DIR may be relative, e.g. "." for binaries that YARN
            # localized into a container's working directory.
            return os.path.abspath(candidate)
    bundled = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin")
    looked.append(bundled)
    candidate = os.path.join(bundled, name)
    if os.path.isfile(candidate):
        return candidate
    on_path = shutil.which(name)
    if on_path:
        return on_path
    looked.append("PATH")
    raise FileNotFoundError(
        f"cannot find {name} (looked in {', '.join(looked)}): build it with "
        f"`cargo build --release --bins` and set EDDY_BIN_DIR to target/release"
    )
