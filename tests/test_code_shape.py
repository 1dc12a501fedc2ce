"""The shape of the code: no module over 450 lines, and no function over 60
lines without a ``# long: <reason>`` comment inside it (the project's guide:
modules under ~400 lines, functions under ~60 unless a reason is stated).
A function's lines run from its first decorator to its last line, its
docstring excepted (documentation does not make code longer to read). AST
only: nothing is imported."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("nas_tf", "cells", "cnn_space")
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60
REASON = "# long:"


def _modules():
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _docstring_lines(func) -> int:
    first = func.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
            and isinstance(first.value.value, str):
        return first.end_lineno - first.lineno + 1
    return 0


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int, int]]:
    """``(qualified name, first line, length)`` of each function longer than
    ``limit`` lines (decorators included, docstring not) with no ``# long:``
    comment in its own lines."""
    lines = source.splitlines()
    found = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    start = min([child.lineno] + [d.lineno for d in child.decorator_list])
                    length = child.end_lineno - start + 1 - _docstring_lines(child)
                    body = lines[start - 1:child.end_lineno]
                    if length > limit and not any(REASON in line for line in body):
                        found.append((name, start, length))
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return found


def test_the_checker_finds_a_long_function_and_accepts_a_reason():
    body = "\n".join(f"    x{i} = {i}" for i in range(70))
    src = f"def f():\n{body}\n\nclass C:\n    def g(self):\n{body.replace('    ', '        ')}\n"
    assert [(n, n0) for n, n0, _ in long_functions(src)] == [("f", 1), ("C.g", 74)]
    assert long_functions(src.replace("def f():\n", "def f():\n    # long: a table\n")) == [
        ("C.g", 75, 71)]
    assert long_functions("def short():\n    return 1\n") == []
    documented = 'def f():\n    """Doc.\n' + "\n" * 70 + '    """\n    return 1\n'
    assert long_functions(documented) == []


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_shape(path):
    source = path.read_text()
    n = len(source.splitlines())
    assert n <= MAX_MODULE_LINES, (
        f"{path.relative_to(ROOT)} has {n} lines (at most {MAX_MODULE_LINES}): split it by role")
    long = long_functions(source)
    assert not long, (
        f"{path.relative_to(ROOT)}: functions over {MAX_FUNCTION_LINES} lines without a "
        f"'{REASON} <reason>' comment: "
        + ", ".join(f"{name} (line {line}, {length} lines)" for name, line, length in long))
