"""Each rule is written once: Redox's file limit and the demo token live in settings, and the code reads them there."""

import re
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("hcoint", "orders", "redox", "bench")


def sources():
    yield ROOT / "gunicorn.conf.py"
    for folder in SCANNED:
        for path in (ROOT / folder).rglob("*.py"):
            if "migrations" not in path.parts:
                yield path


def files_matching(pattern):
    return sorted(str(p.relative_to(ROOT)) for p in sources() if re.search(pattern, p.read_text(encoding="utf-8")))


def test_redox_file_limit_is_written_only_in_settings():
    assert settings.REDOX_FILE_LIMIT_BYTES == 30 * 1024 * 1024
    assert settings.NOTE_MAX_BYTES <= settings.REDOX_FILE_LIMIT_BYTES
    assert files_matching(r"30\s*\*\s*1024\s*\*\s*1024|30_?000_?000|31_?457_?280") == ["hcoint/settings.py"]


def test_the_demo_token_is_written_only_in_settings():
    assert files_matching(re.escape(settings.DEMO_VERIFICATION_TOKEN)) == ["hcoint/settings.py"]
