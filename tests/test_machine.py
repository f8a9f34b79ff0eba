"""What a run says about the machine it ran on."""

import os
import platform

import jax

from dsrl_real.machine import cpu_model, describe, machine_info, usable_cores

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz
flags\t\t: fpu vme

processor\t: 1
model name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz
"""


def test_cpu_model_is_the_first_model_name_of_cpuinfo(tmp_path):
    (tmp_path / "cpuinfo").write_text(CPUINFO)
    assert cpu_model(tmp_path / "cpuinfo") == "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz"


def test_without_cpuinfo_the_cpu_is_what_platform_knows(tmp_path):
    (tmp_path / "arm").write_text("processor\t: 0\nBogoMIPS\t: 50.00\n")  # some ARM kernels name no model
    expected = platform.processor() or platform.machine() or "unknown CPU"
    assert cpu_model(tmp_path / "missing") == cpu_model(tmp_path / "arm") == expected


def test_machine_info_names_this_process_s_cores_os_python_and_jax():
    info = machine_info()
    assert info == {"cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)), "os": platform.platform(),
                    "python": platform.python_version(), "jax": jax.__version__, "jax_backend": jax.default_backend()}
    assert usable_cores() == info["cores"] >= 1


def test_describe_is_one_line():
    info = {"cpu": "Apple M2", "cores": 1, "os": "macOS-14.5-arm64-arm-64bit", "python": "3.11.7", "jax": "0.7.2",
            "jax_backend": "cpu"}
    assert describe(info) == "Apple M2, 1 core, macOS-14.5-arm64-arm-64bit, Python 3.11.7, jax 0.7.2 on cpu"
    assert describe({**info, "cores": 16, "jax_backend": "gpu"}).startswith("Apple M2, 16 cores,")
    assert describe({**info, "cores": 16, "jax_backend": "gpu"}).endswith("jax 0.7.2 on gpu")
