"""``fedmq broker ...``: credentials and configuration for the production mosquitto.

``add-device ID`` and ``add-user NAME`` write a PBKDF2-SHA512 entry into a
mosquitto password file. The password comes from ``--password``, from an
existing ``--secret-file`` (so re-running an init step keeps the credentials
the running services already use) or is generated; a generated password is
written to ``--secret-file`` when one is given, else printed once.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from pathlib import Path

from broker import conf, passwd
from fedmq.cli import env_default
from fedmq.errors import ConfigError

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("broker", help="mosquitto credentials and configuration")
    sub = parser.add_subparsers(dest="broker_command", required=True, metavar="ACTION")

    for name, device in (("add-device", True), ("add-user", False)):
        what = "device (username = device id)" if device else "service account or other user"
        add = sub.add_parser(name, help=f"add or update a {what} in a password file")
        add.add_argument("name", metavar="ID" if device else "NAME")
        _passwd_file(add)
        add.add_argument("--password", help="password to set (default: generated)")
        add.add_argument(
            "--secret-file",
            type=Path,
            help="file holding the password: reused if it exists, else written (mode 0600)",
        )
        add.set_defaults(func=_add, device=device)

    remove = sub.add_parser("remove", help="remove a user from a password file")
    remove.add_argument("name", metavar="NAME")
    _passwd_file(remove)
    remove.set_defaults(func=_remove)

    config = sub.add_parser(
        "config", help="print broker/mosquitto.conf adapted to a local port and paths"
    )
    config.add_argument("--port", type=int, default=env_default("port", 1883, int))
    config.add_argument("--bind", default="127.0.0.1", help="listener address")
    config.add_argument("--data-dir", type=Path, required=True, help="persistence directory")
    _passwd_file(config)
    config.add_argument("--acl-file", type=Path, default=conf.ACL_PATH)
    config.set_defaults(func=_config)


def _passwd_file(parser: argparse.ArgumentParser) -> None:
    default = env_default("passwd_file")
    parser.add_argument(
        "--passwd-file",
        type=Path,
        default=None if default is None else Path(default),
        required=default is None,
        help="mosquitto password file (env FEDMQ_PASSWD_FILE)",
    )


def _add(args: argparse.Namespace) -> int:
    try:
        name = passwd.validate_username(args.name, device=args.device)
        password, generated = _password(args.password, args.secret_file)
        passwd.set_password(args.passwd_file, name, password)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    if generated and args.secret_file is None:
        print(password)  # the only copy: the file holds a hash
    return 0


def _password(given: str | None, secret_file: Path | None) -> tuple[str, bool]:
    """(password, whether it was generated); writes a new secret file."""
    if given is not None:
        if secret_file is not None:
            passwd.write_secret(secret_file, given + "\n")
        return given, False
    if secret_file is not None and secret_file.exists():
        existing = secret_file.read_text().strip()
        if not existing:
            raise ConfigError(f"secret file {secret_file} is empty")
        return existing, False
    password = passwd.generate_password()
    if secret_file is not None:
        passwd.write_secret(secret_file, password + "\n")
    return password, True


def _remove(args: argparse.Namespace) -> int:
    if passwd.remove_user(args.passwd_file, args.name):
        return 0
    log.error("%s is not in %s", args.name, args.passwd_file)
    return 1


def _config(args: argparse.Namespace) -> int:
    text = conf.localize(
        conf.CONF_PATH.read_text(),
        port=args.port,
        bind=args.bind,
        data_dir=args.data_dir,
        passwd_file=args.passwd_file,
        acl_file=args.acl_file,
        run_as=getpass.getuser(),
    )
    sys.stdout.write(text)
    return 0
