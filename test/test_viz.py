"""`python -m minigrad viz`: the page holds the SVG graph and every kernel DEBUG=2 reports, loads nothing from
the network, and works in a real headless browser (Debian's chromium + chromium-driver, driven by selenium)."""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
STEP = """
from minigrad import Tensor, nn
from minigrad.nn import optim
from minigrad.nn.state import get_parameters
Tensor.manual_seed(0)
model = [nn.Linear(4, 8), nn.Linear(8, 3)]
opt = optim.SGD(get_parameters(model), lr=0.1)
x, y = Tensor.randn(5, 4), Tensor([0, 1, 2, 1, 0])
with Tensor.train():
    opt.zero_grad()
    loss = model[1](model[0](x).relu()).sparse_categorical_crossentropy(y)
    loss.backward()
    opt.step()
print("loss", loss.item())
"""
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> pathlib.Path:
    directory = tmp_path_factory.mktemp("viz")
    script, out = directory / "step.py", directory / "step.html"
    script.write_text(STEP)
    result = run("-m", "minigrad", "viz", str(script), "-o", str(out), env={"DEVICE": "CPU"})
    assert result.returncode == 0, result.stderr
    assert "viz: " in result.stdout and out.exists()
    debug = run(str(script), env={"DEVICE": "CPU", "DEBUG": "2"})
    (directory / "kernels.txt").write_text(
        "\n".join(re.findall(r"^\*\*\* CPU\s+\d+ (\S+)", debug.stdout, re.M))
    )
    return out


def test_page_has_the_svg_graph_and_every_kernel_debug_reports(page):
    text = page.read_text()
    kernels = (page.parent / "kernels.txt").read_text().split()
    assert kernels and "<svg" in text
    assert [k for k in kernels if f"<b>{k}</b>" not in text] == []
    data = json.loads(
        re.search(r'<script type="application/json" id="viz-data">(.*?)</script>', text, re.S)[1]
    )
    phases = {k["phase"] for r in data for k in r["kernels"]}
    assert phases == {"forward", "backward", "optimizer step"}
    kernel = next(k for r in data for k in r["kernels"] if k["name"] == kernels[0])
    assert kernel["source"] and kernel["run_s"] is not None and kernel["reason"].startswith("R")
    assert [p["name"] for p in kernel["passes"]][:3] == ["kernel AST", "lower", "pick"]


def test_page_loads_nothing_from_the_network(page):
    text = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|@import""", text)


def test_a_big_graph_is_drawn_one_box_per_kernel(tmp_path):
    script, out = tmp_path / "big.py", tmp_path / "big.html"
    script.write_text(
        "from minigrad import Tensor\nx = Tensor.ones(4)\nfor i in range(3000):\n    x = x * 1.0001 + 0.5\nx.realize()\n"
    )
    result = run("-m", "minigrad", "viz", str(script), "-o", str(out), env={"DEVICE": "NUMPY"})
    assert result.returncode == 0, result.stderr
    assert "one box per kernel" in out.read_text()


def test_missing_dot_is_a_clear_error(tmp_path, monkeypatch):
    from minigrad import viz

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match="graphviz's `dot` is missing"):
        viz.main([str(tmp_path / "any.py")])


def test_clicking_a_graph_node_shows_its_kernel_source_in_chromium(page):
    if not (CHROMIUM and DRIVER):  # CI (which sets MINIGRAD_REQUIRE_DEVICES) installs them: fail there
        missing = "needs chromium and chromium-driver (apt-get install chromium chromium-driver)"
        if os.environ.get("MINIGRAD_REQUIRE_DEVICES"):
            pytest.fail(missing)
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900"):
        options.add_argument(argument)
    options.binary_location = CHROMIUM
    browser = webdriver.Chrome(options=options, service=Service(DRIVER))
    try:
        browser.get(page.as_uri())
        data = json.loads(browser.find_element(By.ID, "viz-data").get_attribute("textContent"))
        r = max(range(len(data)), key=lambda i: len(data[i]["kernels"]))
        for node in browser.find_elements(By.CSS_SELECTOR, f"#realize-{r} g.node"):
            info = data[r]["nodes"].get(node.find_element(By.TAG_NAME, "title").get_attribute("textContent"))
            if info and info["kernels"]:
                browser.execute_script(
                    "arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", node
                )
                break
        kernel = data[r]["kernels"][info["kernels"][0]]
        assert kernel["name"] in browser.find_element(By.ID, "kernel-source").text
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys("n")  # the keyboard: the next realize's first kernel, then the one after it
        body.send_keys("j")
        assert browser.find_element(By.ID, "kernel-title").text.startswith("kernel ")
        if os.environ.get("VIZ_SCREENSHOT"):
            browser.save_screenshot(os.environ["VIZ_SCREENSHOT"])
    finally:
        browser.quit()
