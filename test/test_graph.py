"""GRAPH=1 writes the lazy graph and the schedule as graphviz files that `dot` accepts."""

import shutil
import subprocess

from minigrad import Context, Tensor
from minigrad.engine.schedule import create_schedule


def test_graph_files_parse_and_show_every_kernel(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GRAPH_DIR", str(tmp_path))
    x = Tensor([[1.0, 2.0], [3.0, 4.0]], device="CPU")
    w = Tensor([[0.5, -1.0], [1.0, 2.0]], device="CPU", requires_grad=True)
    loss = (x @ w).relu().sum()
    loss.backward()
    kernels = [i for i in create_schedule([loss.lazydata, w.grad.lazydata]) if i.ast.op.name == "STORE"]
    with Context(GRAPH=1):
        Tensor.realize(loss, w.grad)
    assert "GRAPH: wrote" in capsys.readouterr().out
    (graph,) = tmp_path.glob("graph-*.dot")
    (schedule,) = tmp_path.glob("schedule-*.dot")
    lazy_text, schedule_text = graph.read_text(), schedule.read_text()
    assert lazy_text.startswith("digraph") and lazy_text.count("{") == lazy_text.count("}")
    assert "REDUCE_SUM" in lazy_text and "RELU" not in lazy_text  # primitive ops only
    assert schedule_text.count("subgraph cluster_") == len(kernels)
    assert 'fillcolor="#ffc078"' in schedule_text  # reduces have their colour
    if shutil.which("dot"):  # CI installs graphviz: there the files must parse
        for path in (graph, schedule):
            result = subprocess.run(["dot", "-Tsvg", str(path)], capture_output=True, text=True)
            assert result.returncode == 0 and "<svg" in result.stdout, result.stderr
        assert len(list(tmp_path.glob("*.svg"))) == 2


def test_graph_without_graphviz_says_dot_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GRAPH_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` on it
    with Context(GRAPH=1):
        (Tensor([1.0, 2.0], device="NUMPY") * 2).realize()
    out = capsys.readouterr().out
    assert "`dot` is missing; apt-get install graphviz" in out, out
    assert len(list(tmp_path.glob("*.dot"))) == 2 and not list(tmp_path.glob("*.svg"))
