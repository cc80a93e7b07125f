"""Builds the eddy wheel with the eddy-driver and eddy-mapper binaries inside (eddy/bin/).

From a source checkout, ``pip install ./python`` (or ``pip wheel ./python``) runs
``cargo build --release`` on the workspace one directory up and copies the two binaries into
the package. ``EDDY_WHEEL_BINARIES=DIR`` (an absolute path) takes them from DIR instead (a build that already
ran, e.g. ``target/debug`` in the test command). The wheel is tagged for this platform, not
as pure Python, since it carries native code.
"""

import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
WORKSPACE = os.path.dirname(HERE)
BINARIES = ("eddy-driver", "eddy-mapper")


def binaries_dir():
    given = os.environ.get("EDDY_WHEEL_BINARIES")
    if given:
        return os.path.abspath(given)
    manifest = os.path.join(WORKSPACE, "Cargo.toml")
    if not os.path.isfile(manifest):
        raise SystemExit(
            f"no Cargo workspace at {WORKSPACE}: build the wheel from a source checkout "
            "(pip install ./python), or set EDDY_WHEEL_BINARIES to a directory holding eddy-driver and eddy-mapper"
        )
    if shutil.which("cargo") is None:
        raise SystemExit("cargo is not installed: install Rust (https://rustup.rs) to build the binaries the wheel carries")
    command = ["cargo", "build", "--release", "--locked", "--manifest-path", manifest, "-p", "eddy-driver", "-p", "eddy-mapper"]
    print("building the binaries:", " ".join(command), flush=True)
    subprocess.run(command, check=True)
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(WORKSPACE, "target")
    return os.path.join(target, "release")


class BuildWithBinaries(build_py):
    """Copies the two binaries into ``eddy/bin`` of the build."""

    def run(self):
        super().run()
        source = binaries_dir()
        bin_dir = os.path.join(self.build_lib, "eddy", "bin")
        os.makedirs(bin_dir, exist_ok=True)
        for name in BINARIES:
            path = os.path.join(source, name)
            if not os.path.isfile(path):
                raise SystemExit(f"no {name} in {source}: build it first (cargo build --release -p {name})")
            shutil.copy2(path, os.path.join(bin_dir, name))
            os.chmod(os.path.join(bin_dir, name), 0o755)


class PlatformWheel(bdist_wheel):
    """A wheel for this platform: it holds Linux executables."""

    def finalize_options(self):
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


setup(cmdclass={"build_py": BuildWithBinaries, "bdist_wheel": PlatformWheel})
