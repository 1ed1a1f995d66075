"""Without nginx, the nginx tests skip on a developer's machine and fail under CI."""

from __future__ import annotations

import shutil

import pytest

from tests.support import nginx


@pytest.fixture
def no_nginx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("ZEBRA_BROKER_REQUIRE_NGINX", raising=False)


@pytest.mark.usefixtures("no_nginx")
def test_missing_nginx_skips_locally_naming_the_install_script():
    """Locally, a machine without nginx skips the proxy tests and says to run scripts/nginx.sh."""
    with pytest.raises(pytest.skip.Exception, match=r"scripts/nginx\.sh"):
        nginx.nginx_binary()


@pytest.mark.usefixtures("no_nginx")
def test_missing_nginx_fails_under_ci(monkeypatch: pytest.MonkeyPatch):
    """With CI=true a machine without nginx fails the proxy tests instead of skipping them."""
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        nginx.nginx_binary()
