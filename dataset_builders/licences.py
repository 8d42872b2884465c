"""Under which terms the items of each source may be shared: the one table the cards and the Hub uploads read.

A dataset folder's licence follows from the ``source`` of its rows (DevCV) or from its corpus (SAYCam):
the card states it (:func:`card_licence`, :func:`licence_section`), and ``--push-to-hub`` refuses to
upload the images of a source this table does not know, or a restricted source to a public repository.

>>> sorted(card_licence(["ego4d"]).items())
[('license', 'other'), ('license_link', 'https://ego4ddataset.com/ego4d-license/'), ('license_name', 'ego4d-license')]
>>> card_licence(["saycam", "ego4d"])["license_name"]
'ego4d-license-and-databrary-access-agreement'
>>> print(publication_problem(["saycam"], private=False, gated=False))  # doctest: +NORMALIZE_WHITESPACE
items derived from SAYCam (source saycam) may only go to a private or gated repository
(Databrary access agreement): pass --private or --gated
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class SourceTerms:
    """How the frames of one source may be shared, as a Hub card states a licence."""

    title: str
    license: str
    """Hub licence id (``other`` with ``license_name`` for terms the Hub has no id for)."""
    license_name: str | None
    license_link: str | None
    public: bool
    """Whether a public repository may hold its images (False: private or gated only)."""
    terms: str
    """The access terms, in the card and in the gate's prompt."""


SOURCE_TERMS = {
    "saycam": SourceTerms(
        "SAYCam",
        "other",
        "databrary-access-agreement",
        "https://databrary.org/about/agreement.html",
        public=False,
        terms="SAYCam recordings are shared through Databrary: access requires an approved Databrary access "
        "agreement (authorised investigator, institutional approval). Use the data for research only and do "
        "not redistribute frames, crops or transcripts.",
    ),
    "ego4d": SourceTerms(
        "Ego4D",
        "other",
        "ego4d-license",
        "https://ego4ddataset.com/ego4d-license/",
        public=True,
        terms="Ego4D frames fall under the Ego4D licence agreement; the public Ego4D DevCV test set is "
        "released as `wsashawn/devcv_toolbox_ego4d`.",
    ),
    "toyworld": SourceTerms(
        "babyvlm toy world",
        "apache-2.0",
        None,
        None,
        public=True,
        terms="Toy-world images are rendered by babyvlm from its own synthetic scenes (Apache-2.0).",
    ),
}
RESTRICTED_NOTE = "access is gated: request it on this page and state that you hold the agreements below"


def _terms(sources: Iterable[str]) -> list[tuple[str, SourceTerms | None]]:
    return [(source, SOURCE_TERMS.get(source)) for source in sorted(set(sources))]


def card_licence(sources: Iterable[str]) -> dict:
    """The card's ``license`` (and ``license_name``, ``license_link``) for items of ``sources``.

    One known source gives its own licence; several give ``other`` named after all of them; a source
    this table does not know gives ``other`` named ``unstated``: the card then says the terms are unknown.
    """
    terms = _terms(sources)
    if len(terms) == 1 and terms[0][1] is not None:
        known = terms[0][1]
        return {
            key: value
            for key, value in (
                ("license", known.license),
                ("license_name", known.license_name),
                ("license_link", known.license_link),
            )
            if value
        }
    names = [(term.license_name or term.license) if term else "unstated" for _, term in terms]
    return {"license": "other", "license_name": "-and-".join(dict.fromkeys(names))}


def licence_section(sources: Iterable[str]) -> str:
    """Markdown list: the terms of each source (or that they are not stated)."""
    lines = []
    for source, term in _terms(sources):
        if term is None:
            lines.append(f"- `{source}`: no licence is stated for this source; do not redistribute its images.")
        else:
            link = f" ([{term.license_name or term.license}]({term.license_link}))" if term.license_link else ""
            lines.append(f"- `{source}` ({term.title}){link}: {term.terms}")
    return "\n".join(lines)


def restricted(sources: Iterable[str]) -> list[str]:
    """The sources among ``sources`` whose images a public repository may not hold."""
    return [source for source, term in _terms(sources) if term is not None and not term.public]


def publication_problem(sources: Iterable[str], *, private: bool, gated: bool) -> str | None:
    """Why items of ``sources`` may not be uploaded as asked (one line), or None when they may."""
    terms = _terms(sources)
    unknown = [source for source, term in terms if term is None]
    if unknown:
        return (
            f"the card states no licence for source {', '.join(unknown)}: its images are not uploaded "
            f"(known sources: {', '.join(SOURCE_TERMS)})"
        )
    blocked = restricted(sources)
    if blocked and not (private or gated):
        titles = ", ".join(SOURCE_TERMS[source].title for source in blocked)
        agreements = "; ".join(
            SOURCE_TERMS[source].license_name.replace("-", " ").capitalize()
            for source in blocked
            if SOURCE_TERMS[source].license_name
        )
        return (
            f"items derived from {titles} (source {', '.join(blocked)}) may only go to a private or gated "
            f"repository ({agreements}): pass --private or --gated"
        )
    return None


def gate_metadata(sources: Iterable[str]) -> dict:
    """The card's ``extra_gated_prompt`` and ``extra_gated_fields``: the terms an access request agrees to."""
    terms = [term for _, term in _terms(sources) if term is not None]
    prompt = " ".join(term.terms for term in terms)
    fields = {"Name": "text", "Affiliation": "text"}
    for term in terms:
        if not term.public:
            fields[f"I hold an approved {term.title} data-use agreement ({term.license_name})"] = "checkbox"
    fields["I will use the data for research only and not redistribute it"] = "checkbox"
    return {"extra_gated_prompt": f"{RESTRICTED_NOTE}. {prompt}", "extra_gated_fields": fields}


def size_category(rows: int) -> str:
    """The Hub's ``size_categories`` bucket for a dataset of ``rows`` rows.

    >>> size_category(999), size_category(1000), size_category(250_000)
    ('n<1K', '1K<n<10K', '100K<n<1M')
    """
    buckets = ["1K", "10K", "100K", "1M", "10M", "100M", "1B"]
    for index, bucket in enumerate(buckets):
        if rows < 10 ** (3 + index):
            return f"n<{bucket}" if index == 0 else f"{buckets[index - 1]}<n<{bucket}"
    return "n>1B"
