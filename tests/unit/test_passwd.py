"""Password files in mosquitto's PBKDF2-SHA512 format, and ``fedmq broker`` commands."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from broker import passwd
from fedmq.cli import main
from fedmq.errors import ConfigError
from tests.conftest import require_binary


def _mosquitto_passwd() -> str:
    return require_binary("mosquitto_passwd", "mosquitto", also="/usr/bin/mosquitto_passwd")


def test_hash_round_trip_and_format() -> None:
    hashed = passwd.PasswordHash.create("s3cret", salt=b"0123456789ab")
    encoded = hashed.encode()
    assert encoded.startswith("$7$101$MDEyMzQ1Njc4OWFi$")
    parsed = passwd.PasswordHash.parse(encoded)
    assert parsed == hashed
    assert len(parsed.digest) == 64
    assert parsed.verify("s3cret")
    assert not parsed.verify("s3cret ")


def test_reads_what_mosquitto_passwd_writes(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    subprocess.run([_mosquitto_passwd(), "-c", "-b", str(path), "alice", "wonder"], check=True)
    assert passwd.check_password(path, "alice", "wonder")
    assert not passwd.check_password(path, "alice", "wonderland")
    # and mosquitto_passwd keeps our entries when it adds its own
    passwd.set_password(path, "dev-1", "pw")
    subprocess.run([_mosquitto_passwd(), "-b", str(path), "bob", "builder"], check=True)
    assert passwd.check_password(path, "dev-1", "pw")
    assert passwd.check_password(path, "bob", "builder")


@pytest.mark.parametrize(
    "encoded", ["$6$abc$def", "$7$x$AAAA$AAAA", "$7$101$not base64!$AAAA", "plain"]
)
def test_parse_rejects_other_formats(encoded: str) -> None:
    with pytest.raises(ConfigError):
        passwd.PasswordHash.parse(encoded)


def test_set_remove_and_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "auth" / "passwd"
    passwd.set_password(path, "dev-1", "a")
    passwd.set_password(path, "dev-2", "b")
    passwd.set_password(path, "dev-1", "c")  # update keeps one line per user
    assert sorted(passwd.read_passwd(path)) == ["dev-1", "dev-2"]
    assert passwd.check_password(path, "dev-1", "c")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert passwd.remove_user(path, "dev-2")
    assert not passwd.remove_user(path, "dev-2")
    assert list(passwd.read_passwd(path)) == ["dev-1"]


@pytest.mark.parametrize("name", ["aggregator", "simulator", "monitor", "bad/id", "+", "", "-x"])
def test_device_ids_are_validated(name: str) -> None:
    with pytest.raises(ConfigError):
        passwd.validate_username(name, device=True)


def test_generated_passwords_are_url_safe() -> None:
    password = passwd.generate_password()
    assert len(password) >= 32
    assert set(password) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_cli_add_device_with_given_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "passwd"
    assert (
        main(["broker", "add-device", "dev-1", "--passwd-file", str(path), "--password", "pw"]) == 0
    )
    assert capsys.readouterr().out == ""
    assert passwd.check_password(path, "dev-1", "pw")


def test_cli_generates_and_prints_a_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "passwd"
    assert main(["broker", "add-device", "dev-9", "--passwd-file", str(path)]) == 0
    printed = capsys.readouterr().out.strip()
    assert passwd.check_password(path, "dev-9", printed)


def test_cli_secret_file_makes_init_idempotent(tmp_path: Path) -> None:
    path, secret = tmp_path / "passwd", tmp_path / "secrets" / "aggregator"
    argv = [
        "broker",
        "add-user",
        "aggregator",
        "--passwd-file",
        str(path),
        "--secret-file",
        str(secret),
    ]
    assert main(argv) == 0
    first = secret.read_text().strip()
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert main(argv) == 0  # a second run reuses the password the services already hold
    assert secret.read_text().strip() == first
    assert passwd.check_password(path, "aggregator", first)


def test_cli_refuses_service_names_as_devices(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    assert main(["broker", "add-device", "aggregator", "--passwd-file", str(path)]) == 2
    assert not path.exists()


def test_cli_remove(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "passwd"
    monkeypatch.setenv("FEDMQ_PASSWD_FILE", str(path))
    assert main(["broker", "add-device", "dev-1", "--password", "x"]) == 0
    assert main(["broker", "remove", "dev-1"]) == 0
    assert main(["broker", "remove", "dev-1"]) == 1


def test_cli_config_prints_a_local_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["broker", "config", "--port", "18830", "--data-dir", str(tmp_path)]
    assert main([*argv, "--passwd-file", str(tmp_path / "passwd")]) == 0
    out = capsys.readouterr().out
    assert "listener 18830 127.0.0.1" in out
    assert f"password_file {tmp_path / 'passwd'}" in out
    assert "allow_anonymous false" in out
