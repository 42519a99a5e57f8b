"""The runbook must not contradict the code: its commands, options and variables exist.

A new engineer types what docs/runbook.md says, in order. These checks fail when a
management command or one of its options is renamed, when `.env.example` gains a
variable the runbook does not mention, or when a heading that monitors link to changes.
"""

import re
from pathlib import Path

import pytest
from django.core.management import get_commands, load_command_class

ROOT = Path(__file__).resolve().parent.parent
RUNBOOK = (ROOT / "docs" / "runbook.md").read_text()

# Datadog monitors link to these anchors; renaming one breaks every alert's link.
OPERATING_HEADINGS = [
    "Rotating the verification token",
    "Rotating Redox keys",
    "Reading the Datadog monitors",
    "Retrying or abandoning deliveries",
    "Re-processing failed messages",
    "Restoring from backup",
]


def shell_commands(markdown):
    """Every command line in the runbook's fenced code blocks, continuation lines joined."""
    blocks = re.findall(r"```(?:sh|bash)?\n(.*?)```", markdown, flags=re.DOTALL)
    for block in blocks:
        yield from re.sub(r"\\\n\s*", " ", block).splitlines()


def manage_py_invocations():
    """(command name, [--options]) for each `manage.py <command> …` the runbook types."""
    found = []
    for line in shell_commands(RUNBOOK):
        for match in re.finditer(r"manage\.py\s+([a-z_]+)([^|;&#<>]*)", line):
            options = re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", match.group(2))
            found.append((match.group(1), options))
    return found


def test_the_runbook_types_management_commands():
    names = {name for name, _ in manage_py_invocations()}
    # The runbook's own promises: the commands an operator is walked through (sections 4 to 7).
    assert {"configure_partner", "compare_databases", "import_redox_messages", "reprocess_messages"} <= names


@pytest.mark.parametrize(("name", "options"), manage_py_invocations(), ids=lambda value: str(value))
def test_every_command_and_option_in_the_runbook_exists(name, options):
    commands = get_commands()
    assert name in commands, f"docs/runbook.md runs `manage.py {name}`, which does not exist"
    parser = load_command_class(commands[name], name).create_parser("manage.py", name)
    known = {option for action in parser._actions for option in action.option_strings}
    unknown = [option for option in options if option not in known]
    assert not unknown, f"`manage.py {name}` has no option {unknown}"


def env_example_variables():
    names = re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), flags=re.MULTILINE)
    return sorted(set(names))


def test_every_variable_in_env_example_is_in_the_runbook():
    missing = [name for name in env_example_variables() if f"`{name}`" not in RUNBOOK and name not in RUNBOOK]
    assert not missing, f"docs/runbook.md does not mention {missing}"


def test_the_runbook_names_only_variables_that_exist():
    # The list in section 3.2 is what an engineer sets; a name there that nothing reads is a trap.
    listed = RUNBOOK.split("<!-- env-vars", 1)[1].split("\n\n", 1)[0]
    documented = set(env_example_variables())
    extra = [name for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", listed) if name not in documented]
    assert not extra, f"docs/runbook.md lists variables that .env.example does not: {extra}"


def anchor(heading):
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def test_operating_headings_are_exactly_those_monitors_link_to():
    headings = re.findall(r"^### (.+)$", RUNBOOK, flags=re.MULTILINE)
    for heading in OPERATING_HEADINGS:
        assert heading in headings
    monitors = " ".join(path.read_text() for path in (ROOT / "ops" / "datadog" / "monitors").glob("*.json"))
    linked = set(re.findall(r"#([a-z0-9-]{6,})", monitors))
    assert linked, "the monitors link to sections of the runbook"
    assert linked <= {anchor(heading) for heading in headings}, "a monitor links to a heading the runbook lacks"


def test_procfile_services_are_the_ones_the_runbook_scales():
    services = {line.split(":", 1)[0] for line in (ROOT / "Procfile").read_text().splitlines() if ":" in line}
    scaled = set(re.findall(r"aptible apps:scale (\w+)", RUNBOOK))
    assert scaled == services


def test_the_readme_links_the_runbook():
    assert "docs/runbook.md" in (ROOT / "README.md").read_text()
