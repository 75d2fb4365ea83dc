"""The notebooks' kernel: the project's ``.venv``, which ``make kernel`` registers and every notebook checks first.

Standard library only, imported before anything else of the project: in a wrong kernel nothing more may import.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: The kernel ``make kernel`` registers and the notebooks name.
KERNEL_NAME = "amlops"
KERNEL_DISPLAY_NAME = "Python (amlops .venv)"
#: The Python versions the lock resolves for.
SUPPORTED_PYTHONS = ((3, 10), (3, 13))


def unsupported_python(version: tuple[int, ...] | None = None) -> str | None:
    """``"Python 3.9 and the project needs 3.10 to 3.13"`` for an unsupported version, ``None`` for a supported one.

    The one place the supported range is checked: the notebooks' first cell and ``make install`` both ask here.
    """
    found = tuple((version or sys.version_info)[:2])
    if SUPPORTED_PYTHONS[0] <= found <= SUPPORTED_PYTHONS[1]:
        return None
    low, high = (".".join(map(str, v)) for v in SUPPORTED_PYTHONS)
    return f"Python {'.'.join(map(str, found))} and the project needs {low} to {high}"


def kernel_problem(repo: Path, prefix: str | None = None, version: tuple[int, ...] | None = None) -> str | None:
    """What is wrong with the kernel a notebook runs in, as one sentence that says what to run; ``None`` if nothing.

    Args:
        repo: The repository root (the notebook's folder's parent).
        prefix: The kernel's environment (``sys.prefix`` by default).
        version: The kernel's Python version (``sys.version_info`` by default).
    """
    repo = Path(repo).resolve()
    prefix = Path(prefix or sys.prefix).resolve()
    pick = f'pick the kernel "{KERNEL_DISPLAY_NAME}" (Kernel > Change kernel)'
    unsupported = unsupported_python(version)
    if unsupported:
        oldest = ".".join(map(str, SUPPORTED_PYTHONS[0]))
        return (
            f"This kernel runs {unsupported}: in a terminal in {repo}, run `make kernel PYTHON=python{oldest}`, "
            f"then {pick}."
        )
    venv = repo / ".venv"
    if not (venv / "bin" / "python").exists():
        return f"The project has no environment yet: in a terminal in {repo}, run `make kernel`, then {pick}."
    if prefix != venv.resolve():
        return (
            f"This kernel runs {prefix}, not the project's .venv: in a terminal in {repo}, run `make kernel`, "
            f"then {pick}."
        )
    stamp, lock = venv / ".installed", repo / "requirements.lock"
    if not stamp.exists() or (lock.exists() and stamp.stat().st_mtime < lock.stat().st_mtime):
        return (
            f"The project's .venv is older than requirements.lock: in a terminal in {repo}, run `make kernel`, "
            "then restart the kernel."
        )
    return None


def check_kernel(repo: Path) -> None:
    """Stop the notebook, with one sentence saying what to run, unless it runs in the project's up-to-date ``.venv``.

    Raises:
        SystemExit: carrying that sentence (Jupyter shows it without a traceback).
    """
    problem = kernel_problem(repo)
    if problem:
        raise SystemExit(problem)


def install_kernel() -> Path:
    """Register this interpreter (the project's ``.venv``) as the Jupyter kernel the notebooks name, for this user.

    Returns:
        The folder of the kernel's ``kernel.json``.
    """
    from ipykernel.kernelspec import install

    return Path(install(user=True, kernel_name=KERNEL_NAME, display_name=KERNEL_DISPLAY_NAME))


if __name__ == "__main__":
    if sys.argv[1:] == ["--check-python"]:  # `make install`, with the interpreter it is about to use
        unsupported = unsupported_python()
        sys.exit(
            f"{sys.executable} is {unsupported}: run make with PYTHON=/path/to/python3.12" if unsupported else None
        )
    print(f'registered the kernel "{KERNEL_DISPLAY_NAME}" ({sys.executable}) in {install_kernel()}')  # noqa: T201
