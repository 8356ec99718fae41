"""Print the requirement lines an image installs, read from pyproject.toml, one a line.

pyproject.toml is the single source of truth for versions. The images install from a wheelhouse
with ``pip install --no-index -r``, not the project itself: a stage image takes the project's
dependencies (plus extras it serves with), a service image only the few packages it runs.
Standard library only: it runs in a bare base image before anything is installed.

  python requirements.py pyproject.toml                       # the project's dependencies
  python requirements.py pyproject.toml --extras serving      # ... and the `serving` extra
  python requirements.py pyproject.toml --only mlflow boto3   # just these packages' lines
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib


def requirement_name(requirement: str) -> str:
    """``sagemaker[local]>=2.257,<3`` -> ``sagemaker`` (PEP 503 normalised)."""
    name = re.match(r"[A-Za-z0-9._-]*", requirement).group()  # "" matches nothing known
    return re.sub(r"[-_.]+", "-", name).lower()


def extra_lines(project: dict, extra: str) -> list[str]:
    """An extra's lines, an extra that includes others (``<project>[objectstore]``) expanded:
    pip cannot install the project itself from a wheelhouse that holds only its dependencies."""
    own = requirement_name(project["name"])
    lines = []
    for line in project["optional-dependencies"][extra]:
        if requirement_name(line) != own:
            lines.append(line)
            continue
        for included in re.search(r"\[(.*)\]", line).group(1).split(","):
            lines += extra_lines(project, included.strip())
    return lines


def requirements(project: dict, extras: list[str], only: list[str]) -> list[str]:
    """The lines to install; a ``ValueError`` names any extra or package pyproject lacks."""
    optional = project.get("optional-dependencies", {})
    unknown = [extra for extra in extras if extra not in optional]
    if unknown:
        raise ValueError(f"no optional-dependencies {', '.join(map(repr, unknown))}")
    if not only:
        return [
            *project["dependencies"],
            *(line for extra in extras for line in extra_lines(project, extra)),
        ]
    known = {
        requirement_name(line): line
        for line in [
            *project["dependencies"],
            *(line for lines in optional.values() for line in lines),
        ]
    }
    missing = [name for name in only if requirement_name(name) not in known]
    if missing:
        raise ValueError(f"no requirement for {', '.join(map(repr, missing))}")
    return [known[requirement_name(name)] for name in only]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pyproject", help="path to pyproject.toml")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--extras", nargs="+", default=[], help="optional-dependencies to add")
    group.add_argument("--only", nargs="+", default=[], help="just these packages' lines")
    args = parser.parse_args()
    with open(args.pyproject, "rb") as file:
        project = tomllib.load(file)["project"]
    try:
        lines = requirements(project, args.extras, args.only)
    except ValueError as error:
        sys.exit(f"{args.pyproject}: {error}")
    print(*lines, sep="\n")


if __name__ == "__main__":
    main()
