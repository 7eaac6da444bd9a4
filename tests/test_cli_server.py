"""The node-setup commands: init (idempotent, --json), migrate, config (secrets masked, bad settings refused)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from loomwork.cli import main


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"LOOMWORK_DATA_DIR": str(tmp_path / "data"), "LOOMWORK_CONFIG": str(tmp_path / "loomwork.toml")}


def test_init_is_idempotent_and_prints_a_new_key_each_time(env: dict[str, str]) -> None:
    runner = CliRunner()
    args = ["init", "--email", "Boss@Example.com", "--password", "long-enough-pw", "--workspace", "acme", "--json"]
    first = runner.invoke(main, args, env=env)
    assert first.exit_code == 0, first.output
    again = runner.invoke(main, args, env=env)
    assert again.exit_code == 0, again.output
    one, two = json.loads(first.output), json.loads(again.output)
    assert one["email"] == two["email"] == "boss@example.com"
    assert one["workspace"] == "acme"
    assert one["api_key"].startswith("lwk_") and one["api_key"] != two["api_key"]
    plain = runner.invoke(main, args[:-1], env=env)
    assert plain.exit_code == 0 and "API key" in plain.output


def test_init_refuses_bad_input_clearly(env: dict[str, str]) -> None:
    runner = CliRunner()
    short = runner.invoke(main, ["init", "--email", "a@b.c", "--password", "short", "--workspace", "acme"], env=env)
    assert short.exit_code == 1 and "8 characters" in short.output
    slug = runner.invoke(
        main, ["init", "--email", "a@b.c", "--password", "long-enough-pw", "--workspace", "Bad Slug"], env=env
    )
    assert slug.exit_code == 1 and "slug" in slug.output
    missing = runner.invoke(main, ["init", "--email", "a@b.c"], env=env)
    assert missing.exit_code == 2


def test_migrate_then_up_to_date(env: dict[str, str]) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["migrate"], env=env)
    assert first.exit_code == 0 and "0001_initial" in first.output and "0002_identity" in first.output
    second = runner.invoke(main, ["migrate"], env=env)
    assert second.exit_code == 0 and "up to date" in second.output


def test_config_masks_secrets_and_reads_toml_then_env(env: dict[str, str], tmp_path: Path) -> None:
    Path(env["LOOMWORK_CONFIG"]).write_text('port = 9000\nworkers = 3\nsecret_key = "from-the-file"\n')
    runner = CliRunner()
    extra = {**env, "LOOMWORK_WORKERS": "2", "LOOMWORK_DATABASE_URL": "postgresql://app:hunter2@db/prod"}
    result = runner.invoke(main, ["config", "--json"], env=extra)
    assert result.exit_code == 0, result.output
    values = json.loads(result.output)
    assert values["port"] == 9000 and values["workers"] == 2
    assert values["secret_key"] == "****"
    assert values["database_url"] == "postgresql://app:****@db/prod"
    assert "hunter2" not in result.output and "from-the-file" not in result.output


@pytest.mark.parametrize(
    ("toml", "message"),
    [("port = 'eighty'\n", "port"), ("colour = 1\n", "unknown setting"), ("port = \n", "not valid TOML")],
)
def test_bad_settings_stop_with_a_message(env: dict[str, str], toml: str, message: str) -> None:
    Path(env["LOOMWORK_CONFIG"]).write_text(toml)
    result = CliRunner().invoke(main, ["config"], env=env)
    assert result.exit_code == 1
    assert message in result.output


def test_reseal_moves_secrets_to_a_new_key(env: dict[str, str], tmp_path: Path) -> None:
    import asyncio

    from loomwork.server.runner import build_engine
    from loomwork.service.accounts import Accounts
    from loomwork.service.datasources import Datasources
    from loomwork.service.effects import secret_box
    from loomwork.settings import Settings
    from loomwork.store import datasources as rows

    def settings(key: str, previous: str | None = None) -> Settings:
        return Settings(data_dir=tmp_path / "data", secret_key=key, previous_secret_keys=previous)

    async def create_with_old_key() -> None:
        engine = build_engine(settings("old-key"), execute=False)
        async with engine:
            created = await Accounts(engine).bootstrap("a@b.test", "long-enough-pw", "acme")
            access = await Accounts(engine).access(await Accounts(engine).authenticate(created.secret), "acme")
            await Datasources(engine).create(access, "cache", "redis", {}, {"url": "redis://:pw-123@h:6379/0"})

    async def open_with(key: str, previous: str | None = None) -> str:
        engine = build_engine(settings(key, previous), execute=False)
        async with engine:
            row = await engine.db.read(rows.get_datasource, "acme", "cache")
            assert row.sealed_secrets is not None
            return secret_box(engine).unseal(row.sealed_secrets).decode()

    asyncio.run(create_with_old_key())
    assert "pw-123" in asyncio.run(open_with("new-key", previous="old-key"))
    result = CliRunner().invoke(
        main,
        ["reseal"],
        env={**env, "LOOMWORK_SECRET_KEY": "new-key", "LOOMWORK_PREVIOUS_SECRET_KEYS": "old-key"},
    )
    assert result.exit_code == 0, result.output
    assert "1 datasource(s)" in result.output
    assert "pw-123" in asyncio.run(open_with("new-key"))  # no longer needs the old key
