"""``zebra-gateway-credentials``: manage the printers' credentials file.

::

    zebra-gateway-credentials add 50J161000398 --server-name print.example.com
    zebra-gateway-credentials add 50J161000398 --password-stdin < password.txt
    zebra-gateway-credentials add '*' --fleet --username site-a   # every printer
    zebra-gateway-credentials remove 50J161000398
    zebra-gateway-credentials list

The file is ``--file`` or ``$ZEBRA_BROKER_CREDENTIALS_FILE`` (the gateway's setting),
one JSON object per line (``gateway/auth/credentials.py``). ``add`` generates a
192-bit password unless one comes on stdin, stores only its hash (HMAC-SHA-256 with a
random salt for a generated password, about 1.5 µs to check; scrypt for one read from
stdin, which a person may have chosen), and prints the password once with the SGD
commands that set it on the printer. Edits keep comments and other lines, replace the
file atomically with mode 0600, and hold a lock beside it (``F.lock``) so that two runs
never lose each other's changes. A running gateway reads the change on its next
reload.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from broker.topology import is_valid_serial
from gateway.auth import (
    FLEET,
    Credential,
    PasswordHash,
    SecretHash,
    StoredHash,
    check_password,
    check_username,
    generate_password,
    parse_credential_line,
)

ENV_FILE = "ZEBRA_BROKER_CREDENTIALS_FILE"


class UsageError(Exception):
    """A problem the user can fix; printed without a traceback (exit status 2)."""


# -- the file -------------------------------------------------------------------------


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.lock`` while the block runs."""
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)  # a first add makes the folder
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_lines(path: Path) -> list[str]:
    """Return the file's lines without newlines (none if it does not exist)."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


def write_lines(path: Path, lines: list[str]) -> None:
    """Replace ``path`` atomically with ``lines``, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write("".join(line + "\n" for line in lines))
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def index_credentials(
    path: Path, lines: list[str]
) -> dict[str, tuple[int, Credential]]:
    """Map each username to its line index and credential; refuse a broken file."""
    found: dict[str, tuple[int, Credential]] = {}
    for index, line in enumerate(lines):
        try:
            credential = parse_credential_line(line)
        except ValueError as exc:
            raise UsageError(f"{path}:{index + 1}: {exc}; fix the file first") from None
        if credential is not None:
            found[credential.username] = (index, credential)
    return found


# -- commands -------------------------------------------------------------------------


def sgd_lines(server_name: str, username: str, password: str, conn: int) -> list[str]:
    """Return the commands that give a printer its credential, in both SGD forms."""
    setting = f"weblink.ip.conn{conn}.authentication.add"
    value = f"{server_name} {username} {password}"
    return [
        "Set it on the printer, then reset the printer (WebLink settings need one):",
        f'  ! U1 setvar "{setting}" "{value}"',
        '  ! U1 do "device.reset" ""',
        "or, as JSON SGD:",
        "  {}" + json.dumps({setting: value}, separators=(",", ":")),
    ]


def read_password(stdin: TextIO) -> str:
    """Read one password line from ``stdin``."""
    line = stdin.readline().rstrip("\r\n")
    try:
        return check_password(line)
    except ValueError as exc:
        raise UsageError(f"--password-stdin: {exc}") from None


def command_add(
    args: argparse.Namespace, path: Path, out: TextIO, stdin: TextIO
) -> int:
    serials: list[str] = args.serials
    fleet: bool = args.fleet
    if fleet:
        if serials != [FLEET]:
            raise UsageError(
                "--fleet covers every printer: give '*' as the only serial"
            )
        if args.username is None:
            raise UsageError("a fleet credential needs --username")
    elif FLEET in serials:
        raise UsageError("'*' covers every printer and needs --fleet")
    for serial in serials:
        if serial != FLEET and not is_valid_serial(serial):
            raise UsageError(
                f"invalid serial {serial[:80]!r}: only [A-Za-z0-9_-]{{1,64}} is allowed"
            )
    username: str = args.username or serials[0]
    try:
        check_username(username)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    password_hash: StoredHash
    if args.password_stdin:
        # Perhaps chosen by a person, so perhaps guessable: the slow hash.
        password = read_password(stdin)
        password_hash = PasswordHash.new(password)
    else:
        # 192 random bits: no guessing, so the fast hash (docs/security.md).
        password = generate_password()
        password_hash = SecretHash.new(password)
    credential = Credential(
        username=username,
        password_hash=password_hash,
        serials=frozenset(serials),
        fleet=fleet,
        comment=args.comment,
        created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    with locked(path):
        lines = read_lines(path)
        existing = index_credentials(path, lines).get(username)
        if existing is not None and not args.replace:
            raise UsageError(
                f"{username!r} already has a credential in {path}; "
                "use --replace to give it a new password"
            )
        if existing is not None:
            lines[existing[0]] = credential.to_line()
        else:
            lines.append(credential.to_line())
        write_lines(path, lines)
    covers = "every printer (fleet)" if fleet else ", ".join(sorted(serials))
    action = "replaced" if existing is not None else "added"
    output = [
        f"{action} {username} (covers {covers}) in {path}",
        f"password: {password}",
        f"  (shown this once; the file keeps only its {password_hash.scheme} hash)",
        "",
        *sgd_lines(args.server_name or "<server-name>", username, password, args.conn),
    ]
    if args.server_name is None:
        output += [
            "",
            "<server-name> is the host of weblink.ip.conn1.location: pass --server-name",
        ]
    out.write("\n".join(output) + "\n")
    return 0


def command_remove(args: argparse.Namespace, path: Path, out: TextIO) -> int:
    with locked(path):
        lines = read_lines(path)
        existing = index_credentials(path, lines).get(args.username)
        if existing is None:
            raise UsageError(f"no credential for {args.username!r} in {path}")
        del lines[existing[0]]
        write_lines(path, lines)
    out.write(
        f"removed {args.username} from {path}; sockets already open stay open until "
        "they reconnect\n"
    )
    return 0


def command_list(args: argparse.Namespace, path: Path, out: TextIO) -> int:
    credentials = [
        item for _, item in index_credentials(path, read_lines(path)).values()
    ]
    rows = [
        {
            "username": credential.username,
            "serials": sorted(credential.serials),
            "fleet": credential.fleet,
            "scheme": credential.password_hash.scheme,
            "scrypt": (
                repr(credential.password_hash)
                if isinstance(credential.password_hash, PasswordHash)
                else None
            ),
            "comment": credential.comment,
            "created": credential.created,
        }
        for credential in credentials
    ]
    if args.json:
        out.write(json.dumps(rows, indent=2) + "\n")
        return 0
    if not credentials:
        out.write(f"no credentials in {path}\n")
    for credential in credentials:
        serials = (
            "* (fleet)" if credential.fleet else ",".join(sorted(credential.serials))
        )
        comment = f"  # {credential.comment}" if credential.comment else ""
        out.write(
            f"{credential.username}\t{serials}\t{credential.password_hash.scheme}"
            f"\t{credential.created or '-'}{comment}\n"
        )
    return 0


# -- entry point ----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zebra-gateway-credentials",
        description="Manage the credentials printers use to log in to the gateway "
        "(salted hashes, one JSON object per line: HMAC-SHA-256 for generated "
        "passwords, scrypt for passwords read from stdin).",
    )
    parser.add_argument(
        "--file",
        type=Path,
        default=None,
        help=f"the credentials file (default: ${ENV_FILE})",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    add = commands.add_parser("add", help="add a printer credential, print its SGD")
    add.add_argument("serials", nargs="+", metavar="SERIAL", help="serial(s) covered")
    add.add_argument("--username", help="login name (default: the first serial)")
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from stdin instead of generating one (stored as a "
        "slow scrypt hash, since a person may have chosen it)",
    )
    add.add_argument(
        "--server-name",
        help="host name in weblink.ip.conn1.location, for the printed SGD line",
    )
    add.add_argument(
        "--conn", type=int, choices=(1, 2), default=1, help="WebLink connection"
    )
    add.add_argument(
        "--fleet", action="store_true", help="with SERIAL '*': cover every printer"
    )
    add.add_argument("--comment", help="free text stored with the entry")
    add.add_argument(
        "--replace", action="store_true", help="replace an existing credential"
    )
    add.add_argument("--file", type=Path, default=argparse.SUPPRESS, help="as above")

    remove = commands.add_parser("remove", help="remove a credential")
    remove.add_argument("username", metavar="USERNAME")
    remove.add_argument("--file", type=Path, default=argparse.SUPPRESS, help="as above")

    listing = commands.add_parser(
        "list", help="list credentials and their hash schemes (never hashes)"
    )
    listing.add_argument("--json", action="store_true", help="JSON output")
    listing.add_argument(
        "--file", type=Path, default=argparse.SUPPRESS, help="as above"
    )
    return parser


def main(
    argv: list[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run ``zebra-gateway-credentials``; return the exit status."""
    stdin = stdin or sys.stdin
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    args = build_parser().parse_args(argv)
    raw_path = args.file or os.environ.get(ENV_FILE)
    try:
        if not raw_path:
            raise UsageError(f"no credentials file: pass --file or set ${ENV_FILE}")
        path = Path(raw_path)
        if args.command == "add":
            return command_add(args, path, out, stdin)
        if args.command == "remove":
            return command_remove(args, path, out)
        return command_list(args, path, out)
    except UsageError as exc:
        err.write(f"zebra-gateway-credentials: {exc}\n")
        return 2
    except OSError as exc:
        err.write(f"zebra-gateway-credentials: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
