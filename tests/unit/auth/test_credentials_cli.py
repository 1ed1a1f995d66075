"""``zebra-gateway-credentials add | remove | list``."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import pytest

from gateway import credentials_cli
from gateway.auth import CredentialStore, SecretHash, check_password
from tests.unit.auth.helpers import OTHER, PASSWORD, SERIAL, credential


class TestCredentialsCli:
    """``zebra-gateway-credentials add | remove | list``."""

    def run(
        self, *argv: str, stdin: str = "", env_file: Path | None = None
    ) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = credentials_cli.main(
            list(argv), stdin=io.StringIO(stdin), stdout=out, stderr=err
        )
        return code, out.getvalue(), err.getvalue()

    def test_add_creates_the_file_and_its_folder(self, tmp_path):
        """A first ``add`` into a folder that does not exist yet creates both."""
        path = tmp_path / "new" / "folder" / "c.jsonl"
        code, _, err = self.run("--file", str(path), "add", SERIAL)
        assert code == 0, err
        assert json.loads(path.read_text())["username"] == SERIAL

    def test_add_generates_password_and_prints_sgd(self, tmp_path, count_scrypt):
        """``add`` stores a fast hash, prints the password once and the SGD lines."""
        path = tmp_path / "c.jsonl"
        code, out, _ = self.run(
            "--file", str(path), "add", SERIAL, "--server-name", "print.example.com"
        )
        assert code == 0
        password = next(
            line.split(": ", 1)[1]
            for line in out.splitlines()
            if line.startswith("password: ")
        )
        assert check_password(password) == password
        assert len(password) == 32  # 192 random bits
        assert "keeps only its hmac-sha256 hash" in out
        assert (
            '! U1 setvar "weblink.ip.conn1.authentication.add" '
            f'"print.example.com {SERIAL} {password}"' in out
        )
        assert '! U1 do "device.reset" ""' in out
        value = f"print.example.com {SERIAL} {password}"
        assert "{}" + json.dumps(
            {"weblink.ip.conn1.authentication.add": value}, separators=(",", ":")
        ) in out.replace("  {}", "{}")
        assert password not in path.read_text()
        line = json.loads(path.read_text())
        assert line["password_hash"].startswith("$hmac-sha256$")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        store = CredentialStore.load(path)
        found = store.verify(SERIAL, password)
        assert found is not None
        assert found.serials == {SERIAL}
        assert store.verify(SERIAL, password[:-1]) is None
        assert count_scrypt == []

    def test_add_from_stdin_with_username_and_serials(self, tmp_path):
        """A password from stdin, a username and several serials are stored."""
        path = tmp_path / "c.jsonl"
        code, out, _ = self.run(
            "--file",
            str(path),
            "add",
            SERIAL,
            OTHER,
            "--username",
            "line-3",
            "--password-stdin",
            "--conn",
            "2",
            "--comment",
            "hall B",
            stdin=PASSWORD + "\n",
        )
        assert code == 0
        assert "weblink.ip.conn2.authentication.add" in out
        assert "<server-name>" in out
        assert "keeps only its scrypt hash" in out
        assert '"$scrypt$ln=14,r=8,p=1$' in path.read_text()  # chosen: slow hash
        found = CredentialStore.load(path).verify("line-3", PASSWORD)
        assert found is not None
        assert found.serials == {SERIAL, OTHER}
        assert found.comment == "hall B"

    def test_fleet(self, tmp_path):
        """A fleet credential needs '*', --fleet and --username."""
        path = str(tmp_path / "c.jsonl")
        assert self.run("--file", path, "add", "*")[0] == 2
        assert self.run("--file", path, "add", "*", "--fleet")[0] == 2
        code, _, err = self.run(
            "--file", path, "add", SERIAL, "--fleet", "--username", "x"
        )
        assert code == 2
        assert "'*' as the only serial" in err
        code, out, _ = self.run(
            "--file", path, "add", "*", "--fleet", "--username", "a"
        )
        assert code == 0
        assert "every printer" in out
        only = next(iter(CredentialStore.load(path)))
        assert only.fleet

    @pytest.mark.parametrize(
        ("argv", "stdin", "message"),
        [
            (["add", "50J.1"], "", "invalid serial"),
            (["add", SERIAL, "--username", "a:b"], "", "invalid username"),
            (["add", SERIAL, "--password-stdin"], "short\n", "password"),
            (["remove", "nobody"], "", "no credential"),
        ],
    )
    def test_usage_errors(self, tmp_path, argv, stdin, message):
        """Bad input exits 2 with a one-line message."""
        code, _, err = self.run("--file", str(tmp_path / "c.jsonl"), *argv, stdin=stdin)
        assert code == 2
        assert message in err

    def test_add_existing_needs_replace(self, tmp_path, count_scrypt):
        """Adding a username twice fails unless --replace, which rotates it."""
        path = str(tmp_path / "c.jsonl")
        self.run("--file", path, "add", SERIAL, "--password-stdin", stdin=PASSWORD)
        code, _, err = self.run("--file", path, "add", SERIAL)
        assert code == 2
        assert "--replace" in err
        new = "another-password-1"
        code, out, _ = self.run(
            "--file", path, "add", SERIAL, "--replace", "--password-stdin", stdin=new
        )
        assert code == 0
        assert out.startswith("replaced")
        store = CredentialStore.load(path)
        assert len(store) == 1
        assert store.verify(SERIAL, new) is not None
        assert store.verify(SERIAL, PASSWORD) is None

    def test_remove_keeps_other_lines(self, tmp_path):
        """``remove`` drops one entry and keeps comments and the others."""
        path = tmp_path / "c.jsonl"
        path.write_text("# site A\n" + credential(OTHER, serials=(OTHER,)).to_line())
        self.run("--file", str(path), "add", SERIAL)
        code, out, _ = self.run("--file", str(path), "remove", OTHER)
        assert code == 0
        assert "removed" in out
        assert path.read_text().startswith("# site A\n")
        assert [item.username for item in CredentialStore.load(path)] == [SERIAL]

    def test_list_never_shows_hashes(self, tmp_path):
        """``list`` shows usernames and serials, never hashes."""
        path = tmp_path / "c.jsonl"
        assert self.run("--file", str(path), "list")[1].startswith("no credentials")
        self.run("--file", str(path), "add", SERIAL, "--comment", "hall B")
        code, out, _ = self.run("--file", str(path), "list")
        assert code == 0
        assert out.startswith(f"{SERIAL}\t{SERIAL}\thmac-sha256\t")
        assert "# hall B" in out
        assert "$hmac-sha256$" not in out
        rows = json.loads(self.run("--file", str(path), "list", "--json")[1])
        assert rows[0]["username"] == SERIAL
        assert rows[0]["scheme"] == "hmac-sha256"
        assert "$hmac-sha256$" not in json.dumps(rows)
        assert "$" not in json.dumps(rows)

    def test_broken_file_is_not_rewritten(self, tmp_path):
        """A file with a bad line is left alone."""
        path = tmp_path / "c.jsonl"
        path.write_text("{broken\n")
        code, _, err = self.run("--file", str(path), "add", SERIAL)
        assert code == 2
        assert "c.jsonl:1" in err
        assert path.read_text() == "{broken\n"

    def test_file_from_environment(self, tmp_path, monkeypatch):
        """Without --file the gateway's ZEBRA_BROKER_CREDENTIALS_FILE is used."""
        code, _, err = self.run("list")
        assert code == 2
        assert "ZEBRA_BROKER_CREDENTIALS_FILE" in err
        path = tmp_path / "env.jsonl"
        monkeypatch.setenv("ZEBRA_BROKER_CREDENTIALS_FILE", str(path))
        assert self.run("add", SERIAL)[0] == 0
        assert os.path.exists(path)

    def test_unwritable_directory(self, tmp_path):
        """An I/O failure exits 1 with the error."""
        blocker = tmp_path / "file"
        blocker.write_text("")
        code, _, err = self.run("--file", str(blocker / "c.jsonl"), "add", SERIAL)
        assert code == 1
        assert "zebra-gateway-credentials:" in err

    def test_replace_moves_a_scrypt_entry_to_the_fast_scheme(self, tmp_path):
        """Rotating a scrypt credential with a generated password makes it fast."""
        path = tmp_path / "c.jsonl"
        path.write_text(credential().to_line() + "\n")
        code, out, _ = self.run("--file", str(path), "add", SERIAL, "--replace")
        assert code == 0
        password = out.split("password: ", 1)[1].split("\n", 1)[0]
        found = CredentialStore.load(path).get(SERIAL)
        assert found is not None
        assert isinstance(found.password_hash, SecretHash)
        assert found.password_hash.matches(password)
        assert not found.password_hash.matches(PASSWORD)
