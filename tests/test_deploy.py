"""The deployment files in deploy/, taken as a system administrator takes them: the systemd
unit's own command lines are run, and the guide and Postfix snippet are read for what they
promise."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from listserv.cli import main
from tests.harness import write_config

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
UNIT = DEPLOY / "commonroom.service"
GUIDE = DEPLOY / "README.md"
UNIT_CONFIG = "/etc/commonroom/commonroom.toml"
UNIT_BINARY = "/opt/commonroom/.venv/bin/commonroom"


def unit_settings() -> list[tuple[str, str]]:
    """(key, value) for every setting of the unit, in order (comments and sections left out)."""
    out = []
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.append((key, value))
    return out


def unit_command(key: str, config: Path) -> list[str]:
    """The unit's ``key`` command line with the installed paths replaced by this checkout's."""
    [line] = [v for k, v in unit_settings() if k == key]
    argv = shlex.split(line.replace(UNIT_CONFIG, str(config)))
    assert argv[0] == UNIT_BINARY, f"{key} runs {argv[0]}, not the binary the guide installs"
    return [str(Path(sys.executable).parent / "commonroom"), *argv[1:]]


def unit_environment(config: Path) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in unit_settings():
        if key == "Environment":
            name, _, val = value.partition("=")
            env[name] = val.replace(UNIT_CONFIG, str(config))
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unit_command_lines_start_the_server(tmp_path: Path, db_url: str) -> None:
    """Issue 7.26: ``serve --config PATH`` (the option after the subcommand) used to fail with
    "No such option", so the unit restarted forever. Run ExecStartPre, then ExecStart until
    the SMTP port and the web pages answer, then stop it as systemd does (SIGTERM)."""
    port, web_port = free_port(), free_port()
    config = write_config(tmp_path, db_url, "")
    config.write_text(config.read_text().replace("smtp_port = 8025", f"smtp_port = {port}"))
    env = unit_environment(config) | {"COMMONROOM_SERVER_WEB_PORT": str(web_port)}
    pre = subprocess.run(unit_command("ExecStartPre", config), cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert pre.returncode == 0, pre.stderr
    proc = subprocess.Popen(unit_command("ExecStart", config), cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"serve exited: {proc.communicate()[0]}"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    assert s.recv(100).startswith(b"220 ")
                break
            except OSError:
                assert time.monotonic() < deadline, "serve did not start listening"
                time.sleep(0.1)
        health = httpx.get(f"http://127.0.0.1:{web_port}/healthz", timeout=10)
        assert (health.status_code, health.text.splitlines()[0]) == (200, "store: ok"), health.text
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0]
        assert proc.returncode == 0, output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize("args", [
    ["serve", "--config", "{c}"],
    ["lists", "--config", "{c}", "list"],
    ["lists", "list", "--config", "{c}"],
    ["--config", "/nonexistent.toml", "lists", "list", "--config={c}"],
    ["digest", "preview", "--help"],
])
def test_config_option_is_accepted_after_any_subcommand(tmp_path: Path, args: list[str]) -> None:
    """A person types ``--config`` after the command too; the last one given wins. A config
    file that does not exist shows the option was read (the command needs the config)."""
    missing = tmp_path / "missing.toml"
    result = CliRunner().invoke(main, [a.format(c=missing) for a in args])
    if "--help" in args:
        assert result.exit_code == 0 and "--config PATH" in result.output
        return
    assert result.exit_code == 1, result.output
    assert f"config file {missing} does not exist" in result.output


def test_unit_promises_only_what_serve_runs() -> None:
    """Issue 7.29: the Description named web pages and a Discord bot that serve does not run."""
    [description] = [v for k, v in unit_settings() if k == "Description"]
    serve_help = CliRunner().invoke(main, ["serve", "--help"]).output.lower()
    for door in ("web", "discord"):
        if door in description.lower():
            assert door in serve_help, f"the unit's Description names {door!r}; serve does not"


def test_unit_documentation_is_installed_by_the_guide() -> None:
    """Issue 7.29: Documentation= pointed at a file the install steps never put there."""
    urls = [u for k, v in unit_settings() if k == "Documentation" for u in v.split()]
    assert urls
    guide = GUIDE.read_text(encoding="utf-8")
    for url in urls:
        if url.startswith("file://"):
            path = url.removeprefix("file://")
            # The install steps (shell blocks) must put the file there.
            assert re.search(rf"^sudo install .*{re.escape(path)}\s*$", guide, re.M), path
        else:
            assert url.startswith(("https://", "man:")), url


def test_postfix_checks_list_recipients_before_any_permit() -> None:
    """Issue 7.28: permit_mynetworks first let clients in mynetworks skip the recipient check,
    so unknown list addresses were accepted from them and bounced later (backscatter)."""
    snippet = (DEPLOY / "postfix" / "main.cf.snippet").read_text(encoding="utf-8")
    match = re.search(r"^smtpd_recipient_restrictions\s*=(.*?)(?=^\S|\Z)", snippet, re.M | re.S)
    assert match
    restrictions = [r for r in re.split(r"[\s,]+", match.group(1)) if r]
    check = restrictions.index("check_recipient_access")
    permits = [i for i, r in enumerate(restrictions) if r.startswith("permit")]
    assert all(check < i for i in permits), restrictions


def test_guide_says_the_mail_name_is_the_hosts_own() -> None:
    """Issue 7.27: Debian's installer makes the mail name myorigin too; given the lists'
    domain, the host's own mail went to Commonroom and its bounce was lost."""
    guide = GUIDE.read_text(encoding="utf-8")
    assert "postconf myorigin mydestination" in guide and "/etc/mailname" in guide


def test_the_reverse_proxy_example_reaches_the_configured_web_port() -> None:
    """deploy/nginx/commonroom.conf must proxy the public address (web_base_url) to where the
    example configuration serves the pages, and pass the client's address on."""
    import tomllib

    example = tomllib.loads((DEPLOY / "commonroom.example.toml").read_text(encoding="utf-8"))
    server = example["server"]
    nginx = (DEPLOY / "nginx" / "commonroom.conf").read_text(encoding="utf-8")
    host = server["web_base_url"].removeprefix("https://").rstrip("/")
    assert re.search(rf"server_name {re.escape(host)};", nginx)
    assert f"proxy_pass http://{server['web_host']}:{server['web_port']};" in nginx
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in nginx
    assert "nginx/commonroom.conf" in GUIDE.read_text(encoding="utf-8")
