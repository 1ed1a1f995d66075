"""deploy/nginx/weblink.conf says what printers need from a proxy (weblink-protocol.md
§1.2, §1.4, §7), and the test rendering changes nothing else in it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.nginx import (
    WEBLINK_CONF,
    WEBLINK_PATH,
    Directive,
    find_directives,
    parse_nginx_conf,
    render_weblink_conf,
)

#: Printers ping about every 60 s (§7); a proxy timeout must leave room for a miss.
MIN_IDLE_TIMEOUT = 120.0
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def seconds(value: str) -> float:
    """An nginx time value ("300s", "5m", "300") in seconds."""
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", value)
    assert match is not None, f"not an nginx time: {value!r}"
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


@pytest.fixture(scope="module")
def conf() -> list[Directive]:
    return parse_nginx_conf(WEBLINK_CONF.read_text())


def server(conf: list[Directive]) -> Directive:
    (found,) = find_directives(conf, "server")
    return found


def weblink_location(conf: list[Directive]) -> Directive:
    return server(conf).one("location", "=", WEBLINK_PATH)


def effective(location: Directive, srv: Directive, name: str) -> list[str]:
    """A directive's arguments as nginx applies them: the location's, else the server's."""
    found = location.find(name) or srv.find(name)
    assert len(found) == 1, f"{name}: {len(found)} definitions"
    return found[0].args


def test_weblink_location_proxies_websocket_upgrades(conf):
    """The WebLink location speaks HTTP/1.1 to the gateways and passes Upgrade/Connection."""
    location = weblink_location(conf)
    assert location.one("proxy_pass").args == ["http://zebra_gateways"]
    assert location.one("proxy_http_version").args == ["1.1"]
    headers = {d.args[0].lower(): d.args[1:] for d in location.find("proxy_set_header")}
    assert headers["upgrade"] == ["$http_upgrade"]
    assert headers["connection"] == ["$connection_upgrade"]
    (upgrade_map,) = find_directives(
        conf, "map", "$http_upgrade", "$connection_upgrade"
    )
    assert upgrade_map.one("default").args == ["upgrade"]
    assert upgrade_map.one("").args == ["close"]


def test_proxy_timeouts_outlast_the_printers_60_second_ping(conf):
    """Idle printers are not dropped: read, send and client send timeouts are at least 120 s."""
    srv, location = server(conf), weblink_location(conf)
    for name in ("proxy_read_timeout", "proxy_send_timeout", "send_timeout"):
        (value,) = effective(location, srv, name)
        assert seconds(value) >= MIN_IDLE_TIMEOUT, f"{name} {value}"


def test_handshake_headers_reach_the_printer_unchanged(conf):
    """Nothing hides or rewrites Sec-WebSocket-Protocol or Content-Length on the 101."""
    touched = {"sec-websocket-protocol", "content-length"}
    everything = [conf]
    while everything:
        directives = everything.pop()
        for directive in directives:
            if directive.block is not None:
                everything.append(directive.block)
            if directive.name in (
                "proxy_hide_header",
                "add_header",
                "more_clear_headers",
            ):
                assert directive.args[0].lower() not in touched, directive
            if directive.name == "proxy_set_header":
                assert directive.args[0].lower() != "sec-websocket-protocol", directive
    assert find_directives(weblink_location(conf).block or [], "proxy_buffering") == [
        Directive("proxy_buffering", ["off"])
    ]


def test_client_address_is_forwarded_to_the_gateways(conf):
    """Gateways get the printer's address in X-Real-IP and X-Forwarded-For."""
    for location in (
        weblink_location(conf),
        server(conf).one("location", "=", "/healthz"),
    ):
        headers = {
            d.args[0].lower(): d.args[1:] for d in location.find("proxy_set_header")
        }
        assert headers["x-real-ip"] == ["$remote_addr"]
        assert headers["x-forwarded-for"] == ["$proxy_add_x_forwarded_for"]


def test_tls_on_443_with_tls_1_2_or_newer_only(conf):
    """nginx terminates TLS on 443 (HTTP/1.1, no http2) with TLS 1.2 and 1.3 only."""
    srv = server(conf)
    assert srv.one("listen").args == ["443", "ssl"]
    protocols = set(srv.one("ssl_protocols").args)
    assert "TLSv1.2" in protocols
    assert protocols <= {"TLSv1.2", "TLSv1.3"}
    assert srv.find("ssl_certificate")
    assert srv.find("ssl_certificate_key")


def test_gateways_are_balanced_by_open_connections(conf):
    """The upstream of gateway replicas uses least_conn and lists servers."""
    (upstream,) = find_directives(conf, "upstream", "zebra_gateways")
    assert upstream.find("least_conn")
    assert upstream.find("server")


def test_healthz_passes_through_to_a_gateway(conf):
    """https://<proxy>/healthz is answered by a gateway replica."""
    healthz = server(conf).one("location", "=", "/healthz")
    assert healthz.one("proxy_pass").args == ["http://zebra_gateways"]


def test_rendering_for_tests_changes_only_upstreams_listen_and_certificates(conf):
    """The test nginx runs the shipped file with only servers, port and cert paths swapped."""
    rendered = parse_nginx_conf(
        render_weblink_conf(
            WEBLINK_CONF.read_text(),
            upstreams=["127.0.0.1:18081", "127.0.0.1:18082"],
            listen="127.0.0.1:18443",
            certificate=Path("/tmp/a b/tls.crt"),
            certificate_key=Path("/tmp/a b/tls.key"),
        )
    )
    (upstream,) = find_directives(rendered, "upstream", "zebra_gateways")
    assert [d.args for d in upstream.find("server")] == [
        ["127.0.0.1:18081"],
        ["127.0.0.1:18082"],
    ]
    srv = server(rendered)
    assert srv.one("listen").args == ["127.0.0.1:18443", "ssl"]
    assert srv.one("ssl_certificate").args == ["/tmp/a b/tls.crt"]
    assert srv.one("ssl_certificate_key").args == ["/tmp/a b/tls.key"]
    swapped = {"server", "listen", "ssl_certificate", "ssl_certificate_key"}

    def rest(directives: list[Directive]) -> list[tuple[str, list[str], object]]:
        return [
            (d.name, d.args, None if d.block is None else rest(d.block))
            for d in directives
            if d.block is not None or d.name not in swapped
        ]

    assert rest(rendered) == rest(conf)


def test_rendering_fails_when_the_shipped_file_loses_a_templated_line():
    """A shipped config without `listen 443 ssl;` is reported, not silently tested as is."""
    source = WEBLINK_CONF.read_text().replace("listen 443 ssl;", "listen 8443 ssl;")
    with pytest.raises(ValueError, match="expected exactly one match"):
        render_weblink_conf(
            source,
            upstreams=["127.0.0.1:1"],
            listen="127.0.0.1:2",
            certificate=Path("c"),
            certificate_key=Path("k"),
        )
