"""The credentials file in memory: loading, verifying, caching."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gateway.auth import (
    CACHE_MISS,
    Credential,
    CredentialFileError,
    CredentialStore,
    PasswordHash,
    SecretHash,
    generate_password,
    parse_credential_line,
)
from tests.unit.auth.helpers import OTHER, PASSWORD, SERIAL, credential


class TestCredentialStore:
    """Loading, verifying and caching."""

    def write(self, path: Path, *items: Credential, extra: str = "") -> Path:
        path.write_text(extra + "".join(item.to_line() + "\n" for item in items))
        return path

    def test_load_skips_comments(self, tmp_path):
        """Comments and blank lines are skipped; entries are found by username."""
        path = self.write(
            tmp_path / "c.jsonl", credential(), credential(OTHER, serials=(OTHER,))
        )
        path.write_text("# printers\n\n" + path.read_text())
        store = CredentialStore.load(path)
        assert len(store) == 2
        assert {item.username for item in store} == {SERIAL, OTHER}
        assert store.get(SERIAL) is not None
        assert store.path == path

    def test_errors_name_file_and_line_not_the_hash(self, tmp_path):
        """A bad line is reported as file:line, without the line's content."""
        good = credential().to_line()
        path = tmp_path / "c.jsonl"
        path.write_text(f"{good}\n{good}\n")
        with pytest.raises(CredentialFileError, match=r"c.jsonl:2: .*line 1") as caught:
            CredentialStore.load(path)
        assert "$scrypt$" not in str(caught.value)
        path.write_text('# x\n{"username": "a"}\n')
        with pytest.raises(CredentialFileError, match=r"c.jsonl:2: "):
            CredentialStore.load(path)

    def test_missing_file(self, tmp_path):
        """A missing file is a configuration error naming it."""
        with pytest.raises(CredentialFileError, match=r"nope\.jsonl"):
            CredentialStore.load(tmp_path / "nope.jsonl")

    def test_duplicate_usernames_in_memory(self):
        """Two credentials with one username are refused."""
        with pytest.raises(ValueError, match="twice"):
            CredentialStore([credential(), credential()])

    def test_verify(self, count_scrypt):
        """The right password gives the credential; wrong or unknown give None."""
        store = CredentialStore([credential()])
        assert store.verify(SERIAL, PASSWORD) == store.get(SERIAL)
        assert store.verify(SERIAL, "wrong-password") is None
        assert store.verify("nobody", PASSWORD) is None
        assert count_scrypt == [PASSWORD]  # the rest came from the caches

    def test_valid_password_runs_scrypt_once(self, count_scrypt):
        """A reconnect storm with a valid credential costs one scrypt."""
        store = CredentialStore([credential()])
        for _ in range(100):
            assert store.verify(SERIAL, PASSWORD) is not None
        assert count_scrypt == [PASSWORD]

    def test_repeated_wrong_password_runs_scrypt_once(self, count_scrypt):
        """A printer retrying a wrong password costs one scrypt."""
        store = CredentialStore([credential()])
        for _ in range(10):
            assert store.verify(SERIAL, "wrong-password") is None
        assert count_scrypt == ["wrong-password"]
        assert store.verify(SERIAL, PASSWORD) is not None
        assert count_scrypt == ["wrong-password", PASSWORD]

    def test_failure_cache_is_bounded(self, count_scrypt):
        """Past its size, the oldest remembered failure is forgotten."""
        store = CredentialStore([credential()], failure_cache_size=2)
        for password in ("wrong-1", "wrong-2", "wrong-3", "wrong-1"):
            assert store.verify(SERIAL, password) is None
        assert count_scrypt == ["wrong-1", "wrong-2", "wrong-3", "wrong-1"]
        assert store.verify(SERIAL, "wrong-3") is None
        assert len(count_scrypt) == 4

    def test_check_cached(self):
        """Without scrypt the store answers known cases and reports a miss."""
        store = CredentialStore([credential()])
        assert store.check_cached("nobody", PASSWORD) is None
        assert store.check_cached(SERIAL, PASSWORD) is CACHE_MISS
        store.verify(SERIAL, PASSWORD)
        assert store.check_cached(SERIAL, PASSWORD) == store.get(SERIAL)
        assert store.check_cached(SERIAL, "other-password") is None

    def test_reload_only_when_changed(self, tmp_path, count_scrypt):
        """Reloading an unchanged file keeps the store; a changed one starts afresh."""
        path = self.write(tmp_path / "c.jsonl", credential())
        store = CredentialStore.load(path)
        store.verify(SERIAL, PASSWORD)
        assert not store.has_changed_on_disk()
        assert store.reload() is store
        self.write(path, credential(), credential(OTHER, serials=(OTHER,)))
        assert store.has_changed_on_disk()
        fresh = store.reload()
        assert fresh is not store
        assert len(fresh) == 2
        fresh.verify(SERIAL, PASSWORD)
        assert count_scrypt == [PASSWORD, PASSWORD]  # new store, empty caches

    def test_in_memory_store_never_reloads(self):
        """A store not read from a file has nothing to reload."""
        store = CredentialStore.parse(credential().to_line())
        assert not store.has_changed_on_disk()
        assert store.reload() is store

    def test_verify_is_thread_safe(self):
        """Concurrent verifications from threads agree."""
        store = CredentialStore([credential()])
        results: list[Credential | None] = []
        lock = threading.Lock()

        def work(password: str) -> None:
            outcome = store.verify(SERIAL, password)
            with lock:
                results.append(outcome)

        threads = [
            threading.Thread(target=work, args=(PASSWORD if i % 2 else f"bad-{i}",))
            for i in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(result is not None for result in results) == 4


#: A line written by ``zebra-gateway-credentials`` before the fast scheme existed
#: (scrypt at the default cost), for the password ``PASSWORD``.
OLD_SCRYPT_LINE = (
    '{"username": "50J161000398", "password_hash": "$scrypt$ln=14,r=8,p=1'
    '$zQS6E2oOd6mT1PtiP6XpoA$8bTqypprs0Gu4USCdmZPQF7Y2WrhJubWUL6F8pm0g4U", '
    '"serials": ["50J161000398"], "created": "2025-01-01T00:00:00Z"}'
)


class TestHashSchemes:
    """Generated passwords check fast; old and chosen ones keep scrypt."""

    def fast(self, username: str, secret: str) -> Credential:
        return Credential(
            username=username,
            password_hash=SecretHash.new(secret),
            serials=frozenset({username}),
        )

    def test_generated_credential_verifies_without_scrypt(self, count_scrypt):
        """An hmac-sha256 entry verifies its secret and refuses others, no scrypt."""
        secret = generate_password()
        store = CredentialStore([self.fast(SERIAL, secret)])
        assert store.check_cached(SERIAL, secret) is CACHE_MISS
        assert store.verify(SERIAL, secret) == store.get(SERIAL)
        assert store.verify(SERIAL, generate_password()) is None
        assert store.verify(SERIAL, secret + "x") is None
        assert store.verify(SERIAL, secret) is not None
        assert count_scrypt == []

    def test_old_scrypt_entry_still_verifies(self, count_scrypt):
        """A file written before the fast scheme loads and verifies unchanged."""
        store = CredentialStore.parse(OLD_SCRYPT_LINE)
        old = store.get(SERIAL)
        assert old is not None
        assert isinstance(old.password_hash, PasswordHash)
        assert store.verify(SERIAL, PASSWORD) == old
        assert store.verify(SERIAL, "wrong-password") is None
        assert count_scrypt == [PASSWORD]  # then the cache knows any other is wrong
        assert old.to_line() == OLD_SCRYPT_LINE

    def test_file_with_both_schemes_round_trips(self, tmp_path):
        """Lines of either scheme read back equal and are written back unchanged."""
        secret = generate_password()
        text = (
            "# site A\n" + OLD_SCRYPT_LINE + "\n" + self.fast(OTHER, secret).to_line()
        )
        path = tmp_path / "c.jsonl"
        path.write_text(text + "\n")
        store = CredentialStore.load(path)
        schemes = [item.password_hash.scheme for item in store]
        assert schemes == ["scrypt", "hmac-sha256"]
        assert [item.to_line() for item in store] == text.splitlines()[1:]
        assert all(parse_credential_line(item.to_line()) == item for item in store)
        assert store.verify(OTHER, secret) is not None
        assert store.verify(OTHER, PASSWORD) is None
