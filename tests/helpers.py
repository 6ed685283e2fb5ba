"""Small helpers shared by tests (no fixtures here)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any
from xml.etree.ElementTree import Element

import html5lib

NS = "{http://www.w3.org/1999/xhtml}"


def demo_fixture() -> dict[str, Any]:
    return json.loads(resources.files("fedblog.demo").joinpath("demo.json").read_text(encoding="utf-8"))


def parse_html(text: str) -> Element:
    """Parse with a strict HTML5 parser: any parse error fails the test."""
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=True)
    return parser.parse(text)


def classes(el: Element) -> set[str]:
    return set((el.get("class") or "").split())


def find_all(root: Element, tag: str, cls: str | None = None) -> list[Element]:
    return [e for e in root.iter(NS + tag) if cls is None or cls in classes(e)]


def text_of(el: Element) -> str:
    return " ".join("".join(el.itertext()).split())
