"""MkDocs hooks for ppox's documentation site (``mkdocs.yml`` names this file under ``hooks:``).

The pages in ``docs/`` are written to read well on their own (on GitHub, in an editor), so they
link to files of the repository outside ``docs/``: benchmark results, scripts, examples. The site
keeps those links honest instead of dropping them:

- ``benchmarks/README.md`` and every Markdown page and image under ``benchmarks/`` become pages
  and images of the site (under ``benchmarks/``), so a page's ``../benchmarks/results/x.md``
  link leads to the rendered table and its curves;
- a link to any other file of the repository (``../examples/x.py``, ``../../src/ppox/...``)
  becomes the file's repository path in code font, if the file exists; if it does not, the build
  fails naming the page and the link (a broken link is an error, as it is for links between
  pages under ``mkdocs build --strict``);
- a Chinese page (``X.zh.md``) gets, heading by heading, the anchors of its English page
  (``X.md``), so ``X.md#some-heading`` links work in both languages; the two pages must have the
  same headings (``tools/docs_i18n.py`` checks it, and so does the build);
- the folders named in ``extra.repository_pages`` (mkdocs.yml) are the ones whose pages join;
- each language's site gets the sitemap and a language switch pointing at the languages' roots
  (what Material's switch reads);
- ``<!-- ppox:generated PAGE -->`` on a line of its own is replaced by the body (from the first
  ``##`` section or table on) of the generated English page ``PAGE`` (the configuration references, made
  from the code's docstrings by ``make docs``), so a translated page never holds a stale copy.
"""

from __future__ import annotations

import posixpath
import re
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # MkDocs loads hooks by path
from docs_i18n import chunks, expand_generated, outside_code, split  # noqa: E402
from mkdocs import plugins
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
_SITE_SUFFIXES = (".md", ".png", ".svg", ".gif", ".jpg")
_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^()\s]+)\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
_CJK = "\u3000-\u303f\u4e00-\u9fff\uff00-\uffef"
_CJK_BREAK = re.compile(f"([{_CJK}])\n(?=[{_CJK}])")


def _join_cjk_lines(markdown: str) -> str:
    """Join lines broken between two CJK characters: a browser shows such a break as a space."""
    return "\n".join(
        text if code else _CJK_BREAK.sub(r"\1", text) for code, text in chunks(markdown)
    )


@plugins.event_priority(-100)  # after the i18n plugin has sorted docs/ into languages
def on_files(files: Files, config: Any, **_: Any) -> Files:
    """Add the repository's benchmark pages and images to the site, under the same paths (in
    each language's site: the Chinese build writes them under zh/, in its own theme)."""
    language = _language_folder(config)
    for folder in _site_dirs(config):
        for path in sorted((ROOT / folder).rglob("*")):
            if not path.is_file() or path.suffix not in _SITE_SUFFIXES:
                continue
            rel = path.relative_to(ROOT).as_posix()
            if files.get_file_from_path(rel) is None:
                file = File(rel, str(ROOT), config["site_dir"], config["use_directory_urls"])
                if language:  # where the i18n plugin puts this language's own pages
                    file.dest_uri = f"{language}/{file.dest_uri}"
                files.append(file)
    return files


def _language_folder(config: Any) -> str:
    """The folder of the language being built ("" for the default language)."""
    i18n = config["plugins"].get("i18n")
    if i18n is None:
        return ""
    default = next(lang.locale for lang in i18n.config.languages if lang.default)
    return "" if i18n.current_language == default else i18n.current_language


def _site_dirs(config: Any) -> list[str]:
    """Repository folders whose pages and images join the site (``extra.repository_pages``)."""
    return list(config["extra"].get("repository_pages", []))


def _repo_of(src_uri: str, dirs: list[str]) -> str:
    """The repository path of a site file (docs pages live in docs/, benchmark pages where they are)."""
    return src_uri if src_uri.split("/")[0] in dirs else f"docs/{src_uri}"


def _link(match: re.Match[str], src_uri: str, dirs: list[str]) -> str:
    """One Markdown link of page ``src_uri``, rewritten when it leaves the site's tree."""
    bang, text, target = match.groups()
    path, _, anchor = target.partition("#")
    if not path or "://" in path or path.startswith(("mailto:", "/")):
        return match.group(0)
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(_repo_of(src_uri, dirs)), path))
    if resolved.startswith("docs/"):
        site = resolved[len("docs/") :]
    elif resolved.split("/")[0] in dirs and Path(resolved).suffix in _SITE_SUFFIXES:
        site = resolved
    else:
        if resolved.startswith("../") or not (ROOT / resolved).exists():
            raise PluginError(
                f"{_repo_of(src_uri, dirs)}: the link {target!r} points to {resolved}, which does not exist"
            )
        if bang:
            raise PluginError(
                f"{_repo_of(src_uri, dirs)}: the image {target!r} is not part of the site"
            )
        shown = resolved + ("/" if (ROOT / resolved).is_dir() else "")
        return text if text.strip("`") in (resolved, shown) else f"{text} (`{shown}`)"
    rel = posixpath.relpath(site, posixpath.dirname(src_uri) or ".")
    return f"{bang}[{text}]({rel}{'#' + anchor if anchor else ''})"


def _plain(heading: str) -> str:
    """A heading's text as the table of contents sees it (Markdown rendered, tags stripped)."""
    import html

    import markdown

    rendered = markdown.markdown(heading)
    return html.unescape(re.sub(r"<[^>]+>", "", rendered)).strip()


def _english_anchors(markdown_text: str, config: Any, zh: str, src: str) -> str:
    english_path = Path(zh[: -len(".zh.md")] + ".md")
    english = expand_generated(english_path.read_text(encoding="utf-8"), english_path.parent)
    toc = config["mdx_configs"].get("toc", {})
    slugify = toc.get("slugify")
    if slugify is None:
        from markdown.extensions.toc import slugify
    separator = toc.get("separator", "-")
    heads = [text for _, text in split(english)[0]]  # the checker's own heading parser
    used: dict[str, int] = {}
    ids = []
    for text in heads:
        slug = slugify(_plain(text), separator)
        n = used.get(slug, 0)
        used[slug] = n + 1
        ids.append(slug if n == 0 else f"{slug}_{n}")
    remaining = iter(ids)
    count = 0

    def add_id(line: str) -> str:
        nonlocal count
        heading = _HEADING.match(line)
        if not heading:
            return line
        count += 1
        slug = next(remaining, None)
        if slug is None:
            return line
        return f"{heading.group(1)} {heading.group(2)} {{ #{slug} }}"

    out = outside_code(markdown_text, add_id)
    if count != len(ids):
        raise PluginError(
            f"{src}: {count} headings, its English page {english_path.name} {len(ids)}; a translated "
            "page keeps one heading per English heading (python tools/docs_i18n.py --all)"
        )
    return out


def on_page_markdown(markdown_text: str, page: Any, config: Any, **_: Any) -> str:
    src = page.file.src_uri
    dirs = _site_dirs(config)
    markdown_text = expand_generated(markdown_text, Path(config["docs_dir"]))
    markdown_text = outside_code(
        markdown_text, lambda line: _LINK.sub(lambda m: _link(m, src, dirs), line)
    )
    abs_src = page.file.abs_src_path or ""
    if abs_src.endswith(".zh.md"):
        markdown_text = _join_cjk_lines(_english_anchors(markdown_text, config, abs_src, src))
    return markdown_text


def on_post_build(config: Any, **_: Any) -> None:
    """Give each language's site the sitemap: the i18n plugin writes one (with every language's
    pages) at the top only, and Material's language switch fetches it from the language's own
    root to stay on the same page (without it the Chinese pages log a failed request)."""
    site = Path(config["site_dir"])
    i18n = config["plugins"].get("i18n")
    for language in i18n.config.languages if i18n else []:
        folder = site / language.locale
        if language.default or not folder.is_dir():
            continue
        for name in ("sitemap.xml", "sitemap.xml.gz"):
            if (site / name).exists():
                shutil.copyfile(site / name, folder / name)


@plugins.event_priority(-100)  # after the i18n plugin has pointed the switch at this page's twin
def on_page_context(context: Any, page: Any, config: Any, **_: Any) -> Any:
    """Point the language switch at each language's root (``extra.alternate`` in mkdocs.yml).

    Material fetches ``sitemap.xml`` beside every alternate link to find the same page in the
    other language; the i18n plugin's per-page links would make it ask for a sitemap inside every
    page's folder, a failed request logged on every page."""
    roots = config["extra"].get("alternate_roots")
    if roots:  # the i18n plugin sets it as an attribute, which the templates read first
        config.extra.alternate = [dict(root) for root in roots]
    return context
