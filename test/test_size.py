"""minigrad stays small enough to read in an afternoon: the core under extra/sz.py's CORE_LIMIT lines."""

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def load_sz():
    spec = importlib.util.spec_from_file_location("sz", ROOT / "extra" / "sz.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_core_is_under_the_line_limit():
    sz = load_sz()
    assert 2000 < sz.core_lines() < sz.CORE_LIMIT, f"core is {sz.core_lines()} lines (python extra/sz.py)"


def test_backends_are_one_short_file_each():
    sz = load_sz()
    backends = {name: n for name, n in sz.sizes().items() if "/runtime/ops_" in name}
    assert len(backends) >= 4 and all(n <= sz.BACKEND_LIMIT for n in backends.values()), backends
