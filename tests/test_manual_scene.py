"""The hardware scene asks the person at the robot through the terminal, even when stdin is not one."""

import os
import pty
import subprocess
import sys

import pytest

from dsrl_real.robots.manual import terminal_prompt


def _read_until(fd: int, marker: bytes) -> bytes:
    out = b""
    while marker not in out:
        chunk = os.read(fd, 1024)
        if not chunk:
            break
        out += chunk
    return out


def test_prompt_uses_the_controlling_terminal_when_stdin_is_not_one():
    master, slave = pty.openpty()
    # A new session whose first opened terminal (the pty) becomes its controlling terminal; stdin is
    # /dev/null, as under `ros2 launch`.
    code = ("import os, sys\nos.close(os.open(sys.argv[1], os.O_RDWR))\n"
            "from dsrl_real.robots.manual import terminal_prompt\nprint(f'ANSWER<{terminal_prompt(\"Reset the scene. \")}>')")
    child = subprocess.Popen([sys.executable, "-c", code, os.ttyname(slave)], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert b"Reset the scene. " in _read_until(master, b"Reset the scene. ")
    os.write(master, b"ready\n")
    out, _ = child.communicate(timeout=60)
    os.close(slave)
    assert out.strip() == "ANSWER<ready>" and child.returncode == 0


def test_no_terminal_at_all_is_one_sentence():
    code = "from dsrl_real.robots.manual import terminal_prompt\ntry:\n    terminal_prompt('Reset. ')\nexcept RuntimeError as err:\n    print(err)"
    # A new session has no controlling terminal, and stdin is /dev/null: nobody to ask.
    out = subprocess.run([sys.executable, "-c", code], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         start_new_session=True, timeout=60)
    assert out.stdout.startswith("There is no keyboard to ask for the scene reset") and "xterm" in out.stdout


@pytest.mark.parametrize("answer", ["", "go"])
def test_prompt_reads_stdin_when_it_is_a_terminal(monkeypatch, answer):
    class Tty:
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdin", Tty())
    monkeypatch.setattr("builtins.input", lambda message: answer)
    assert terminal_prompt("Reset. ") == answer
