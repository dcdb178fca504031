"""Hypnogram and scoring files that sleep labs and public PSG databases export, one module per family.

====================================  ===========================================  ==============
Format                                Recognised by                                Module
====================================  ===========================================  ==============
Compumedics Profusion XML             root element ``<CMPStudyConfig>``            ``profusion``
NSRR PSG annotation XML               root element ``<PSGAnnotation>``             ``nsrr``
Embla / RemLogic event export XML     root element ``<EventExport>``               ``embla``
BIDS ``events.tsv``                   header with ``onset`` and ``duration``       ``bids``
Noxturnal event export (CSV)          header with start time, event, end time      ``nox``
One stage per line (YASA)             one stage or integer per line, no header     ``text``
DREAMS 5-s codes                      first line ``[HypnogramR&K]`` (or ``AASM``)  ``text``
====================================  ===========================================  ==============

:func:`somna.io.read_hypnogram` recognises each by its content (whatever the file's name) and calls
its reader here. Every reader returns a :class:`~somna.hypnogram.Hypnogram` of 30-s epochs, refuses a
broken file with a :class:`~somna.errors.HypnogramError` naming the file and the row or element, and
parses XML without expanding entities (:mod:`defusedxml`). :func:`write_bids_events` and
:func:`write_nsrr_xml` write the two open formats (``Hypnogram.to_bids_events`` /
``Hypnogram.to_nsrr_xml``).
"""

from __future__ import annotations

from pathlib import Path

from somna.errors import HypnogramError
from somna.hypnogram import Hypnogram
from somna.io.formats._common import local_name, parse_xml, read_bytes
from somna.io.formats.bids import read_bids_events, write_bids_events
from somna.io.formats.embla import embla_hypnogram, read_embla_xml
from somna.io.formats.nox import is_nox_header, read_noxturnal_csv
from somna.io.formats.nsrr import nsrr_hypnogram, read_nsrr_xml, write_nsrr_xml
from somna.io.formats.profusion import profusion_hypnogram, read_profusion_xml
from somna.io.formats.text import is_dreams_header, is_stage_line, read_dreams_hypnogram, read_stage_lines

__all__ = [
    "XML_ROOTS",
    "is_dreams_header",
    "is_nox_header",
    "is_stage_line",
    "read_bids_events",
    "read_dreams_hypnogram",
    "read_embla_xml",
    "read_noxturnal_csv",
    "read_nsrr_xml",
    "read_profusion_xml",
    "read_scoring_xml",
    "read_stage_lines",
    "write_bids_events",
    "write_nsrr_xml",
]

XML_ROOTS = {
    "CMPStudyConfig": profusion_hypnogram,
    "PSGAnnotation": nsrr_hypnogram,
    "EventExport": embla_hypnogram,
}
"""Root element of each XML scoring format, and the function that reads a parsed document of it."""


def read_scoring_xml(path: str | Path) -> Hypnogram:
    """Read an XML scoring file of any family in :data:`XML_ROOTS`, chosen by its root element.

    Raises
    ------
    HypnogramError
        For XML that is not well formed, declares entities, or has a root element of no known format
        (naming it), and for what the format's reader refuses.
    """
    path = Path(path)
    root = parse_xml(read_bytes(path), path)
    name = local_name(root.tag)
    if name not in XML_ROOTS:
        raise HypnogramError(
            f"is XML with root element <{name[:60]}>, not a scoring format somna reads "
            f"({', '.join(f'<{r}>' for r in XML_ROOTS)})",
            path,
        )
    return XML_ROOTS[name](root, path)
