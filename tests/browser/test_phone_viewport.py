"""Both pages of the web demo on a phone screen (390×844 CSS px, an iPhone 12-15's viewport) in
headless Chromium: nothing is wider than the screen (no horizontal scrolling), checked once the page
is ready; screenshots in test-output/browser/phone-*.png."""
import pytest

from browser_util import watch_errors, wait_for_phase

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}

# The elements wider than the screen (what to fix when the check fails).
OVERFLOWING = """() => [...document.querySelectorAll('body *')]
  .filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
  .map((e) => `${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''}: right ${Math.round(e.getBoundingClientRect().right)} px`)"""


def open_on_phone(browser, url, ready_js, timeout_s):
    page = browser.new_page(viewport=PHONE, device_scale_factor=2, has_touch=True)
    errors = watch_errors(page)
    page.goto(url)
    page.wait_for_function(ready_js, timeout=timeout_s * 1000)
    return page, errors


def assert_fits(page):
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide: {page.evaluate(OVERFLOWING)}"


def test_demo_fits_a_phone_screen(browser, demo_site, output_dir):
    page, errors = open_on_phone(browser, f"{demo_site.url}?backend=wasm",
                                 "window.demo && ['ready', 'error'].includes(demo.state.phase)", 120)
    try:
        assert wait_for_phase(page, ["ready", "error"], 1)["phase"] == "ready"
        page.screenshot(path=str(output_dir / "phone-demo.png"), full_page=True)
        assert_fits(page)
        assert not errors
    finally:
        page.close()


def test_notebook_fits_a_phone_screen(browser, demo_site, output_dir):
    page, errors = open_on_phone(browser, f"{demo_site.url}pyodide.html",
                                 "window.notebook && ['ready', 'error'].includes(notebook.state.phase)", 120)
    try:
        assert page.evaluate("notebook.state.phase") == "ready", page.evaluate("notebook.state.error")
        page.screenshot(path=str(output_dir / "phone-notebook.png"), full_page=True)
        assert_fits(page)
        assert not errors
    finally:
        page.close()
