"""The single-page app at /app/ in a real (headless, system) Chromium against a real server: upload,
graph, feature maps, Grad-CAM, faithfulness, maximize with cancel, errors and the bearer token.
Pixels are read back from the page, so "not blank" and "changed" are checked, not assumed."""

from __future__ import annotations

import base64
import time

import harness
import httpx
import numpy as np
import pytest
from PIL import Image

# mean colour and variance of an <img> or <canvas>, read through a 2-D canvas
PIXELS = """(sel) => {
  const el = document.querySelector(sel);
  const w = el.naturalWidth || el.width, h = el.naturalHeight || el.height;
  const c = document.createElement("canvas"); c.width = w; c.height = h;
  const ctx = c.getContext("2d"); ctx.drawImage(el, 0, 0);
  const d = ctx.getImageData(0, 0, w, h).data;
  let n = 0, s = [0, 0, 0], s2 = 0, sum = 0;
  for (let i = 0; i < d.length; i += 4) {
    const v = d[i] + d[i + 1] + d[i + 2];
    s[0] += d[i]; s[1] += d[i + 1]; s[2] += d[i + 2]; sum += v; s2 += v * v; n++;
  }
  const m = sum / n;
  return {w, h, variance: s2 / n - m * m, mean: s.map((x) => x / n)};
}"""

# the explanation as shown: the base image with the heatmap canvas over it at the chosen opacity
COMPOSITE = """() => {
  const base = document.querySelector("#ex-base"), heat = document.querySelector("#ex-heat");
  const w = base.naturalWidth, h = base.naturalHeight;
  const c = document.createElement("canvas"); c.width = w; c.height = h;
  const ctx = c.getContext("2d"); ctx.drawImage(base, 0, 0);
  ctx.globalAlpha = +getComputedStyle(heat).opacity; ctx.drawImage(heat, 0, 0, w, h);
  const d = ctx.getImageData(0, 0, w, h).data;
  let n = 0, sum = 0, s2 = 0;
  for (let i = 0; i < d.length; i += 4) { const v = d[i] + d[i + 1] + d[i + 2]; sum += v; s2 += v * v; n++; }
  const m = sum / n;
  return {variance: s2 / n - m * m, heat: Array.from(heat.getContext("2d").getImageData(0, 0, heat.width, heat.height).data)};
}"""


@pytest.fixture(scope="module")
def cnn(inspector_http):
    """The small CNN, uploaded through the API (the upload through the page is its own test)."""
    r = httpx.post(inspector_http.http.url + "/api/v1/models", params={"name": "cnn"},
                   content=harness.small_cnn_bytes(21), timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["id"]


def open_model(page, inspector_http, model_id):
    page.goto(f"{inspector_http.http.url}/app/#/model/{model_id}")
    page.wait_for_selector(f"body[data-graph-ready='{model_id}']")
    page.wait_for_selector("#predictions table")  # the sample photo is picked and predicted


def rendered(page, sel, before=None):
    """Wait until `sel` carries a data-rendered stamp newer than `before`; return the stamp."""
    page.wait_for_function("([sel, before]) => { const e = document.querySelector(sel); "
                           "return e && e.dataset.rendered && e.dataset.rendered !== before; }", arg=[sel, before])
    return page.get_attribute(sel, "data-rendered")


def test_upload_open_graph_click_node_see_feature_grid_switch_colormap(page, inspector_http, tmp_path):
    model = tmp_path / "uploaded.onnx"
    model.write_bytes(harness.small_cnn_bytes(5))
    page.goto(inspector_http.http.url + "/")
    assert page.url.endswith("/app/")
    page.set_input_files("#upload-file", str(model))
    page.wait_for_selector("#model-table a.open:text-is('uploaded')")
    assert page.evaluate("window.inspectorTimings.uploads[0].progress.at(-1)") == 1  # the progress bar ran
    page.click("#model-table a.open:text-is('uploaded')")
    page.wait_for_selector("body[data-graph-ready]")
    page.wait_for_selector("#predictions table")
    assert page.locator("svg.graph .node").count() == 20 + 2  # 20 layers, the input and the output
    assert page.locator("svg.graph path.edge").count() >= 21
    assert page.locator("#layers tbody tr").count() == 20

    page.locator("svg.graph .node", has_text="conv2a").first.click()
    stamp = rendered(page, "#fm-grid")
    assert page.inner_text("#layer-title") == "conv2a"
    grid = page.evaluate(PIXELS, "#fm-grid")
    assert grid["variance"] > 0, grid
    assert page.locator("#fm-figure .labels span").count() == 8  # top-16 of 8 channels: all, labelled
    assert page.locator("#fm-stats svg.plot .ch").count() == 8
    page.wait_for_selector("#weights img.filters")  # conv2a has weights: the filter grid and histograms
    assert page.locator("#weights img.histogram").count() == 2

    page.select_option("#fm-cmap", "magma")
    rendered(page, "#fm-grid", stamp)
    magma = page.evaluate(PIXELS, "#fm-grid")
    assert magma["variance"] > 0 and magma["mean"] != grid["mean"]
    assert "magma" in page.inner_text("#fm-caption")
    bar = page.evaluate("getComputedStyle(document.querySelector('#fm-figure .colorbar .bar')).backgroundImage")
    assert bar.startswith("linear-gradient")

    for name in ("relu1", "conv4", "conv2a"):  # more clicks: time from the click to the grid on screen
        stamp = page.get_attribute("#fm-grid", "data-rendered")
        page.locator("#layers tbody tr", has_text=name).first.click()
        rendered(page, "#fm-grid", stamp)
    times = page.evaluate("window.inspectorTimings.clickToGrid")
    print(f"\nBROWSER-TIMING click->grid ms (first click builds the session): {[round(t) for t in times]}")
    assert len(times) == 4 and max(times[1:]) < 5000

    for name in ("gap", "flatten", "fc"):  # [N, C, 1, 1] and [N, C] outputs render as strips
        stamp = page.get_attribute("#fm-grid", "data-rendered")
        page.locator("#layers tbody tr", has_text=name).first.click()
        rendered(page, "#fm-grid", stamp)
        assert page.evaluate(PIXELS, "#fm-grid")["variance"] > 0

    page.click("header a.brand")  # back to the list: delete the model
    page.once("dialog", lambda d: d.accept())
    page.click("#model-table tr:has(a.open:text-is('uploaded')) button.delete")
    page.wait_for_selector("#model-table a.open:text-is('uploaded')", state="detached")


def test_gradcam_overlay_change_target_and_faithfulness(page, inspector_http, cnn, tmp_path):
    open_model(page, inspector_http, cnn)
    photo = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (48, 40, 3), np.uint8)).save(photo)
    before = page.inner_text("#predictions")
    page.set_input_files("#image-file", str(photo))  # an own image instead of the sample photo
    page.wait_for_selector("#image-name:text-is('noise.png')")
    page.wait_for_function("(before) => document.querySelector('#predictions table') && "
                           "document.querySelector('#predictions').innerText !== before", arg=before)
    page.click(".tabs button[data-tab=explain]")
    assert page.input_value("#ex-method") == "gradcam"
    page.click("#ex-run")
    stamp = rendered(page, "#ex-figure")
    first = page.evaluate(COMPOSITE)
    assert first["variance"] > 0
    assert len(set(first["heat"])) > 4  # a heatmap, not one colour
    assert "gradcam" in page.inner_text("#ex-caption")

    page.fill("#ex-opacity", "0.9")
    page.dispatch_event("#ex-opacity", "input")
    assert page.evaluate("getComputedStyle(document.querySelector('#ex-heat')).opacity") == "0.9"

    options = page.eval_on_selector_all("#ex-target option", "os => os.map(o => o.value)")
    assert len(options) == 7 and options[0] == "" and options[-1] == "custom"  # default, top-5, custom
    page.select_option("#ex-target", options[3])
    page.click("#ex-run")
    rendered(page, "#ex-figure", stamp)
    second = page.evaluate(COMPOSITE)
    assert second["variance"] > 0 and second["heat"] != first["heat"]
    assert f"logits[{options[3]}]" in page.inner_text("#ex-caption")

    page.click("#ex-eval")
    page.wait_for_selector("#ex-metrics table")
    text = page.inner_text("#ex-metrics")
    assert "deletion" in text and "insertion" in text


def test_maximize_shows_progress_and_cancel_stops_the_server(page, inspector_http, cnn):
    open_model(page, inspector_http, cnn)
    page.locator("#layers tbody tr", has_text="relu2a").first.click()
    rendered(page, "#fm-grid")  # nothing else running on the server from here on
    page.click(".tabs button[data-tab=maximize]")
    page.fill("#mx-channels", "0-3")
    page.fill("#mx-steps", "100000")
    page.fill("#mx-preview", "1")
    page.fill("#mx-size", "32")
    page.click("#mx-run")
    page.wait_for_function("+(document.querySelector('#mx-values').dataset.step || 0) >= 3")
    assert "step" in page.inner_text("#mx-task")
    assert 0 < page.evaluate("document.querySelector('#mx-task progress').value") < 1
    page.wait_for_function("document.querySelector('#mx-images img').src.startsWith('data:image/png')")
    preview = page.evaluate(PIXELS, "#mx-images img")
    assert preview["w"] == 32 and preview["variance"] > 0
    assert inspector_http.gate.running == 1
    page.click("#mx-task .cancel")
    page.wait_for_selector("#mx-error:text('Cancelled')")
    step = page.evaluate("document.querySelector('#mx-values').dataset.step")
    page.wait_for_timeout(500)
    assert page.evaluate("document.querySelector('#mx-values').dataset.step") == step  # no more progress
    assert page.locator("#mx-task").is_hidden()
    # the server should stop the work once the page aborts the stream and the connection closes
    deadline = time.monotonic() + 15
    while inspector_http.gate.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert inspector_http.gate.running == 0, "the server kept running the cancelled maximize"


DROP = """([b64, name]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], name));
  document.querySelector("#drop").dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
}"""


def test_drag_and_drop_upload(page, inspector_http):
    page.goto(inspector_http.http.url + "/app/")
    page.wait_for_selector("#model-table")
    page.evaluate(DROP, [base64.b64encode(harness.small_cnn_bytes(7)).decode(), "dropped.onnx"])
    page.wait_for_selector("#model-table a.open:text-is('dropped')")


def test_a_corrupt_upload_shows_the_servers_message(page, inspector_http, cnn, tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not an onnx model")
    page.goto(inspector_http.http.url + "/app/")
    page.wait_for_selector("#model-table")
    page.set_input_files("#upload-file", str(junk))
    error = page.wait_for_selector("#upload-error:not([hidden])")
    assert error.inner_text().startswith("INVALID_ARGUMENT: ")
    page.wait_for_selector("#upload-task", state="hidden")
    assert page.locator("#model-table a.open:text-is('junk')").count() == 0

    other = tmp_path / "other.onnx"  # a name another model holds: refused unless "replace" is ticked
    other.write_bytes(harness.small_cnn_bytes(9))
    page.fill("#upload-name", "cnn")
    page.set_input_files("#upload-file", str(other))
    page.wait_for_selector("#upload-error:text('FAILED_PRECONDITION: ')")
    assert "cnn" in page.inner_text("#upload-error")


def test_search_zoom_pan_and_load_time_of_a_resnet50_sized_graph(page, inspector_http):
    r = httpx.post(inspector_http.http.url + "/api/v1/models", params={"name": "r50"},
                   content=harness.resnet50_like().SerializeToString(), timeout=60)
    assert r.status_code == 200, r.text
    layers = len(r.json()["layers"])
    assert 170 <= layers <= 200
    page.goto(f"{inspector_http.http.url}/app/#/model/{r.json()['id']}")
    page.wait_for_selector("body[data-graph-ready]")
    t = page.evaluate("window.inspectorTimings.graph")
    print(f"\nBROWSER-TIMING {layers}-node graph: page load {t['sinceNavigationMs']:.0f} ms since navigation "
          f"(model info fetch {t['fetchMs']:.0f} ms, layout + SVG {t['layoutAndSvgMs']:.0f} ms)")
    assert t["sinceNavigationMs"] < 5000 and t["layoutAndSvgMs"] < 1000
    assert page.locator("svg.graph .node").count() == layers + 2

    transform = lambda: page.get_attribute("svg.graph .viewport", "transform")  # noqa: E731
    before = transform()
    box = page.locator("#graph").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, 400)
    zoomed = transform()
    assert zoomed != before and "scale(" in zoomed
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 120, box["y"] + box["height"] / 2 + 80, steps=5)
    page.mouse.up()
    assert transform() != zoomed

    page.fill("#search", "add")
    assert page.inner_text("#search-count") == "16 found"
    assert page.locator("svg.graph .node.match").count() == 16
    assert page.locator("#layers tr.match").count() == 16
    page.press("#search", "Enter")
    assert page.inner_text("#search-count") == "2 of 16"


def test_a_token_is_asked_for_once_and_sent_as_a_bearer_header(browser, tmp_path):
    server = harness.start_inspector(tmp_path / "store", tokens=("s3cret",))
    context = browser.new_context()
    try:
        page = context.new_page()
        seen = []
        page.on("request", lambda r: seen.append((r.url, r.headers.get("authorization"))))
        page.goto(server.http.url + "/app/")
        page.wait_for_selector("#token-dialog[open]")
        page.fill("#token-dialog input", "s3cret")
        page.click("#token-dialog button[value=ok]")
        page.wait_for_selector("#no-models:not([hidden])")  # the list loaded with the token
        assert not page.is_visible("#list-error")
        api = [(u, a) for u, a in seen if "/api/v1/" in u]
        assert api[-1][1] == "Bearer s3cret" and all("s3cret" not in u for u, _ in seen)
        assert page.evaluate("sessionStorage.getItem('inspector.token')") == "s3cret"
        assert context.cookies() == []
    finally:
        context.close()
        server.stop(1.0)
