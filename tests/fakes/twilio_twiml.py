"""The TwiML the fake Twilio understands: a `<Response>` parsed into verbs and their nouns."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field


class TwimlError(ValueError):
    """Not a TwiML document (Twilio's error 12100, document parse failure)."""


@dataclass(frozen=True)
class Noun:
    name: str  # Conference, Client, Number, Sip, Identity ...
    text: str
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Verb:
    name: str  # Say, Play, Pause, Hangup, Reject, Dial, Redirect ...
    text: str
    attrs: dict[str, str] = field(default_factory=dict)
    nouns: tuple[Noun, ...] = ()

    def number(self, attr: str, default: float) -> float:
        try:
            return float(self.attrs.get(attr, default))
        except ValueError:
            return default


def parse_twiml(document: str) -> list[Verb]:
    try:
        root = ET.fromstring(document.strip())
    except ET.ParseError as exc:
        raise TwimlError(f"invalid TwiML: {exc}") from None
    if root.tag != "Response":
        raise TwimlError(f"TwiML root must be <Response>, not <{root.tag}>")
    verbs = []
    for element in root:
        nouns = tuple(
            Noun(child.tag, _text(child), dict(child.attrib))
            for child in element
            if isinstance(child.tag, str)
        )
        verbs.append(Verb(element.tag, _text(element), dict(element.attrib), nouns))
    return verbs


def conference_of(verbs: list[Verb]) -> str | None:
    """The conference the first `<Dial><Conference>` of `verbs` joins, if any."""
    for verb in verbs:
        if verb.name == "Dial":
            for noun in verb.nouns:
                if noun.name == "Conference":
                    return noun.text
    return None


def joins_conference(document: str) -> bool:
    try:
        return conference_of(parse_twiml(document)) is not None
    except TwimlError:
        return False


def dial_targets(verb: Verb) -> list[str]:
    """Who a `<Dial>` without a conference rings: `client:id`, numbers, SIP URIs."""
    targets = []
    for noun in verb.nouns:
        if noun.name == "Client":
            name = noun.text
            targets.append(name if name.startswith("client:") else f"client:{name}")
        elif noun.name in ("Number", "Sip"):
            targets.append(noun.text)
    if not verb.nouns and verb.text:
        targets.append(verb.text)  # <Dial>+15551234567</Dial>
    return targets


def _text(element: ET.Element) -> str:
    return (element.text or "").strip()
