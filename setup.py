"""Assemble the ``qpumesh`` namespace package from the design card's directories.

Each root below holds a ``qpumesh/<part>`` tree; setuptools needs an explicit
package -> directory map for a namespace split over several roots.
"""

from pathlib import Path

from setuptools import find_namespace_packages, setup

ROOTS = ("protos/python", "services/qpu_node", "services/coordinator", "client")

packages: list[str] = []
package_dir: dict[str, str] = {}
for root in ROOTS:
    for pkg in find_namespace_packages(where=root, include=["qpumesh.*"]):
        if not (Path(root) / pkg.replace(".", "/") / "__init__.py").exists():
            continue
        packages.append(pkg)
        package_dir[pkg] = f"{root}/{pkg.replace('.', '/')}"

setup(packages=packages, package_dir=package_dir)
