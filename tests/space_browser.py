"""What the browser tests of the Space wait for once a translation has started (selenium: the dev extra)."""

from __future__ import annotations

from selenium.webdriver.common.by import By


def wait_for_translation(wait):
    """The injected student's output box once it holds a translation and the heatmap image has loaded."""
    injected = wait.until(
        lambda d: next(
            (e for e in d.find_elements(By.CSS_SELECTOR, "#injected-output textarea") if e.get_attribute("value")),
            None,
        )
    )
    image = wait.until(lambda d: next(iter(d.find_elements(By.CSS_SELECTOR, "#heatmaps img")), None))
    wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", image))
    assert injected.get_attribute("value").strip()
    return injected
