"""The playground (``GET /`` of ``rxllm serve``) in a real browser, and what it stands on.

Headless Chromium (Debian's ``chromium`` and ``chromium-driver``, started here through
selenium) loads the page from ``rxllm serve --mock`` and runs a two-model comparison; then from
a gateway with a master key whose models are priced mock models and models on a loopback
:class:`tests.server.ReplayServer` in this process: the key lists the models, the costs shown
are the ones the gateway billed, and Stop closes the upstream connections (the replay server
sees each client leave). Screenshots go to the test's ``tmp_path``; with
``RXLLM_UPDATE_SCREENSHOT=1`` the priced comparison is also saved as ``docs/playground.png``.

Without chromium or chromedriver the browser tests skip, saying so, except in CI (``CI`` set),
which installs both (``.ci/run``) and where their absence fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from rxllm.gateway._playground import CSP, STATIC_FILES
from rxllm.pricing import price_of as rates

from ..server import Recorded, ReplayServer, Reply
from .conftest import MASTER, ROOT, Gateway, config_for, respond, write_config

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
#: Seconds a browser wait may take (two cores shared with other work: generous), and a
#: browser test's whole time (pytest-timeout, with the gateway's start).
WAIT = 45
BROWSER_TEST = pytest.mark.timeout(150)
STATIC = ROOT / "rxllm" / "gateway" / "_static"

FAST_ANSWER = (
    "Backpressure lets a slow reader hold a fast writer back: the gateway takes the next chunk "
    "from the upstream only once the client's socket has taken the last one."
)
SLOW_ANSWER = (
    "A stream is a promise about time as much as about text. The first token says the model "
    "is alive; the pace after it says whether a reader will wait. Measure both, side by side, "
    "and price what each one cost."
)
#: Two mock models with their own pace, answer and price (USD per token, as LiteLLM writes it).
MOCK_MODELS: list[dict[str, Any]] = [
    {
        "model_name": "mock-fast",
        "litellm_params": {
            "model": "mock/fast",
            "mock_response": FAST_ANSWER,
            "mock_delay": [0.15, 0.03],
            "input_cost_per_token": 0.15e-6,
            "output_cost_per_token": 0.6e-6,
        },
    },
    {
        "model_name": "mock-slow",
        "litellm_params": {
            "model": "mock/slow",
            "mock_response": SLOW_ANSWER,
            "mock_delay": [0.7, 0.07],
            "input_cost_per_token": 3e-6,
            "output_cost_per_token": 15e-6,
        },
    },
]


# --- the gateways, and HTTP to them -------------------------------------------------------------


@pytest.fixture(scope="module")
def mock_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """``rxllm serve --mock``: open, every model name answers, none is listed."""
    process = Gateway(["--mock"], cwd=tmp_path_factory.mktemp("mock"))
    yield process
    assert process.stop() == 0, process.stderr


@pytest.fixture(scope="module")
def keyed(
    upstream_server: ReplayServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """A gateway with a master key: ``gpt-4o`` and ``gpt-4o-mini`` on the replay server, and
    the priced mock models."""
    tmp = tmp_path_factory.mktemp("playground")
    config = config_for(upstream_server, master_key=MASTER, database_path=str(tmp / "keys.db"))
    config["model_list"] += [
        {
            "model_name": "gpt-4o-mini",
            "litellm_params": {
                "model": "openai/gpt-4o-mini",
                "api_base": upstream_server.base + "/v1",
                "api_key": "os.environ/UPSTREAM_KEY",
            },
        },
        *MOCK_MODELS,
    ]
    process = Gateway(["--config", str(write_config(tmp / "config.yaml", config))], cwd=tmp)
    yield process
    assert process.stop() == 0, process.stderr


def get(url: str, key: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url)
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


def billed(gateway: Gateway) -> dict[str, float]:
    """``rxllm_cost_usd_total`` by model name, from the gateway's ``/metrics``."""
    _, _, body = get(gateway.url("/metrics"))
    found = re.findall(r'^rxllm_cost_usd_total\{model="([^"]+)"\} (\S+)$', body.decode(), re.M)
    return {model: float(value) for model, value in found}


def left_early(gateway: Gateway) -> dict[str, float]:
    """Chat requests whose client left (status 499) by model name, from ``/metrics``."""
    _, _, body = get(gateway.url("/metrics"))
    found = re.findall(
        r'^rxllm_requests_total\{endpoint="/v1/chat/completions",model="([^"]+)",status="499"\}'
        r" (\S+)$",
        body.decode(),
        re.M,
    )
    return {model: float(value) for model, value in found}


# --- the page's files -----------------------------------------------------------------------


def test_the_page_and_its_files_are_served_under_a_strict_policy(mock_gateway: Gateway) -> None:
    status, headers, body = get(mock_gateway.url("/"))
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert headers["Content-Security-Policy"] == CSP
    assert CSP.startswith("default-src 'self';")
    assert "unsafe" not in CSP
    assert headers["X-Content-Type-Options"] == "nosniff"
    page = body.decode()
    # Every script is a file of this origin; no inline script, handler or style attribute.
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", page, re.S)
    assert scripts and all(
        'src="playground/' in attrs and not inner.strip() for attrs, inner in scripts
    )
    assert not re.search(r"\son[a-z]+\s*=", page, re.I)
    assert not re.search(r"\sstyle\s*=", page, re.I)
    assert "<style" not in page
    referenced = set(re.findall(r'(?:src|href)="playground/([^"]+)"', page))
    assert referenced == set(STATIC_FILES) - {"index.html"}
    for name in referenced:
        status, headers, content = get(mock_gateway.url(f"/playground/{name}"))
        assert status == 200, name
        assert headers["Content-Type"] == STATIC_FILES[name]
        assert headers["Content-Security-Policy"] == CSP
        assert content == (STATIC / name).read_bytes()
    # Nothing from another origin: no URL in the page, its script or its style sheet.
    for name in ("index.html", "playground.js", "playground.css"):
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", (STATIC / name).read_text()), (
            name
        )
    for wrong in ("/playground/nothing.js", "/playground/..%2f_app.py", "/playground/_app.py"):
        assert get(mock_gateway.url(wrong))[0] == 404, wrong


def test_the_page_needs_no_key_and_holds_no_secret(keyed: Gateway) -> None:
    status, _, body = get(keyed.url("/"))
    assert status == 200
    assert get(keyed.url("/v1/models"))[0] == 401  # the API still wants the key
    for name in STATIC_FILES:
        content = get(keyed.url(f"/playground/{name}"))[2] if name != "index.html" else body
        assert MASTER.encode() not in content
        assert b"sk-" not in content


def test_the_page_ships_with_the_package() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    package_data = pyproject.split("[tool.setuptools.package-data]", 1)[1].split("\n[", 1)[0]
    assert re.search(r'^rxllm = \[.*"gateway/_static/\*"', package_data, re.M), package_data
    assert {path.name for path in STATIC.iterdir()} == set(STATIC_FILES)


# --- the price look-up ------------------------------------------------------------------------


def test_prices_are_the_rates_the_gateway_bills_with(keyed: Gateway) -> None:
    from rxllm.pricing import cost_of as _cost
    from rxllm.types import PromptTokensDetails, Usage

    url = keyed.url("/v1/rxllm/prices")
    assert get(url + "?model=gpt-4o")[0] == 401
    assert get(url, MASTER)[0] == 400
    status, _, body = get(url + "?model=gpt-4o&model=claude", MASTER)
    assert status == 200
    answer = json.loads(body)
    assert answer["currency"] == "USD"
    assert [(d["provider"], d["model"]) for d in answer["data"]] == [
        ("openai_compatible", "gpt-4o"),
        ("anthropic", "claude-sonnet-4-5"),
    ]
    assert answer["data"][0]["price"]["input"] == 2.5
    # A config's input_cost_per_token, per million.
    status, _, body = get(url + "?provider=mock&model=slow", MASTER)
    assert json.loads(body)["data"] == [
        {
            "provider": "mock",
            "model": "slow",
            "price": {
                "input": pytest.approx(3.0),
                "output": pytest.approx(15.0),
                "cached_input": None,
                "cache_write": None,
                "cache_write_1h": None,
                "reasoning": None,
                "long_context_threshold": None,
                "long_context_input": None,
                "long_context_output": None,
            },
        }
    ]
    status, _, body = get(url + "?provider=mock&model=unpriced", MASTER)
    assert json.loads(body)["data"][0]["price"] is None

    # What the page computes from these rates (playground.js, costOf) is what the gateway bills.
    usages = [
        Usage(
            prompt_tokens=prompt,
            completion_tokens=345,
            total_tokens=prompt + 345,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=200),
        )
        for prompt in (1200, 250_000)  # below and above a long-context threshold
    ]
    for provider, model in [
        ("openai", "gpt-4o-2024-08-06"),
        ("openai_compatible", "gpt-4o"),
        ("anthropic", "claude-haiku-4-5-20251001"),
        ("gemini", "gemini-2.5-pro"),
    ]:
        price = rates(provider, model)
        assert price is not None, (provider, model)
        for usage in usages:
            assert cost_as_the_page_computes(msgspec.to_builtins(price), usage) == pytest.approx(
                _cost(provider, model, usage)
            ), (provider, model, usage)
    assert rates("mock", "anything") is None


def cost_as_the_page_computes(price: dict[str, Any], usage: Any) -> float:
    """playground.js's ``costOf``, line by line."""
    prompt, completion = usage.prompt_tokens, usage.completion_tokens
    input_price, output_price = price["input"], price["output"]
    threshold = price["long_context_threshold"]
    if threshold is not None and prompt > threshold:
        input_price = price["long_context_input"] or input_price
        output_price = price["long_context_output"] or output_price
    details = usage.prompt_tokens_details
    cached_tokens = (details and details.cached_tokens) or 0
    cached = min(max(cached_tokens, 0), prompt) if price["cached_input"] is not None else 0
    cached_price = price["cached_input"] or 0
    total = (prompt - cached) * input_price + cached * cached_price + completion * output_price
    return float(total / 1e6)


def test_the_page_computes_cost_with_that_formula() -> None:
    """The transcription above is the script's: same names, same steps."""
    script = (STATIC / "playground.js").read_text()
    body = script.split("function costOf(price, usage) {", 1)[1].split("\n  }\n", 1)[0]
    for step in (
        "price.long_context_threshold != null && prompt > price.long_context_threshold",
        "input = price.long_context_input || input;",
        "Math.min(Math.max(cachedTokens, 0), prompt)",
        "((prompt - cached) * input + cached * (price.cached_input || 0) + completion * output) / 1e6",
    ):
        assert step in body, step


# --- the browser --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if shutil.which(path) is None]
    if missing:
        reason = f"{' and '.join(missing)} missing: apt-get install chromium chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI installs them: .ci/run)")
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--force-device-scale-factor=1",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT)
    driver.set_script_timeout(WAIT)
    yield driver
    driver.quit()


def wait(driver: WebDriver, what: str, condition: Any, timeout: float = WAIT) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition, message=what)


def open_page(driver: WebDriver, gateway: Gateway, key: str = "") -> None:
    """Load the page with ``key`` in its key field (stored, as a user's would be)."""
    driver.get(gateway.url("/"))
    driver.execute_script("localStorage.clear()")
    driver.get(gateway.url("/"))
    driver.get_log("browser")  # what the loads before logged is not this test's
    field = driver.find_element(By.ID, "key")
    if key:
        field.send_keys(key)
        driver.find_element(By.ID, "prompt").click()  # leaves the field: `change` fires


def column(driver: WebDriver, model: str) -> Any:
    return driver.find_element(By.CSS_SELECTOR, f'article.column[data-model="{model}"]')


def columns(driver: WebDriver) -> dict[str, dict[str, str]]:
    """Each column's state, answer and statistics, read from the DOM."""
    found: dict[str, dict[str, str]] = driver.execute_script(
        """
        const out = {};
        for (const el of document.querySelectorAll("article.column")) {
          const text = (name) => el.querySelector("." + name).textContent;
          out[el.dataset.model] = {
            state: el.dataset.state, answer: text("answer"), ttft: text("ttft"),
            tps: text("tps"), tokens: text("tokens"), cost: text("cost"),
            usd: el.querySelector(".cost").dataset.usd || "",
            costTitle: el.querySelector(".cost").title, error: text("error"),
          };
        }
        return out;
        """
    )
    return found


def chart_pixels(driver: WebDriver) -> int:
    """How many pixels of the chart's canvas are painted."""
    painted: int = driver.execute_script(
        """
        const canvas = document.getElementById("chart");
        if (!canvas.width || !canvas.height) return 0;
        const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        let painted = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) painted++;
        return painted;
        """
    )
    return painted


def severe_logs(driver: WebDriver, *expected: str) -> list[str]:
    """The browser console's errors since the last call (a Content-Security-Policy violation
    is one), but those containing one of ``expected``."""
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" and not any(text in entry["message"] for text in expected)
    ]


def send(driver: WebDriver, prompt: str, *, extra_models: str = "", params: str = "") -> None:
    field = driver.find_element(By.ID, "extra-models")
    field.clear()
    if extra_models:
        field.send_keys(extra_models)
    if params:
        driver.find_element(By.CSS_SELECTOR, "details.params summary").click()
        driver.find_element(By.ID, "params").send_keys(params)
    driver.find_element(By.ID, "prompt").send_keys(prompt)
    driver.find_element(By.ID, "send").click()


def choose(driver: WebDriver, *models: str) -> None:
    """Tick ``models`` in the list the gateway's ``/v1/models`` filled, and nothing else."""
    wait(
        driver,
        f"{models} listed",
        lambda d: (
            set(models) <= {box.get_attribute("value") for box in d.find_elements(By.NAME, "model")}
        ),
    )
    for box in driver.find_elements(By.NAME, "model"):
        if box.is_selected() != (box.get_attribute("value") in models):
            box.click()


def screenshot(driver: WebDriver, path: Path) -> None:
    """The whole page (the window made as tall as it, within reason) as a PNG at ``path``."""
    frame = driver.get_window_size()["height"] - driver.execute_script("return innerHeight")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(int(height) + int(frame), 2400))
    driver.execute_script("window.scrollTo(0, 0)")
    assert driver.save_screenshot(str(path)), path
    assert path.stat().st_size > 10_000
    driver.set_window_size(1280, 1000)


FILLED = re.compile(r"^\d+(\.\d+)? (ms|s)$")
RATE = re.compile(r"^~?\d+\.\d$")


def milliseconds(shown: str) -> float:
    number, unit = shown.split()
    return float(number) * (1000 if unit == "s" else 1)


def status_is(driver: WebDriver, start: str) -> str:
    text: str = wait(
        driver,
        f"the status says {start!r}",
        lambda d: (t := d.find_element(By.ID, "status").text).startswith(start) and t,
    )
    return text


@BROWSER_TEST
def test_two_models_stream_side_by_side_from_rxllm_serve_mock(
    browser: WebDriver, mock_gateway: Gateway, tmp_path: Path
) -> None:
    open_page(browser, mock_gateway)
    wait(
        browser,
        "the page says the mock gateway lists no names",
        lambda d: "lists no model names" in d.find_element(By.ID, "models-note").text,
    )
    prompt = "Streams arrive chunk by chunk, and each column shows them as they come."
    send(
        browser,
        prompt,
        extra_models="gpt-4o, claude-sonnet-4-5",
        params='{"mock_delay": [0.25, 0.04]}',
    )
    models = ("gpt-4o", "claude-sonnet-4-5")

    def finished(driver: WebDriver) -> dict[str, dict[str, str]] | None:
        found = columns(driver)
        ready = set(found) == set(models) and all(
            c["state"] == "done" and c["answer"] == prompt and c["cost"] != "—"
            for c in found.values()
        )
        return found if ready else None

    # The mock echoes the prompt, word by word, in both columns.
    shown = wait(browser, "both columns streamed the answer", finished)
    for model in models:
        stats = shown[model]
        assert FILLED.match(stats["ttft"]), stats
        assert milliseconds(stats["ttft"]) >= 250  # mock_delay's first wait
        assert RATE.match(stats["tps"]), stats
        assert stats["tokens"] == "13", stats  # the usage the mock reported, not an estimate
        assert stats["cost"] == "no price", stats  # the price table has no mock rates
        assert "mock/" in stats["costTitle"], stats
    wait(browser, "the chart drawn", lambda d: chart_pixels(d) > 2000)
    assert browser.find_element(By.ID, "chart").get_attribute("data-drawn") == "2"
    legend = browser.find_element(By.ID, "legend").text
    assert "gpt-4o: 13 tokens" in legend and "claude-sonnet-4-5: 13 tokens" in legend
    status_is(browser, "2 done in")
    assert browser.find_element(By.ID, "send").is_enabled()
    assert not browser.find_element(By.ID, "stop").is_enabled()
    screenshot(browser, tmp_path / "playground-mock.png")
    assert severe_logs(browser) == []


@BROWSER_TEST
def test_with_a_master_key_the_page_lists_the_models_and_shows_what_was_billed(
    browser: WebDriver, keyed: Gateway, tmp_path: Path
) -> None:
    open_page(browser, keyed)
    wait(
        browser,
        "the page asks for the key",
        lambda d: "HTTP 401" in d.find_element(By.ID, "models-note").text,
    )
    field = browser.find_element(By.ID, "key")
    field.send_keys(MASTER)
    browser.find_element(By.ID, "prompt").click()
    choose(browser, "mock-fast", "mock-slow")
    assert browser.execute_script("return localStorage.getItem('rxllm.playground.key')") == MASTER
    before = billed(keyed)
    send(browser, "What does backpressure buy a streaming gateway?")
    answers = {"mock-fast": FAST_ANSWER, "mock-slow": SLOW_ANSWER}

    def finished(driver: WebDriver) -> dict[str, dict[str, str]] | None:
        found = columns(driver)
        ready = set(found) == set(answers) and all(
            found[m]["state"] == "done" and found[m]["answer"] == a and found[m]["usd"]
            for m, a in answers.items()
        )
        return found if ready else None

    shown = wait(browser, "both priced columns finished", finished)
    after = billed(keyed)
    for model in answers:
        stats = shown[model]
        assert FILLED.match(stats["ttft"]) and RATE.match(stats["tps"]), stats
        assert stats["cost"].startswith("$"), stats
        # The cost shown is what the gateway added to the key's spend for that request.
        charged = after[model] - before.get(model, 0.0)
        assert charged > 0
        assert float(stats["usd"]) == pytest.approx(charged, rel=1e-9), (model, stats)
    fast, slow = shown["mock-fast"], shown["mock-slow"]
    assert float(fast["usd"]) < float(slow["usd"])
    wait(browser, "the chart drawn", lambda d: chart_pixels(d) > 2000)
    status_is(browser, "2 done in")
    screenshot(browser, tmp_path / "playground.png")
    if os.environ.get("RXLLM_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(tmp_path / "playground.png", ROOT / "docs" / "playground.png")
    assert (
        severe_logs(
            browser,
            "v1/models - Failed to load resource: the server responded with a status of 401",
        )
        == []
    )


@BROWSER_TEST
def test_stop_closes_the_upstream_connections(
    browser: WebDriver, keyed: Gateway, upstream: ReplayServer
) -> None:
    # Each request of the run gets its own pair of events: the replay server takes
    # ``completed`` and ``disconnected`` right after asking its responder for the reply.
    seen: list[tuple[Recorded, threading.Event, threading.Event]] = []

    def responder(request: Recorded) -> Reply:
        upstream.completed, upstream.disconnected = threading.Event(), threading.Event()
        seen.append((request, upstream.completed, upstream.disconnected))
        return respond(request)

    upstream.responder = responder
    before = left_early(keyed)
    open_page(browser, keyed, MASTER)
    choose(browser, "gpt-4o", "gpt-4o-mini")
    send(browser, "Please answer slowly.")  # "slow": 400 paced chunks, about 40 s

    def streaming(driver: WebDriver) -> bool:
        found = columns(driver)
        return len(found) == 2 and all(
            c["state"] == "streaming" and "w3 " in c["answer"] for c in found.values()
        )

    wait(browser, "both columns streaming", streaming)
    assert len(seen) == 2
    assert {r.json()["model"] for r, _, _ in seen} == {"gpt-4o", "gpt-4o-mini"}
    browser.find_element(By.ID, "stop").click()
    for request, completed, disconnected in seen:
        assert disconnected.wait(WAIT), f"the upstream never saw {request.json()['model']} leave"
        assert not completed.is_set()
    after = left_early(keyed)  # and the gateway counted both as clients that left
    for model in ("gpt-4o", "gpt-4o-mini"):
        assert after.get(model, 0) - before.get(model, 0) == 1, (model, after)
    wait(
        browser,
        "both columns stopped",
        lambda d: {c["state"] for c in columns(d).values()} == {"stopped"},
    )
    shown = columns(browser)
    for stats in shown.values():
        assert stats["answer"].startswith("w0 w1 w2 w3 ")
        assert not stats["answer"].startswith(" ".join(f"w{i}" for i in range(400)))
        assert stats["cost"] == "—"  # no usage arrived: the gateway bills an estimate
    status_is(browser, "2 stopped in")
    assert severe_logs(browser) == []


@BROWSER_TEST
def test_failures_show_in_their_own_column(browser: WebDriver, keyed: Gateway) -> None:
    open_page(browser, keyed, MASTER)
    choose(browser, "mock-fast")
    # mock-fast fails mid-stream (an `event: error` after three chunks); no-such-model is
    # refused before any byte (HTTP 404).
    send(
        browser,
        "Fail, please.",
        extra_models="no-such-model",
        params='{"mock_error": 503, "mock_error_after": 3}',
    )
    models = {"mock-fast", "no-such-model"}
    shown = wait(
        browser,
        "both columns failed",
        lambda d: (
            (found := columns(d)).keys() == models
            and all(c["state"] == "error" for c in found.values())
            and found
        ),
    )
    fast, missing = shown["mock-fast"], shown["no-such-model"]
    assert fast["answer"] == " ".join(FAST_ANSWER.split()[:3])  # what came before the error
    assert "503" in fast["error"], fast
    assert FILLED.match(fast["ttft"]), fast
    assert missing["error"].startswith("HTTP 404: The model `no-such-model` does not exist"), (
        missing
    )
    assert missing["answer"] == "" and missing["ttft"] == "—"
    status_is(browser, "2 failed in")
    assert "bad" in (browser.find_element(By.ID, "status").get_attribute("class") or "")
    assert (
        severe_logs(
            browser,
            "chat/completions - Failed to load resource: the server responded with a status of 404",
        )
        == []
    )
