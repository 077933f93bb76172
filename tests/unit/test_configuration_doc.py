"""docs/configuration.md stays true to the code: each settings module has its table, listing
exactly the environment variables that module reads, and every variable read anywhere in src/
is documented."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "src" / "product" / "settings"
DOC = ROOT / "docs" / "configuration.md"
ENV_READERS = {"env_str", "env_bool", "env_int", "env_float", "env_list"}
_MODULE_IN_HEADING = re.compile(r"`src/product/settings/(\w+)\.py`")
_VARIABLE = re.compile(r"`([A-Z][A-Z0-9_]*)`")
# The operating system's own, which the code passes on to child processes.
SYSTEM_VARIABLES = {"PATH"}


def env_reads(source: str) -> set[str]:
    """Names of the environment variables ``source`` reads: through product.env's readers, or
    os.environ / os.getenv directly, with the name written as a string."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        name = None
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            on_environ = isinstance(func, ast.Attribute) and _is_environ(func.value)
            if called in ENV_READERS or called == "getenv" or (
                on_environ and called in ("get", "setdefault", "pop")
            ):
                name = node.args[0]
        elif isinstance(node, ast.Subscript) and _is_environ(node.value):
            name = node.slice
        if isinstance(name, ast.Constant) and isinstance(name.value, str):
            names.add(name.value)
    return names


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def documented() -> dict[str, set[str]]:
    """Variables named in the first column of each table, by the section's heading."""
    sections: dict[str, set[str]] = {}
    heading = None
    for line in DOC.read_text().splitlines():
        if line.startswith("## "):
            heading = line[3:]
            sections[heading] = set()
        elif heading is not None and line.startswith("| `"):
            sections[heading] |= set(_VARIABLE.findall(line.split("|")[1]))
    return sections


def settings_modules() -> dict[str, str]:
    return {path.stem: path.read_text() for path in SETTINGS.glob("*.py") if path.stem != "__init__"}


def test_each_settings_module_has_a_table_of_exactly_the_variables_it_reads():
    by_module = {}
    for heading, names in documented().items():
        match = _MODULE_IN_HEADING.search(heading)
        if match:
            by_module[match.group(1)] = names
    modules = settings_modules()
    assert set(by_module) == set(modules), "a settings module without a table, or the reverse"
    for module, source in modules.items():
        assert by_module[module] == env_reads(source), f"settings/{module}.py and its table differ"


def test_every_variable_the_code_reads_is_documented():
    everything = set().union(*documented().values())
    sources = (ROOT / "src").rglob("*.py")
    read = set().union(*(env_reads(path.read_text()) for path in sources))
    assert read - everything - SYSTEM_VARIABLES == set()


def test_the_settings_package_reads_no_variable_but_through_product_env():
    for module, source in settings_modules().items():
        assert "os.environ" not in source and "getenv" not in source, module
