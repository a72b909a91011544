"""Maps the repository's top-level folders onto the `fedstats.*` import names.

`node/` becomes `fedstats.node` and `operator/` becomes `fedstats.operator`; every folder
below them holding an `__init__.py` is a subpackage. Everything else is in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).parent
FOLDERS = {"fedstats.node": "node", "fedstats.operator": "operator"}


def _packages() -> tuple[list[str], dict[str, str]]:
    packages = ["fedstats"]
    package_dir = {"fedstats": "fedstats"}
    for name, folder in FOLDERS.items():
        base = ROOT / folder
        if not (base / "__init__.py").exists():
            continue
        package_dir[name] = folder
        for init in sorted(base.rglob("__init__.py")):
            rel = init.parent.relative_to(base)
            packages.append(".".join([name, *rel.parts]) if rel.parts else name)
    return packages, package_dir


PACKAGES, PACKAGE_DIR = _packages()
setup(packages=PACKAGES, package_dir=PACKAGE_DIR, package_data={"fedstats.node": ["py.typed"]})
