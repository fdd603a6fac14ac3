"""The [discord] section and [discord.bridges] (issue 8): ids are digits, URLs have a scheme,
the token may come from the environment, and every message names the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from listserv.config import ConfigError, load

GUILD = "123456789012345678"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "commonroom.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_discord_section_and_bridges_load(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, f'[discord]\nguild_id = "{GUILD}"\nmoderator_role = "Mods"\n'
                               'api_base = "http://127.0.0.1:9/api/v10"\ngateway_url = "ws://127.0.0.1:9/"\n'
                               '[discord.bridges]\ndemo = "42"\nother = 43\n'), env={})
    assert cfg.discord.guild_id == GUILD
    assert cfg.discord.moderator_role == "Mods"
    assert dict(cfg.bridges) == {"demo": "42", "other": "43"}  # a bare TOML integer is fine too


def test_token_comes_from_the_environment(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, f'[discord]\nguild_id = "{GUILD}"\n'),
               env={"COMMONROOM_DISCORD_TOKEN": "secret-token"})
    assert cfg.discord.token == "secret-token"


def test_no_discord_section_means_no_bot(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, "[server]\n"), env={})
    assert cfg.discord.token == "" and dict(cfg.bridges) == {}


@pytest.mark.parametrize("text,named", [
    ('[discord]\nguild_id = "general"\n', "[discord] guild_id must be a Discord id"),
    ('[discord]\nguild_id = "0"\n', "[discord] guild_id must be a Discord id"),
    ('[discord]\ndigest_channel_id = "-5"\n', "[discord] digest_channel_id must be a Discord id"),
    ('[discord]\napi_base = "127.0.0.1:9"\n', "[discord] api_base must start with http://"),
    ('[discord]\ngateway_url = "http://x/"\n', "[discord] gateway_url must start with ws://"),
    ('[discord]\ntoken = "t"\n', "[discord] guild_id must be set when a token is"),
    ('[discord]\nchannel = "1"\n', "[discord] channel is not a known key"),
    ('[discord.bridges]\ndemo = "#general"\n', "[discord.bridges] demo must be a Discord channel id"),
    ('[discord]\nbridges = "demo"\n', "[discord.bridges] must be a table"),
])
def test_bad_discord_keys_are_named(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, text), env={})
    assert named in str(err.value)
