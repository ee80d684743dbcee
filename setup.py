"""Maps the repository-root folders `policies/`, `envs/` and `configs/` into the package.

They import as `selfflow_robot.policies`, `selfflow_robot.envs` and `selfflow_robot.configs`,
never as generic top-level names. Everything else is in pyproject.toml.
"""
from setuptools import find_packages, setup

ROOTS = {"selfflow_robot": "selfflow_robot", "selfflow_robot.policies": "policies",
         "selfflow_robot.envs": "envs", "selfflow_robot.configs": "configs"}

packages, package_dir = [], {}
for name, path in ROOTS.items():
    package_dir[name] = path
    packages.append(name)
    for sub in find_packages(path):
        packages.append(f"{name}.{sub}")
        package_dir[f"{name}.{sub}"] = f"{path}/{sub.replace('.', '/')}"

setup(packages=packages, package_dir=package_dir,
      package_data={"selfflow_robot.configs": ["*.yaml", "**/*.yaml"]}, include_package_data=True)
