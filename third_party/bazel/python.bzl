"""A Python toolchain for the interpreter installed on this machine.

The repository rule reads NAS_TF_PYTHON (set with --repo_env) or else finds
python3 on PATH, and generates a py_runtime toolchain for it. With Python
toolchains on, Bazel ignores --python_path, so the toolchain is the way to
choose the interpreter; its stub_shebang makes the test launcher itself run
with the same interpreter.
"""

def _local_python_impl(ctx):
    python = ctx.os.environ.get("NAS_TF_PYTHON", "")
    if not python:
        found = ctx.which("python3")
        if not found:
            fail("No python3 on PATH; pass --repo_env=NAS_TF_PYTHON=/path/to/python")
        python = str(found)
    if not ctx.path(python).exists:
        fail("NAS_TF_PYTHON=%s does not exist. Received: NAS_TF_PYTHON=%s" % (python, python))
    ctx.file("BUILD", """
load("@bazel_tools//tools/python:toolchain.bzl", "py_runtime_pair")

py_runtime(
    name = "py3_runtime",
    interpreter_path = "{python}",
    python_version = "PY3",
    stub_shebang = "#!{python}",
)

py_runtime_pair(
    name = "runtime_pair",
    py3_runtime = ":py3_runtime",
)

toolchain(
    name = "toolchain",
    toolchain = ":runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)
""".format(python = python))

local_python = repository_rule(
    implementation = _local_python_impl,
    environ = ["NAS_TF_PYTHON", "PATH"],
    local = True,
)
