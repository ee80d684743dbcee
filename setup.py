"""Maps the repository-root folders `policies/`, `envs/` and `configs/` into the package.

They import as `selfflow_robot.policies`, `selfflow_robot.envs` and `selfflow_robot.configs`,
never as generic top-level names. Everything else is in pyproject.toml.
"""
from setuptools import find_namespace_packages, find_packages, setup

ROOTS = {"selfflow_robot": "selfflow_robot", "selfflow_robot.policies": "policies",
         "selfflow_robot.envs": "envs", "selfflow_robot.configs": "configs"}

packages, package_dir = [], {}
for name, path in ROOTS.items():
    package_dir[name] = path
    packages.append(name)
    # configs/ sub-folders hold only YAML: namespace packages, so their files ship as package data
    for sub in (find_namespace_packages(path) if name == "selfflow_robot.configs" else find_packages(path)):
        packages.append(f"{name}.{sub}")
        package_dir[f"{name}.{sub}"] = f"{path}/{sub.replace('.', '/')}"

setup(packages=packages, package_dir=package_dir,
      package_data={name: ["*.yaml"] for name in packages if name.startswith("selfflow_robot.configs")},
      include_package_data=True)
