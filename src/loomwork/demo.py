"""``loomwork demo``: a workspace with the example workflows deployed, an admin login and an API key.

Idempotent: a second start finds the same admin (its password kept in ``data_dir/demo-login.json``, mode
0600, for the demo only) and redeploys the examples only if their files changed.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .connectors.registry import KINDS
from .datasources import read_datasources_file, start_mail_sinks
from .engine import Engine
from .errors import Conflict
from .folder import read_folder
from .mailsink import MailSink
from .service.accounts import Accounts
from .service.effects import secret_box
from .store import datasources as datasource_rows
from .store import identity
from .store import workflows as drafts

DEMO_EMAIL = "admin@example.com"
DEMO_WORKSPACE = "demo"


@dataclass
class DemoLogin:
    email: str
    password: str
    workspace: str
    api_key: str = ""
    workflows: list[str] = field(default_factory=list)


def demo_password(data_dir: Path) -> str:
    path = data_dir / "demo-login.json"
    if path.exists():
        return str(json.loads(path.read_text(encoding="utf-8"))["password"])
    password = secrets.token_urlsafe(12)
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"email": DEMO_EMAIL, "password": password}, handle)
    return password


def example_folders(examples: Path) -> dict[str, dict[str, str]]:
    """Each sub-folder with a ``main.py``: name → files."""
    if not examples.is_dir():
        return {}
    return {p.name: read_folder(p) for p in sorted(examples.iterdir()) if (p / "main.py").is_file()}


def example_datasources(
    examples: Path, data_dir: Path
) -> tuple[dict[str, tuple[str, dict[str, Any], dict[str, str]]], list[MailSink]]:
    """``examples/datasources.toml`` as name → (kind, config, secrets), SQLite files in the data dir, and the
    mail sinks started for its ``sink = true`` smtp datasources (messages in ``data_dir/mail``)."""
    path = examples / "datasources.toml"
    if not path.is_file():
        return {}, []
    table = read_datasources_file(path)
    sinks = start_mail_sinks(table, data_dir / "mail")
    out: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {}
    for name, entry in table.items():
        kind = str(entry["kind"])
        secret_names = {f.name for f in KINDS[kind].secrets} if kind in KINDS else set()
        config = {k: v for k, v in entry.items() if k != "kind" and k not in secret_names}
        secrets = {k: str(v) for k, v in entry.items() if k in secret_names}
        if isinstance(config.get("path"), str):
            config["path"] = str((data_dir / Path(config["path"]).name).resolve())
        if isinstance(config.get("create_from"), str):
            config["create_from"] = str((path.parent / config["create_from"]).resolve())
        out[name] = (kind, config, secrets)
    return out, sinks


async def load_demo(
    engine: Engine,
    examples: dict[str, dict[str, str]],
    login: DemoLogin,
    sources: dict[str, tuple[str, dict[str, Any], dict[str, str]]] | None = None,
) -> None:
    accounts = Accounts(engine)
    created = await accounts.bootstrap(login.email, login.password, login.workspace, key_name="demo")
    login.api_key = created.secret
    # The examples ask the "finance" group; the admin is in it so the inbox shows the requests.
    await engine.db.write(identity.set_group_members, login.workspace, "finance", [login.email], create=True)
    box = secret_box(engine)
    for name, (kind, config, given) in (sources or {}).items():
        sealed = box.seal(json.dumps(given).encode()) if given else None
        if await engine.db.read(datasource_rows.find_datasource, login.workspace, name) is None:
            await engine.db.write(
                datasource_rows.create_datasource, login.workspace, name, kind, config, sealed, list(given)
            )
        else:  # a mail sink may have moved to another port since the last start
            await engine.db.write(
                datasource_rows.update_datasource,
                login.workspace,
                name,
                config=config,
                sealed_secrets=sealed,
                secret_names=list(given),
            )
    for name, files in examples.items():
        try:
            await engine.db.write(drafts.create_workflow, login.workspace, name, "", files)
        except Conflict:
            await engine.db.write(drafts.update_workflow, login.workspace, name, files=files)
        await engine.deploy(name, files, workspace=login.workspace)
        login.workflows.append(name)
