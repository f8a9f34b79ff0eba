"""Build script for colcon: makes this repository the ROS 2 (ament_python) package `dsrl_real`.

pip reads pyproject.toml (metadata, dependencies, scripts, data files). colcon runs this file with the
system setuptools, which on ROS 2 Humble (Ubuntu 22.04, setuptools 59) ignores pyproject's [project]
table, so the package name, version, packages, console scripts and data files are repeated here;
tests/test_packaging.py keeps the two in step. Python dependencies are not listed: colcon installs
none (see docs/widowx.md), and pip takes them from pyproject.toml.
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "dsrl_real"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, PACKAGE + ".*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),  # lets ament_index find the package
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", sorted(glob("launch/*.py"))),
        ("share/" + PACKAGE + "/configs", sorted(glob("configs/*.yaml"))),
    ],
    entry_points={
        "console_scripts": [
            "dsrl-real = dsrl_real.cli:main",
            "dsrl_real_node = dsrl_real.ros.node:main",
        ],
    },
    python_requires=">=3.10",
    zip_safe=True,
)
