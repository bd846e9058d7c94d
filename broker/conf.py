"""The production mosquitto config shipped in ``broker/``, and its local variant.

``mosquitto.conf`` is written for the compose stack (container paths, port
1883 on all interfaces). :func:`localize` rewrites only the lines that name a
port or a path, so tests and local runs exercise exactly the production
settings (limits, persistence, authentication, ACL) on a free loopback port.
"""

from __future__ import annotations

from pathlib import Path

from fedmq.errors import ConfigError

HERE = Path(__file__).resolve().parent
CONF_PATH = HERE / "mosquitto.conf"
ACL_PATH = HERE / "acl"

#: Lines whose value is a container path, replaced by :func:`localize`.
_PATH_KEYS = ("persistence_location", "password_file", "acl_file")


def settings(text: str) -> dict[str, list[str]]:
    """Active (uncommented) ``key -> [values...]`` of a mosquitto config."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, _, value = stripped.partition(" ")
        found.setdefault(key, []).append(value.strip())
    return found


def localize(
    text: str,
    *,
    port: int,
    data_dir: Path,
    passwd_file: Path,
    acl_file: Path,
    bind: str = "127.0.0.1",
    log_dest: str = "stderr",
    run_as: str | None = None,
) -> str:
    """``text`` with its one listener on ``bind:port`` and local paths.

    ``run_as`` sets mosquitto's ``user``: started as root, mosquitto otherwise drops
    to the ``mosquitto`` account, which cannot read a caller's private files.
    """
    active = settings(text)
    if len(active.get("listener", [])) != 1:
        raise ConfigError("expected exactly one active listener in the production config")
    missing = [key for key in _PATH_KEYS if key not in active]
    if missing:
        raise ConfigError(f"production config lacks {', '.join(missing)}")
    values = {
        "persistence_location": f"{data_dir}/",  # mosquitto wants the trailing slash
        "password_file": str(passwd_file),
        "acl_file": str(acl_file),
        "listener": f"{port} {bind}",
        "log_dest": log_dest,
    }
    out = []
    for line in text.splitlines():
        key = line.strip().partition(" ")[0]
        active_line = not line.lstrip().startswith("#")
        out.append(f"{key} {values[key]}" if active_line and key in values else line)
    if run_as is not None:
        out += ["", f"user {run_as}"]
    return "\n".join(out) + "\n"
