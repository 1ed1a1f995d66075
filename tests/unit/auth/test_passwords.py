"""Password hashes (scrypt and hmac-sha256) and the passwords printers carry."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from gateway.auth import (
    SCRYPT_LN,
    PasswordHash,
    SecretHash,
    check_password,
    decode_password_hash,
    generate_password,
)
from tests.unit.auth.helpers import FAST, PASSWORD


class TestPasswordHash:
    """Salted scrypt hashes in PHC form."""

    def test_round_trip(self):
        """A hash survives encode/decode and verifies only its own password."""
        hashed = PasswordHash.new(PASSWORD, ln=FAST)
        decoded = PasswordHash.decode(hashed.encode())
        assert decoded == hashed
        assert decoded.matches(PASSWORD)
        assert not decoded.matches(PASSWORD + "x")

    def test_default_parameters(self):
        """The default cost is N=2**14, r=8, p=1 with a 16-byte salt."""
        hashed = PasswordHash.new(PASSWORD)
        assert (hashed.ln, hashed.r, hashed.p) == (SCRYPT_LN, 8, 1)
        assert len(hashed.salt) == 16
        assert hashed.encode().startswith("$scrypt$ln=14,r=8,p=1$")

    def test_salt_is_random(self):
        """Two hashes of one password differ."""
        assert PasswordHash.new(PASSWORD, ln=FAST) != PasswordHash.new(
            PASSWORD, ln=FAST
        )

    def test_repr_hides_salt_and_digest(self):
        """``repr`` shows the parameters only."""
        hashed = PasswordHash.new(PASSWORD, ln=FAST)
        assert repr(hashed) == "PasswordHash(ln=10, r=8, p=1)"

    @pytest.mark.parametrize(
        "text",
        [
            "plain",
            "$2b$12$abcdefghijklmnopqrstuv",
            "$scrypt$ln=9,r=8,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$scrypt$ln=21,r=8,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$scrypt$ln=20,r=8,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$scrypt$ln=14,r=0,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$scrypt$ln=14,r=8,p=9$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
            "$scrypt$ln=14,r=8,p=1$c2Fs$aGFzaGhhc2hoYXNoaGFzaA",
            "$scrypt$ln=14,r=8,p=1$c2FsdHNhbHRzYWx0$aGFzaA",
            "$scrypt$ln=14,r=8,p=1$c2FsdHNhbHRzYWx0$a",
        ],
    )
    def test_decode_rejects(self, text):
        """Other schemes, weak or huge parameters and short salts are refused."""
        with pytest.raises(ValueError, match=r"\S"):
            PasswordHash.decode(text)


class TestPasswords:
    """Passwords printers can carry."""

    def test_generated_passwords_are_strong_and_valid(self):
        """Generated passwords are 32 URL-safe characters and all different."""
        passwords = {generate_password() for _ in range(50)}
        assert len(passwords) == 50
        for password in passwords:
            assert len(password) == 32
            assert check_password(password) == password

    @pytest.mark.parametrize(
        "password", ["short", "has space inside", 'quote"inside1', "back\\slash1234"]
    )
    def test_rejected_passwords(self, password):
        """Short passwords and spaces, quotes or backslashes are refused."""
        with pytest.raises(ValueError, match="password"):
            check_password(password)


class TestSecretHash:
    """HMAC-SHA-256 with a per-entry salt, for generated passwords."""

    def test_generated_password_verifies(self):
        """A generated password matches its hash; any other secret does not."""
        secret = generate_password()
        hashed = SecretHash.new(secret)
        assert hashed.matches(secret)
        assert not hashed.matches(secret + "x")
        assert not hashed.matches(secret[:-1])
        assert not hashed.matches(generate_password())
        assert not hashed.matches("")

    def test_format_is_hmac_sha256_keyed_by_the_salt(self):
        """``$hmac-sha256$<salt>$<hash>``: base64 without padding, as documented."""
        secret = generate_password()
        text = SecretHash.new(secret).encode()
        prefix, salt_text, hash_text = text.rsplit("$", 2)
        assert prefix == "$hmac-sha256"
        salt = base64.b64decode(salt_text + "==")
        assert len(salt) == 16
        expected = hmac.new(salt, secret.encode(), hashlib.sha256).digest()
        assert base64.b64decode(hash_text + "=") == expected
        assert "=" not in text

    def test_round_trip(self):
        """A hash survives encode/decode."""
        hashed = SecretHash.new(generate_password())
        assert SecretHash.decode(hashed.encode()) == hashed

    def test_salt_is_random(self):
        """Two hashes of one secret differ."""
        assert SecretHash.new(PASSWORD) != SecretHash.new(PASSWORD)

    def test_repr_hides_salt_and_digest(self):
        """``repr`` names the scheme only."""
        assert repr(SecretHash.new(PASSWORD)) == "SecretHash(hmac-sha256)"

    def test_only_scrypt_is_slow(self):
        """The authenticator moves scrypt to a thread and checks hmac-sha256 inline."""
        assert PasswordHash.slow
        assert not SecretHash.slow
        assert (PasswordHash.scheme, SecretHash.scheme) == ("scrypt", "hmac-sha256")

    @pytest.mark.parametrize(
        "text",
        [
            "$hmac-sha256$",
            "$hmac-sha256$c2FsdHNhbHRzYWx0",
            "$hmac-sha256$c2FsdHNhbHRzYWx0$aGFzaA",  # hash too short
            "$hmac-sha256$c2Fs$" + "A" * 43,  # salt too short
            "$hmac-sha256$c2FsdHNhbHRzYWx0$" + "!" * 43,
            "$hmac-sha256$c2FsdHNhbHRzYWx0$" + "A" * 43 + "$x",
            "$sha256$c2FsdHNhbHRzYWx0$" + "A" * 43,
        ],
    )
    def test_decode_rejects(self, text):
        """Malformed strings, short salts and wrong-size hashes are refused."""
        with pytest.raises(ValueError, match=r"\S"):
            SecretHash.decode(text)


class TestDecodePasswordHash:
    """The credentials file holds either scheme."""

    def test_either_scheme(self):
        """The prefix picks the scheme."""
        fast = SecretHash.new(PASSWORD)
        slow = PasswordHash.new(PASSWORD, ln=FAST)
        assert decode_password_hash(fast.encode()) == fast
        assert decode_password_hash(slow.encode()) == slow

    @pytest.mark.parametrize(
        "text", ["", "plain", "$2b$12$abcdefghijklmnopqrstuv", "$argon2id$v=19$x"]
    )
    def test_unknown_scheme(self, text):
        """Other schemes are refused, naming the two accepted forms."""
        with pytest.raises(ValueError, match=r"hmac-sha256.*scrypt"):
            decode_password_hash(text)
