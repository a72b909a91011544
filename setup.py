"""Maps the repository's top-level folders onto the `fedstats.*` import names.

`node/` becomes `fedstats.node`; `operator/` becomes `fedstats.operator` through the link
`fedstats/operator -> ../operator`. Every folder below them holding Python modules is a
subpackage. Everything else is in pyproject.toml.

`operator/` has no `__init__.py` on purpose: a regular package of that name at the
repository root would shadow the standard library's `operator` for any `python -m ...`
started there (even `python3 -m venv`), while a namespace portion never wins over a real
module (PEP 420). Reached through the link inside the regular package `fedstats`, it is the
namespace subpackage `fedstats.operator`, in editable and wheel installs alike.
"""

from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).parent
FOLDERS = {"fedstats.node": "node", "fedstats.operator": "fedstats/operator"}


def _packages() -> tuple[list[str], dict[str, str]]:
    packages = ["fedstats"]
    package_dir = {"fedstats": "fedstats"}
    for name, folder in FOLDERS.items():
        base = ROOT / folder
        if not base.is_dir():
            continue
        package_dir[name] = folder
        # every folder holding Python modules is a package (see the module docstring)
        for here in sorted({p.parent for p in base.rglob("*.py")}):
            if "__pycache__" in here.parts:
                continue
            rel = here.relative_to(base)
            packages.append(".".join([name, *rel.parts]) if rel.parts else name)
    return packages, package_dir


PACKAGES, PACKAGE_DIR = _packages()
setup(packages=PACKAGES, package_dir=PACKAGE_DIR, package_data={"fedstats.node": ["py.typed"]})
