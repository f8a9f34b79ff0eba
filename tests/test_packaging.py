"""setup.py (what colcon installs), pyproject.toml (what pip installs), setup.cfg and package.xml agree."""

import configparser
import glob
import importlib
import xml.etree.ElementTree as ET
from pathlib import Path

import setuptools
from fakes import launch_fake

import dsrl_real

try:
    import tomllib
except ImportError:  # Python 3.10 (ROS 2 Humble's): the same parser as the tomli backport
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
SETUP = launch_fake.read_setup(REPO)
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PACKAGE_XML = ET.parse(REPO / "package.xml").getroot()


def console_scripts() -> dict[str, str]:
    entries = SETUP["entry_points"]["console_scripts"]
    return {name.strip(): target.strip() for name, target in (entry.split("=") for entry in entries)}


def installed_files(data_files) -> dict[str, list[str]]:
    return {destination: sorted(files) for destination, files in data_files}


def test_setup_py_installs_every_launch_and_config_file_the_ament_marker_and_package_xml():
    files = installed_files(SETUP["data_files"])
    assert files["share/dsrl_real/launch"] == sorted(f"launch/{p.name}" for p in (REPO / "launch").glob("*.py"))
    assert files["share/dsrl_real/configs"] == sorted(f"configs/{p.name}" for p in (REPO / "configs").glob("*.yaml"))
    assert files["share/ament_index/resource_index/packages"] == ["resource/dsrl_real"]
    assert files["share/dsrl_real"] == ["package.xml"]
    assert (REPO / "resource" / "dsrl_real").is_file()
    assert {p.name for p in (REPO / "launch").glob("*.launch.py")} >= {"widowx_monkey.launch.py", "widowx_drawer.launch.py"}


def test_pyproject_declares_the_same_package_as_setup_py():
    project = PYPROJECT["project"]
    assert (project["name"], project["version"]) == (SETUP["name"], SETUP["version"]) == ("dsrl_real", dsrl_real.__version__)
    assert project["scripts"] == console_scripts()
    assert project["requires-python"] == SETUP["python_requires"]
    globs = PYPROJECT["tool"]["setuptools"]["data-files"]
    pip_files = {dest: sorted(f for pattern in patterns for f in glob.glob(pattern, root_dir=REPO))
                 for dest, patterns in globs.items()}
    assert pip_files == installed_files(SETUP["data_files"])
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    assert sorted(setuptools.find_packages(where=REPO, include=include)) == sorted(SETUP["packages"])
    assert {"dsrl_real.sim", "dsrl_real.agents.dsrl", "dsrl_real.train"} <= set(SETUP["packages"])
    assert not [p for p in SETUP["packages"] if "fake" in p or "mock" in p]  # test doubles stay in tests/


def test_console_scripts_are_the_cli_and_the_ros_node_and_resolve_to_callables():
    assert console_scripts() == {"dsrl-real": "dsrl_real.cli:main", "dsrl_real_node": "dsrl_real.ros.node:main"}
    for target in console_scripts().values():
        module, _, attribute = target.partition(":")
        assert callable(getattr(importlib.import_module(module), attribute)), target


def test_setup_cfg_installs_scripts_where_ros2_run_looks():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    assert cfg.get("develop", "script_dir") == "$base/lib/dsrl_real"  # colcon build --symlink-install
    assert cfg.get("install", "install_scripts") == "$base/lib/dsrl_real"  # colcon build


def test_package_xml_is_an_ament_python_package_matching_setup_py():
    assert PACKAGE_XML.get("format") == "3"
    assert PACKAGE_XML.findtext("name") == SETUP["name"]
    assert PACKAGE_XML.findtext("version") == SETUP["version"]
    assert PACKAGE_XML.findtext("license") == PYPROJECT["project"]["license"]["text"]
    assert PACKAGE_XML.find("maintainer").get("email")
    assert PACKAGE_XML.findtext("export/build_type") == "ament_python"


def test_package_xml_exec_depends_on_every_package_the_launch_files_use(tmp_path):
    depends = {e.text for e in PACKAGE_XML.findall("exec_depend")}
    assert {"rclpy", "launch", "launch_ros", "sensor_msgs", "geometry_msgs", "interbotix_xs_modules",
            "franka_msgs"} <= depends
    prefix = launch_fake.install_like_colcon(REPO, tmp_path / "dsrl_real")
    used = set()
    with launch_fake.install(prefixes=[prefix]) as fake:
        for path in sorted((prefix / "share" / "dsrl_real" / "launch").glob("*_*.launch.py")):
            if path.name == "dsrl_node.launch.py":
                continue
            result = fake.run(fake.load(path).generate_launch_description(),
                              {"robot_ip": "172.16.0.2", "camera_serials": "third_person=123456789012"})
            used |= {i.package for i in result.includes} | {n.package for n in result.nodes}
    assert used - {"dsrl_real"} == {"interbotix_xsarm_control", "realsense2_camera", "franka_bringup", "controller_manager"}
    assert used - {"dsrl_real"} <= depends
