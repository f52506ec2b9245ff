"""Builds libweft with cargo and puts it in the package, so that
`pip install ./ffi/python` gives a working package.

WEFT_CARGO_PROFILE picks the cargo profile (default `release`);
CARGO_TARGET_DIR is honoured."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
WORKSPACE = HERE.parent.parent


class BuildWithCargo(build_py):
    def run(self):
        profile = os.environ.get("WEFT_CARGO_PROFILE", "release")
        cmd = ["cargo", "build", "-p", "weft-ffi", "--lib", "--profile", profile]
        subprocess.run(cmd, cwd=WORKSPACE, check=True)
        target = Path(os.environ.get("CARGO_TARGET_DIR", WORKSPACE / "target"))
        out = target / ("debug" if profile == "dev" else profile)
        name = "libweft.dylib" if sys.platform == "darwin" else "libweft.so"
        shutil.copy2(out / name, HERE / "weft_ffi" / name)
        super().run()


setup(cmdclass={"build_py": BuildWithCargo})
