"""The machine line a manifest records (llmpost/machine.py): the CPU's name and torch's vector instructions."""

from __future__ import annotations

import os
import platform

import torch

from llmpost.machine import cpu_name, device_description

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13 64-Core Processor
flags\t\t: fpu avx2

processor\t: 1
model name\t: AMD EPYC 7B13 64-Core Processor
"""


def test_cpu_name_is_read_from_cpuinfo(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    assert cpu_name(path) == "AMD EPYC 7B13 64-Core Processor"


def test_a_machine_without_cpuinfo_gets_no_made_up_name(tmp_path):
    name = cpu_name(tmp_path / "absent")
    assert name == ("" if platform.processor() in ("", platform.machine()) else platform.processor())


def test_this_cpu_is_described_with_its_name_cores_and_vector_instructions():
    line = device_description()
    assert line.startswith("cpu (") and line.endswith(")")
    assert cpu_name() in line and platform.machine() in line
    assert f"{os.cpu_count()} cores" in line
    assert torch.backends.cpu.get_cpu_capability() in line
