"""Support code for parallel_agents' Python agents.

Loaded once into the embedded interpreter by src/agent/python.rs (as the module
`_parallel_agents_support`). Everything here runs with the GIL held, at agent creation
or interpreter start-up; nothing here is on the per-call path.
"""

import importlib
import importlib.util
import inspect
import os
import site
import sys


def add_paths(venv, extra):
    """Puts `extra` (os.pathsep-separated, e.g. PAGENT_PYTHONPATH) at the front of
    sys.path, and the site-packages of the virtualenv `venv` (e.g. VIRTUAL_ENV) ahead of
    the interpreter's own site-packages, processing its .pth files.

    Returns a note about anything that could not be honoured ("" if none)."""
    notes = []
    for entry in reversed([p for p in (extra or "").split(os.pathsep) if p]):
        entry = os.path.abspath(entry)
        if entry not in sys.path:
            sys.path.insert(0, entry)
    if venv:
        version = "python%d.%d" % sys.version_info[:2]
        candidates = [
            os.path.join(venv, "lib", version, "site-packages"),
            os.path.join(venv, "Lib", "site-packages"),
        ]
        found = [c for c in candidates if os.path.isdir(c)]
        if not found:
            notes.append("VIRTUAL_ENV=%s has no site-packages for %s" % (venv, version))
        for packages in found:
            if packages in sys.path:
                continue
            before = list(sys.path)
            site.addsitedir(packages)
            added = [p for p in sys.path if p not in before]
            # The venv's packages win over the base interpreter's, as in the venv itself.
            at = next(
                (i for i, p in enumerate(before) if p.rstrip(os.sep).endswith(("site-packages", "dist-packages"))),
                len(before),
            )
            sys.path[:] = before[:at] + added + before[at:]
    return "; ".join(notes)


def _is_path(module_part):
    return module_part.endswith(".py") or "/" in module_part or os.sep in module_part


def _same_file(module, path):
    file = getattr(module, "__file__", None)
    return file is not None and os.path.realpath(file) == os.path.realpath(path)


def _import(name):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError("%s (sys.path: %s)" % (e, sys.path), name=e.name) from None


def _import_file(path):
    """Imports a .py file by path. Its directory goes on sys.path (as with `python file.py`)
    so it can import its neighbours; it is imported under its own name unless that name
    is taken by another module, and loading the same file twice returns the same module."""
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError("no such file: %s" % path)
    directory, filename = os.path.split(path)
    name = os.path.splitext(filename)[0]
    if directory not in sys.path:
        sys.path.insert(0, directory)
    existing = sys.modules.get(name)
    if existing is not None and _same_file(existing, path):
        return existing
    if existing is None and name.isidentifier():
        spec = importlib.util.find_spec(name)
        origin = getattr(spec, "origin", None)
        if origin is not None and os.path.realpath(origin) == os.path.realpath(path):
            return _import(name)
    unique = "_pagent_%s_%x" % (name, abs(hash(os.path.realpath(path))))
    if unique in sys.modules:
        return sys.modules[unique]
    spec = importlib.util.spec_from_file_location(unique, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[unique]
        raise
    return module


def _dspy_module_type():
    dspy = sys.modules.get("dspy")
    return getattr(dspy, "Module", None) if dspy is not None else None


def _is_async(obj):
    if inspect.iscoroutinefunction(obj):
        return True
    if inspect.isroutine(obj) or isinstance(obj, type):
        return False
    return inspect.iscoroutinefunction(getattr(type(obj), "__call__", None))


def load(target, factory, prefer_async):
    """Resolves `target` ("package.module:callable" or "path/file.py:callable", the
    callable part may be dotted) to what each call invokes.

    Returns (callable, keyword, is_async): with keyword set, the callable is called as
    callable(**{input_field: question}) (a factory's product, a DSPy Module), otherwise
    as callable(question, agent_id)."""
    module_part, sep, attr = target.rpartition(":")
    if not sep or not module_part.strip() or not attr.strip():
        raise ValueError(
            "target %r must look like 'package.module:callable' or 'path/to/file.py:callable'" % target
        )
    module = _import_file(module_part) if _is_path(module_part) else _import(module_part)
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AttributeError("%r has no attribute %r" % (module_part, attr)) from None
    dspy_module = _dspy_module_type()
    # A DSPy Module class can only be meant as a factory.
    if not factory and dspy_module is not None and isinstance(obj, type) and issubclass(obj, dspy_module):
        factory = True
    if factory:
        if not callable(obj):
            raise TypeError("factory %r is not callable (it is a %s)" % (attr, type(obj).__name__))
        obj = obj()
        dspy_module = _dspy_module_type()
    keyword = factory or (dspy_module is not None and isinstance(obj, dspy_module))
    if keyword and prefer_async:
        # DSPy's Module.acall awaits self.aforward, which only some modules define
        # (Predict, ChainOfThought, ...; a user's Module with just `forward` has none).
        acall = getattr(obj, "acall", None)
        if acall is not None and inspect.iscoroutinefunction(acall) and hasattr(obj, "aforward"):
            return acall, True, True
    if not callable(obj):
        what = "the factory's product" if factory else repr(attr)
        raise TypeError("%s is not callable (it is a %s)" % (what, type(obj).__name__))
    return obj, keyword, _is_async(obj)


def make_starter(loop, complete):
    """Returns start(call_id, awaitable) -> task: runs the awaitable as a task on `loop`
    and reports how it ended through `complete(call_id, value, exception)` (a Rust
    function), inline at the end of the task, without a separate done-callback."""
    create_task = loop.create_task

    async def run_call(call_id, awaitable):
        try:
            value = await awaitable
        except BaseException as exc:
            complete(call_id, None, exc)
            if not isinstance(exc, Exception):
                raise  # CancelledError (the task must end cancelled), SystemExit, ...
        else:
            complete(call_id, value, None)

    def start(call_id, awaitable):
        return create_task(run_call(call_id, awaitable))

    return start
