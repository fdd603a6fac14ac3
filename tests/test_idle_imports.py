"""What an idle ``commonroom serve`` loads: the modules for its doors, not those only a
command, a migration or a feature in use needs (bench/idle.py measures the memory)."""

from __future__ import annotations

import json
import subprocess
import sys

from listserv import schema_version
from listserv.store import MIGRATIONS, Store

# What the server process imports by the time it serves: the CLI (every command group is
# registered), the App, and what App.start imports.
_SERVE_IMPORTS = """
import json, sys
import listserv.cli, listserv.serve, listserv.web.app, digests.send, digests.schedule
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def test_serving_loads_neither_alembic_nor_icalendar() -> None:
    out = subprocess.run([sys.executable, "-c", _SERVE_IMPORTS], check=True,
                         capture_output=True, text=True).stdout
    loaded = set(json.loads(out))
    assert "listserv" in loaded and "sqlalchemy" in loaded  # it did import the server
    assert {"alembic", "mako", "icalendar"} & loaded == set()


def test_head_revision_is_alembics() -> None:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert schema_version.head(MIGRATIONS / "versions") == \
        ScriptDirectory.from_config(cfg).get_current_head()


def test_head_is_the_revision_nothing_follows(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    for name, rev, down in [("a.py", "0002", "'0001'"), ("b.py", "0001", "None"),
                            ("c.py", "0003", '"0002"')]:
        (folder / name).write_text(f'"""x"""\nrevision = "{rev}"\ndown_revision = {down}\n')
    assert schema_version.head(folder) == "0003"


def test_current_revision_on_an_old_and_an_empty_store(db_url: str) -> None:
    from listserv.serve import schema_problem

    store = Store(db_url)
    try:
        assert schema_version.current(store.engine) is None
        store.upgrade("0013")
        assert schema_version.current(store.engine) == "0013"
        problem = schema_problem(store)
        assert problem is not None and "0013" in problem and "commonroom db upgrade" in problem
    finally:
        store.dispose()
