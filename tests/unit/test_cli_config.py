"""pycrictl's config file, global options and endpoint errors."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pycri.cli import session as session_module
from pycri.cli.main import cli
from pycri.testing import FakeEndpoint, serve_fake


@pytest.fixture
def fake() -> Iterator[FakeEndpoint]:
    with serve_fake() as endpoint:
        yield endpoint


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return tmp_path / "crictl.yaml"


def run(*args: str, code: int = 0, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(cli, list(args), env=env or {}, catch_exceptions=False)
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result


def test_config_set_get_list(config: Path) -> None:
    run("-c", str(config), "config", "--set", "runtime-endpoint=unix:///run/x.sock,timeout=5")
    run("-c", str(config), "config", "debug", "true")
    assert run("-c", str(config), "config", "--get", "timeout").stdout == "5\n"
    assert run("-c", str(config), "config", "--get", "debug").stdout == "true\n"
    text = config.read_text()
    assert "runtime-endpoint: unix:///run/x.sock\n" in text
    assert 'image-endpoint: ""\n' in text
    assert "pull-image-on-create: false\n" in text
    listing = run("-c", str(config), "config", "--list").stdout.splitlines()
    assert listing[0].split() == ["KEY", "VALUE"]
    assert listing[1].split() == ["runtime-endpoint", "unix:///run/x.sock"]


def test_config_set_keeps_comments(config: Path) -> None:
    config.write_text("# managed by hand\nruntime-endpoint: unix:///a.sock  # old\n")
    run("-c", str(config), "config", "--set", "runtime-endpoint=unix:///b.sock")
    lines = config.read_text().splitlines()
    assert lines[0] == "# managed by hand"
    assert lines[1] == "runtime-endpoint: unix:///b.sock"
    assert len([line for line in lines if line.startswith("runtime-endpoint")]) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--set", "nonsense=1"), "no configuration option named nonsense"),
        (("--set", "debug=maybe"), "parse debug value"),
        (("--set", "timeout=soon"), "parse timeout value"),
        (("--set", "debug"), "incorrectly specified option"),
        (("--get", "colour"), "no configuration option named colour"),
    ],
)
def test_config_rejects_bad_options(config: Path, args: tuple[str, ...], message: str) -> None:
    result = run("-c", str(config), "config", *args, code=1)
    assert message in result.stderr


def test_config_file_endpoint_is_used(fake: FakeEndpoint, config: Path) -> None:
    config.write_text(f"runtime-endpoint: {fake.address}\ntimeout: 5\ndebug: true\n")
    result = run("-c", str(config), "version")
    assert "RuntimeApiVersion:  v1" in result.stdout
    assert f"(from runtime-endpoint in {config})" in result.stderr  # debug: true in the file


def test_env_beats_file_and_flag_beats_env(fake: FakeEndpoint, config: Path) -> None:
    config.write_text("runtime-endpoint: unix:///nowhere/file.sock\n")
    env = {"CONTAINER_RUNTIME_ENDPOINT": fake.address}
    assert "RuntimeName" in run("-c", str(config), "version", env=env).stdout
    bad = run("-c", str(config), "-r", "unix:///nowhere/flag.sock", "version", env=env, code=1)
    assert "/nowhere/flag.sock (from --runtime-endpoint)" in bad.stderr
    from_env = run(
        "-c", str(config), "version", env={"CONTAINER_RUNTIME_ENDPOINT": "unix:///e.sock"}, code=1
    )
    assert "(from $CONTAINER_RUNTIME_ENDPOINT)" in from_env.stderr
    from_file = run("-c", str(config), "version", code=1)
    assert f"(from runtime-endpoint in {config})" in from_file.stderr


def test_config_from_env_var(fake: FakeEndpoint, config: Path) -> None:
    config.write_text(f"runtime-endpoint: {fake.address}\n")
    assert "RuntimeName" in run("version", env={"CRI_CONFIG_FILE": str(config)}).stdout


def test_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    result = run("-c", str(tmp_path / "absent.yaml"), "version", code=1)
    assert "does not exist" in result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [("colour: red\n", "no configuration option named colour"), ("[1, 2\n", "not valid YAML")],
)
def test_invalid_config_file(config: Path, text: str, message: str) -> None:
    config.write_text(text)
    result = run("-c", str(config), "-r", "unix:///x.sock", "version", code=1)
    assert message in result.stderr
    assert str(config) in result.stderr


def test_no_endpoint_lists_what_was_tried(
    monkeypatch: pytest.MonkeyPatch, config: Path, tmp_path: Path
) -> None:
    tried = (f"unix://{tmp_path}/a.sock", f"unix://{tmp_path}/b.sock")
    monkeypatch.setattr(session_module, "DEFAULT_ENDPOINTS", tried)
    config.write_text("")
    result = run("-c", str(config), "ps", code=1)
    assert "no runtime endpoint is set" in result.stderr
    for endpoint in tried:
        assert f"{endpoint}: " in result.stderr
    assert "CONTAINER_RUNTIME_ENDPOINT" in result.stderr
    assert "config --set" in result.stderr


def test_default_endpoint_that_answers_is_used(
    monkeypatch: pytest.MonkeyPatch, fake: FakeEndpoint, config: Path, tmp_path: Path
) -> None:
    monkeypatch.setattr(
        session_module, "DEFAULT_ENDPOINTS", (f"unix://{tmp_path}/none.sock", fake.address)
    )
    config.write_text("")
    assert "RuntimeName" in run("-c", str(config), "version").stdout


def test_wrong_endpoints_say_why(config: Path, tmp_path: Path) -> None:
    config.write_text("")
    not_socket = tmp_path / "file"
    not_socket.write_text("")
    result = run("-c", str(config), "-r", f"unix://{not_socket}", "ps", code=1)
    assert "is not a socket" in result.stderr
    assert "--runtime-endpoint" in result.stderr
    result = run("-c", str(config), "-r", "http://x", "ps", code=1)
    assert "invalid runtime endpoint" in result.stderr
    stale = tmp_path / "stale.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(stale))  # a socket file that nobody serves
    listener.close()
    result = run("-c", str(config), "-r", f"unix://{stale}", "-t", "1s", "version", code=1)
    assert result.stderr.startswith("pycrictl: Version failed: rpc error: code = Unavailable")
    assert "[endpoint set by --runtime-endpoint]" in result.stderr


def test_image_endpoint_is_checked_too(fake: FakeEndpoint, config: Path) -> None:
    config.write_text("")
    result = run(
        "-c", str(config), "-r", fake.address, "-i", "unix:///nowhere/img.sock", "images", code=1
    )
    assert "image endpoint unix:///nowhere/img.sock (from --image-endpoint)" in result.stderr
    ok = run("-c", str(config), "-r", fake.address, "-i", fake.address, "images", "-q")
    assert ok.stdout.count("sha256:") == 2


def test_version_flag() -> None:
    assert run("--version").stdout.startswith("pycrictl, version ")
