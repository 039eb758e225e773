"""The documentation site (mkdocs.yml, tools/docs_hooks.py, tools/docs_i18n.py): every page in
English and Chinese with the same skeleton, the strict build failing on a broken link or anchor,
the hook's handling of links that leave docs/, and (marked slow) the built site in headless
Chromium. ``make docs-site`` builds the real site at the start of ``make test``."""

from __future__ import annotations

import functools
import http.server
import importlib.util
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(ROOT / "tools"))
import docs_i18n  # noqa: E402

mkdocs = pytest.importorskip("mkdocs", reason="the docs extra: pip install -e '.[docs]'")


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "tools" / "docs_hooks.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- every page in both languages -------------------------------------------------------------


def test_every_page_has_a_faithful_translation() -> None:
    english = {p for p in DOCS.rglob("*.md") if not p.name.endswith(".zh.md")}
    chinese = set(DOCS.rglob("*.zh.md"))
    untranslated = sorted(
        str(p.relative_to(DOCS)) for p in english if not p.with_suffix(".zh.md").exists()
    )
    orphans = sorted(
        str(p.relative_to(DOCS)) for p in chinese if not docs_i18n.english_of(p).exists()
    )
    assert not untranslated, f"pages without a Chinese page (docs/X.zh.md): {untranslated}"
    assert not orphans, f"Chinese pages without an English page: {orphans}"
    assert docs_i18n.main(["--all"]) == 0


ENGLISH = """# Title

Text with a [link](other.md#part) and `code`.

## Part

```bash
ppox train --preset cartpole
```
"""
CHINESE = """# 标题

带有[链接](other.md#part)和 `code` 的文字。

## 部分

```bash
ppox train --preset cartpole
```
"""


def test_the_translation_check_accepts_a_faithful_page_and_names_each_difference() -> None:
    assert docs_i18n.problems(ENGLISH, CHINESE) == []
    dropped = docs_i18n.problems(ENGLISH, CHINESE.replace("## 部分\n", ""))
    assert len(dropped) == 1 and "headings differ" in dropped[0]
    changed = docs_i18n.problems(ENGLISH, CHINESE.replace("cartpole", "pendulum"))
    assert changed == ["code block 1 differs from the English one (keep code blocks unchanged)"]
    relinked = docs_i18n.problems(ENGLISH, CHINESE.replace("other.md#part", "other.md"))
    assert any("link targets missing: ['other.md#part']" in p for p in relinked)
    untranslated = docs_i18n.problems(ENGLISH, ENGLISH)
    assert untranslated == ["no Chinese text outside code blocks"]


def test_a_generated_reference_is_included_not_copied() -> None:
    page = "# 配置参考\n\n说明。\n\n<!-- ppox:generated config.md -->\n"
    expanded = docs_i18n.expand_generated(page, DOCS)
    generated = (DOCS / "config.md").read_text(encoding="utf-8")
    assert (
        expanded.startswith("# 配置参考") and generated[generated.index("\n## ") + 1 :] in expanded
    )


# --- the hook: links that leave docs/, anchors of translated pages ----------------------------


def _rewrite(hooks: ModuleType, src: str, text: str) -> str:
    return hooks.outside_code(
        text, lambda line: hooks._LINK.sub(lambda m: hooks._link(m, src, ["benchmarks"]), line)
    )


def test_links_out_of_docs_become_site_pages_or_repository_paths() -> None:
    hooks = _hooks()
    bench = "[table](../benchmarks/results/suite/results.md#published-numbers)"
    assert (
        _rewrite(hooks, "guide.md", bench)
        == "[table](benchmarks/results/suite/results.md#published-numbers)"
    )
    assert (
        _rewrite(hooks, "design/losses.md", "[r](../../benchmarks/README.md)")
        == "[r](../benchmarks/README.md)"
    )
    shown = _rewrite(
        hooks, "reparameterization.md", "[the demo](../examples/reparameterization.py)"
    )
    assert shown == "[the demo](../examples/reparameterization.py)".replace(
        "[the demo](../examples/reparameterization.py)",
        "the demo (`examples/reparameterization.py`)",
    )
    # a benchmark page linking back into docs/
    back = _rewrite(hooks, "benchmarks/README.md", "[advantages](../docs/design/advantages.md)")
    assert back == "[advantages](../design/advantages.md)"
    # links between pages and code blocks are left to MkDocs
    assert _rewrite(hooks, "guide.md", "[p](presets.md#x)") == "[p](presets.md#x)"
    block = "```\n[x](../nowhere.py)\n```"
    assert _rewrite(hooks, "guide.md", block) == block


def test_a_link_to_a_missing_repository_file_fails_the_build() -> None:
    hooks = _hooks()
    with pytest.raises(
        mkdocs.exceptions.PluginError, match=r"docs/guide.md: the link '../examples/gone.py'"
    ):
        _rewrite(hooks, "guide.md", "[gone](../examples/gone.py)")


def test_a_translated_page_gets_the_english_anchors_and_must_keep_its_headings(
    tmp_path: Path,
) -> None:
    hooks = _hooks()
    (tmp_path / "p.md").write_text(
        "# Page\n\n## Recompute advantage: `recompute_adv` (realm 2, 稳扎稳打)\n\n## Part\n\n## Part\n"
    )
    zh = tmp_path / "p.zh.md"
    zh.write_text("# 页面\n\n## 重新计算优势\n\n## 部分\n\n## 部分\n")
    config = _config(tmp_path)
    out = hooks._english_anchors(zh.read_text(), config, str(zh), "p.md")
    ids = re.findall(r"\{ #([^ ]+) \}", out)
    assert ids == ["page", "recompute-advantage-recompute_adv-realm-2-稳扎稳打", "part", "part_1"]
    zh.write_text("# 页面\n\n## 重新计算优势\n")
    with pytest.raises(mkdocs.exceptions.PluginError, match="2 headings, its English page p.md 4"):
        hooks._english_anchors(zh.read_text(), config, str(zh), "p.md")


def test_chinese_lines_are_joined_without_a_space() -> None:
    hooks = _hooks()
    text = "第一行中文\n第二行\n乙\n第三行。\n- 列表\n`code`\n中文\n```\n代码\n代码\n```"
    assert (
        hooks._join_cjk_lines(text)
        == "第一行中文第二行乙第三行。\n- 列表\n`code`\n中文\n```\n代码\n代码\n```"
    )


def _config(docs_dir: Path) -> dict[str, object]:
    from mkdocs.config import load_config

    config = load_config(str(ROOT / "mkdocs.yml"))
    return {"docs_dir": str(docs_dir), "mdx_configs": config["mdx_configs"]}


# --- the strict build -------------------------------------------------------------------------


def _small_site(tmp_path: Path, pages: dict[str, str]) -> Path:
    """A copy of mkdocs.yml (no nav, no API pages) over ``pages``; returns its config file."""
    docs = tmp_path / "docs"
    docs.mkdir(parents=True)
    for name, text in pages.items():
        (docs / name).parent.mkdir(parents=True, exist_ok=True)
        (docs / name).write_text(text, encoding="utf-8")
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8").split("\nnav:")[0]
    config = config.replace("docs_dir: docs", f"docs_dir: {docs}").replace(
        "site_dir: site", f"site_dir: {tmp_path / 'site'}"
    )
    config = config.replace("repository_pages: [benchmarks]", "repository_pages: []")
    config = config.replace("  - tools/docs_hooks.py", f"  - {ROOT / 'tools' / 'docs_hooks.py'}")
    path = tmp_path / "mkdocs.yml"
    path.write_text(config, encoding="utf-8")
    return path


def _build(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config)],
        capture_output=True, text=True, timeout=300, env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


SMALL = {
    "index.md": "# Home\n\nSee [the part](other.md#a-part).\n",
    "index.zh.md": "# 首页\n\n见[这一部分](other.md#a-part)。\n",
    "other.md": "# Other\n\n## A part\n\nText.\n",
    "other.zh.md": "# 其他\n\n## 一部分\n\n文字。\n",
}


def test_the_strict_build_passes_a_sound_site_and_fails_on_a_broken_link_or_anchor(
    tmp_path: Path,
) -> None:
    sound = _build(_small_site(tmp_path / "sound", SMALL))
    assert sound.returncode == 0, sound.stderr[-3000:]
    assert (tmp_path / "sound" / "site" / "zh" / "other" / "index.html").exists()
    broken = dict(SMALL)
    broken["index.md"] = "# Home\n\nSee [the part](other.md#no-such-part) and [gone](gone.md).\n"
    result = _build(_small_site(tmp_path / "broken", broken))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "'index.md' contains a link 'gone.md', but the target is not found" in output
    assert "does not contain an anchor '#no-such-part'" in output
    assert "Aborted with 2 warnings in strict mode" in output


# --- the built site in a browser (slow) -------------------------------------------------------


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (browser and driver):
        pytest.skip("headless Chromium: apt-get install chromium chromium-driver")
    return browser, driver


@pytest.fixture(scope="module")
def served_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=ROOT, check=True, capture_output=True, timeout=600, env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


PAGES = [
    ("/", "ppox", "en"),
    ("/guide/", "User guide", "en"),
    ("/zh/", "ppox", "zh"),
    ("/zh/guide/", "用户指南", "zh"),
    ("/api/ppox/", "ppox", "en"),
    ("/benchmarks/results/suite/results/", "The learning table", "en"),
    ("/zh/benchmarks/results/suite/results/", "学习结果总表", "zh"),  # each language's own copy
]


@pytest.mark.slow
def test_pages_load_in_headless_chromium_with_navigation_search_and_no_console_error(
    served_site: str,
) -> None:
    browser, driver_path = _chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_window_size(1400, 1000)  # the desktop layout: navigation and search box shown
    try:
        for path, title, lang in PAGES:
            driver.get(served_site + path)
            assert title in driver.title, (path, driver.title)
            assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == lang
            nav = driver.find_elements(By.CSS_SELECTOR, "nav.md-nav--primary a.md-nav__link")
            assert len(nav) >= 10, (path, len(nav))
            assert driver.find_elements(By.CSS_SELECTOR, "input.md-search__input"), path
            languages = driver.find_elements(By.CSS_SELECTOR, "a[hreflang]")
            assert {a.get_attribute("hreflang") for a in languages} >= {"en", "zh"}, path
            errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            assert not errors, (path, errors)
        for path, query in (("/", "recompute"), ("/zh/", "优势")):  # the search box answers
            driver.get(served_site + path)
            box = driver.find_element(By.CSS_SELECTOR, "input.md-search__input")
            box.send_keys(query)
            WebDriverWait(driver, 20).until(
                lambda d: d.find_elements(By.CSS_SELECTOR, ".md-search-result__item")
            )
        driver.get(served_site + "/guide/")  # the language switch leads to the Chinese site
        zh = driver.find_element(By.CSS_SELECTOR, "a.md-select__link[hreflang=zh]")
        driver.get(zh.get_attribute("href"))
        assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh"
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        driver.quit()
