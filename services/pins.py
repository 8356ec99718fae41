"""Print pyproject.toml's requirement line for each named package, one a line.

The service images install a few packages, not the project; this keeps their versions the ones
pyproject.toml (the single source of truth) asks for.
Usage: python pins.py pyproject.toml mlflow boto3 > requirements.txt
"""

import re
import sys
import tomllib


def requirement_name(requirement: str) -> str:
    """``sagemaker[local]>=2.257,<3`` -> ``sagemaker`` (PEP 503 normalised)."""
    name = re.match(r"[A-Za-z0-9._-]+", requirement).group()
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(pyproject: str, names: list[str]) -> list[str]:
    with open(pyproject, "rb") as file:
        project = tomllib.load(file)["project"]
    extras = project.get("optional-dependencies", {}).values()
    known = {
        requirement_name(line): line
        for line in [*project["dependencies"], *(line for extra in extras for line in extra)]
    }
    missing = [name for name in names if requirement_name(name) not in known]
    if missing:
        sys.exit(f"{pyproject} does not name {', '.join(missing)}")
    return [known[requirement_name(name)] for name in names]


if __name__ == "__main__":
    print(*pins(sys.argv[1], sys.argv[2:]), sep="\n")
