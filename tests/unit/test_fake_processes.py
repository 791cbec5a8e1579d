"""The fake shim's simulated processes and the tiny shell they run."""

from __future__ import annotations

import threading
import time

import pytest

from pycri_shims.fake import ProcessContext, SimulatedProcess, run
from pycri_shims.fake.processes import OutputCapture, ProcessResult
from pycri_shims.fake.sh.commands import is_runnable
from pycri_shims.fake.sh.filesystem import FakeFS
from pycri_shims.fake.sh.lexer import ShellSyntaxError
from pycri_shims.fake.sh.parser import parse


def sh(script: str, context: ProcessContext | None = None) -> tuple[int, str, str]:
    done = run(["sh", "-c", script], context, timeout=10)
    return done.exit_code, done.stdout.decode(), done.stderr.decode()


def started(argv: list[str], stdin: bytes | None = b"") -> tuple[SimulatedProcess, OutputCapture]:
    out = OutputCapture()
    process = SimulatedProcess(argv, stdout=out.write, stderr=out.write, stdin=stdin)
    process.start()
    return process, out


def wait_output(out: OutputCapture, expected: bytes) -> None:
    deadline = time.monotonic() + 5
    while out.value != expected:
        assert time.monotonic() < deadline, f"output is {out.value!r}, not {expected!r}"
        time.sleep(0.01)


# -- the examples ------------------------------------------------------------


def test_echo_hi_prints_hi_and_exits_0() -> None:
    done = run(["echo", "hi"])
    assert (done.exit_code, done.stdout, done.stderr) == (0, b"hi\n", b"")


def test_sh_c_exit_3_exits_3() -> None:
    assert run(["sh", "-c", "exit 3"]).exit_code == 3
    assert run(["/bin/sh", "-c", "exit 300"]).exit_code == 300 & 0xFF


def test_sleep_really_waits() -> None:
    begin = time.monotonic()
    assert run(["sleep", "0.2"]).exit_code == 0
    assert 0.2 <= time.monotonic() - begin < 2


# -- sequences and conditions -----------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "stdout", "code"),
    [
        ("echo a; echo b", "a\nb\n", 0),
        ("true && echo yes", "yes\n", 0),
        ("false && echo no", "", 1),
        ("false || echo rescued", "rescued\n", 0),
        ("echo a && false || echo c", "a\nc\n", 0),
        ("echo one\necho two", "one\ntwo\n", 0),
        ("! false", "", 0),
        ("if false; then echo x; elif true; then echo y; else echo z; fi", "y\n", 0),
        ("for w in a 'b c'; do echo \"<$w>\"; done", "<a>\n<b c>\n", 0),
        ("i=0; while [ $i -lt 3 ]; do echo $i; i=$((i + 1)); done", "0\n1\n2\n", 0),
        ("until true; do echo never; done; echo after", "after\n", 0),
        ("while true; do break; done; echo out", "out\n", 0),
        ("(exit 4); echo $?", "4\n", 0),
        ("{ echo a; echo b; } | wc -l", "2\n", 0),
        ("seq 3 | grep -v 2", "1\n3\n", 0),
        ("set -e; false; echo unreached", "", 1),
        ("echo kept # a comment", "kept\n", 0),
    ],
)
def test_control_flow(script: str, stdout: str, code: int) -> None:
    assert sh(script)[:2] == (code, stdout)


# -- expansion and quoting ------------------------------------------------------------------


def test_variables_from_the_environment_and_assignments() -> None:
    context = ProcessContext(env={"GREETING": "hi"})
    code, out, _ = sh("echo $GREETING ${GREETING} \"$GREETING\" '$GREETING'", context)
    assert (code, out) == (0, "hi hi hi $GREETING\n")
    assert sh("X=5; echo $X; echo ${MISSING:-default} ${#X}")[1] == "5\ndefault 1\n"


def test_status_variable_and_command_substitution() -> None:
    assert sh("false; echo $?; echo $?")[1] == "1\n0\n"
    assert sh("X=$(false); echo $?; false; Y=1; echo $?")[1] == "1\n0\n"
    assert sh("echo $(hostname)-`echo tick`", ProcessContext(hostname="pod-a"))[1] == "pod-a-tick\n"
    assert sh("echo $((7 / 2)) $((-7 / 2)) $((7 % 3)) $((2 * (3 + 4)))")[1] == "3 -3 1 14\n"


def test_unquoted_expansions_split_into_fields() -> None:
    assert sh('X="a  b"; for w in $X; do echo "[$w]"; done')[1] == "[a]\n[b]\n"
    assert sh('X="a  b"; for w in "$X"; do echo "[$w]"; done')[1] == "[a  b]\n"


def test_positional_parameters_of_sh_c() -> None:
    done = run(["sh", "-c", 'echo "$0:$1:$#"', "name", "first"])
    assert done.stdout == b"name:first:1\n"


# -- builtins ----------------------------------------------------------------------------------


def test_echo_and_printf_options() -> None:
    assert sh("echo -n a; echo -e 'b\\tc'")[1] == "ab\tc\n"
    assert sh("printf '%s=%d\\n' a 1 b 2")[1] == "a=1\nb=2\n"
    assert sh("printf '%05.1f|%-3s|%x' 3.14159 ab 255")[1] == "003.1|ab |ff"


def test_unknown_command_is_127_with_a_message() -> None:
    assert sh("nosuchthing --flag") == (127, "", "sh: nosuchthing: not found\n")
    assert sh("nosuchthing; echo $?")[1] == "127\n"


def test_unknown_program_at_top_level_is_an_exec_failure() -> None:
    done = run(["no-such-binary"])
    assert done.exit_code == 127
    assert b'exec: "no-such-binary": executable file not found in $PATH' in done.stderr
    assert not is_runnable("no-such-binary")
    assert all(is_runnable(p) for p in ("/bin/sh", "/pause", "nginx", "docker-entrypoint.sh"))


def test_cat_without_a_filesystem_entry_fails_like_busybox() -> None:
    assert sh("cat /etc/missing") == (
        1,
        "",
        "cat: can't open '/etc/missing': No such file or directory\n",
    )
    assert sh("cat") == (0, "", "")  # stdin is empty


def test_files_written_by_redirection_can_be_read_back() -> None:
    fs = FakeFS({"/etc/hostname": b"pod\n"})
    script = "echo one > /tmp/f; echo two >> /tmp/f; cat /tmp/f /etc/hostname; test -f /tmp/f"
    assert sh(script, ProcessContext(fs=fs)) == (0, "one\ntwo\npod\n", "")
    assert fs.user_files() == {"/tmp/f": 8}


def test_redirections_between_streams() -> None:
    assert sh("echo oops >&2") == (0, "", "oops\n")
    assert sh("nosuch 2>&1") == (127, "sh: nosuch: not found\n", "")
    assert sh("echo gone > /dev/null; echo shown") == (0, "shown\n", "")


def test_env_hostname_pwd_and_id_describe_the_context() -> None:
    context = ProcessContext(env={"A": "1", "B": "2"}, hostname="web-0", working_dir="/srv")
    assert sh("env", context)[1] == "A=1\nB=2\n"
    assert sh("hostname; pwd; cd /tmp; pwd", context)[1] == "web-0\n/srv\n/tmp\n"
    assert sh("id")[1] == "uid=0(root) gid=0(root) groups=0(root)\n"
    assert sh("id -u", ProcessContext(uid=1000))[1] == "1000\n"


def test_syntax_errors_exit_2() -> None:
    code, _, err = sh("echo 'unterminated")
    assert code == 2
    assert "unterminated" in err
    with pytest.raises(ShellSyntaxError):
        parse("if true; then echo")


# -- processes and signals ----------------------------------------------------------------------


def test_output_is_delivered_as_it_happens() -> None:
    process, out = started(["sh", "-c", "echo first; sleep 5; echo never"])
    wait_output(out, b"first\n")
    assert process.running
    process.terminate()
    assert process.wait(2)
    process.join()
    assert process.result == ProcessResult(143)


def test_sigterm_ends_a_sleeping_shell_promptly_with_143() -> None:
    process, _ = started(["sh", "-c", "sleep 60"])
    begin = time.monotonic()
    process.terminate()
    assert process.wait(2)
    process.join()
    assert time.monotonic() - begin < 1
    assert process.result == ProcessResult(143)


@pytest.mark.parametrize("argv", [["/pause"], ["nginx", "-g", "daemon off;"], ["redis-server"]])
def test_pause_and_daemons_exit_0_on_sigterm(argv: list[str]) -> None:
    process, _ = started(argv)
    time.sleep(0.05)
    assert process.running
    process.terminate()
    assert process.wait(2)
    process.join()
    assert process.result == ProcessResult(0)


def test_sigkill_is_137_and_crash_carries_its_reason() -> None:
    killed, _ = started(["/pause"])
    killed.kill()
    assert killed.wait(2)
    killed.join()
    assert killed.result == ProcessResult(137)

    crashed, _ = started(["sleep", "infinity"])
    crashed.crash(exit_code=139, reason="Segfault", message="boom")
    assert crashed.wait(2)
    crashed.join()
    assert crashed.result == ProcessResult(139, "Segfault", "boom")


def test_a_term_trap_runs_on_sigterm() -> None:
    process, out = started(["sh", "-c", "trap 'echo bye; exit 0' TERM; echo up; sleep 60"])
    wait_output(out, b"up\n")
    process.terminate()
    assert process.wait(2)
    process.join()
    assert process.result == ProcessResult(0)
    assert out.value == b"up\nbye\n"


def test_an_open_stdin_keeps_a_reading_shell_waiting() -> None:
    process, _ = started(["cat"], stdin=None)
    time.sleep(0.1)
    assert process.running
    process.kill()
    assert process.wait(2)
    process.join()


def test_while_true_loop_ticks_until_stopped() -> None:
    process, out = started(["sh", "-c", "while true; do echo tick; sleep 0.05; done"])
    time.sleep(0.3)
    process.terminate()
    assert process.wait(2)
    process.join()
    ticks = out.value.decode().splitlines()
    assert 3 <= len(ticks) <= 10
    assert set(ticks) == {"tick"}


def test_run_times_out_and_leaves_no_thread() -> None:
    with pytest.raises(TimeoutError):
        run(["sleep", "10"], timeout=0.1)
    assert not [t for t in threading.enumerate() if t.name.startswith("pycri-fake")]
