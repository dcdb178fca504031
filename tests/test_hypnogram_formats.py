"""Scoring files of sleep labs and public databases (somna.io.formats), read by content and written back.

Each fixture is written here from the format's public description (the module docstrings of
``somna.io.formats`` name the sources), with the quirks real exports have: XML declarations, comments and
namespaces, unscored and movement codes, events that are not stages, clock times across midnight,
UTF-16 with a byte-order mark, BIDS's ``n/a``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from somna.errors import HypnogramError
from somna.hypnogram import Hypnogram
from somna.io import read_hypnogram
from somna.io.formats import (
    read_bids_events,
    read_dreams_hypnogram,
    read_embla_xml,
    read_noxturnal_csv,
    read_nsrr_xml,
    read_profusion_xml,
    read_stage_lines,
    write_bids_events,
    write_nsrr_xml,
)
from somna.stages import AASM, RK, THREE_CLASS, UNSCORED

U = UNSCORED


def _counts(hyp: Hypnogram) -> dict[str, int]:
    return {label: n for label, n in hyp.counts().items() if n}


# --- Compumedics Profusion XML ------------------------------------------------------------------

PROFUSION = """<?xml version="1.0" encoding="utf-8"?>
<!--Compumedics compare-->
<CMPStudyConfig>
<EpochLength>30</EpochLength>
<StepChannels><StepChannel><Input>LIGHT</Input><Labels><Label>ON</Label><Label>OFF</Label></Labels>
</StepChannel></StepChannels>
<ScoredEventSettings><ScoredEventSetting><Name>Obstructive Apnea</Name><Colour>16628921</Colour>
<TextColour>4194304</TextColour><Input>ABDO RES</Input></ScoredEventSetting></ScoredEventSettings>
<ScoredEvents>
<ScoredEvent><LowestSpO2>90</LowestSpO2><Desaturation>3</Desaturation><Name>SpO2 desaturation</Name>
<Start>95.5</Start><Duration>13.4</Duration><Input>SaO2</Input></ScoredEvent>
<!-- an arousal -->
<ScoredEvent><Name>Arousal (ASDA)</Name><Start>130</Start><Duration>4.0</Duration><Input>C3</Input>
</ScoredEvent>
</ScoredEvents>
<SleepStages>
<SleepStage>0</SleepStage><SleepStage>0</SleepStage><SleepStage>0</SleepStage><SleepStage>1</SleepStage>
<SleepStage>2</SleepStage><SleepStage>2</SleepStage><SleepStage>3</SleepStage><SleepStage>{n3}</SleepStage>
<SleepStage>5</SleepStage><SleepStage>5</SleepStage><SleepStage>9</SleepStage><SleepStage>0</SleepStage>
</SleepStages>
</CMPStudyConfig>
"""


def test_profusion_xml_with_comment_reads_as_aasm(tmp_path):
    # The file that failed as "unknown sleep stage '<!--Compumedics compare-->' in row 2".
    path = tmp_path / "shhs1-200001-profusion.xml"
    path.write_text(PROFUSION.format(n3=3))
    hyp = read_hypnogram(path)
    assert hyp.label_set is AASM
    assert hyp.stages.tolist() == [0, 0, 0, 1, 2, 2, 3, 3, 4, 4, U, 0]
    assert _counts(hyp) == {"W": 4, "N1": 1, "N2": 2, "N3": 2, "REM": 2, "?": 1}
    assert hyp.start is None and hyp.lights_off_s is None
    assert hyp.events == [(95.5, "SpO2 desaturation"), (130.0, "Arousal (ASDA)")]


def test_profusion_stage_4_gives_rk_and_misleading_extension(tmp_path):
    path = tmp_path / "scoring.txt"  # an XML export saved as .txt is still XML
    path.write_text(PROFUSION.format(n3=4))
    hyp = read_hypnogram(path)
    assert hyp.label_set is RK
    assert _counts(hyp) == {"W": 4, "S1": 1, "S2": 2, "S3": 1, "S4": 1, "REM": 2, "?": 1}
    assert read_profusion_xml(path).stages.tolist() == hyp.stages.tolist()


def test_profusion_short_epochs_are_regrouped(tmp_path):
    codes = [2, 2, 3, 3, 0, 2, 5, 5]  # 15-s epochs: N2, N3, mixed W/N2, REM
    body = "".join(f"<SleepStage>{c}</SleepStage>" for c in codes)
    path = tmp_path / "p.xml"
    path.write_text(
        f"<CMPStudyConfig><EpochLength>15</EpochLength><SleepStages>{body}</SleepStages></CMPStudyConfig>"
    )
    hyp = read_hypnogram(path)
    assert hyp.stages.tolist() == [2, 3, U, 4]
    assert hyp.info["mixed_epochs"] == 1


@pytest.mark.parametrize(
    ("xml", "match"),
    [
        ("<CMPStudyConfig><SleepStages><SleepStage>0</SleepStage><SleepStage>x</SleepStage>"
         "</SleepStages></CMPStudyConfig>", r"<SleepStage> 2 \(epoch 1\) is 'x', not an integer"),
        ("<CMPStudyConfig><EpochLength>30</EpochLength></CMPStudyConfig>", "has no <SleepStages>"),
        ("<CMPStudyConfig><EpochLength>20</EpochLength><SleepStages><SleepStage>0</SleepStage>"
         "</SleepStages></CMPStudyConfig>", "<EpochLength> is 20 s"),
        ("<CMPStudyConfig><ScoredEvents><ScoredEvent><Name>Hypopnea</Name><Start>soon</Start></ScoredEvent>"
         "</ScoredEvents><SleepStages><SleepStage>0</SleepStage></SleepStages></CMPStudyConfig>",
         r"<ScoredEvent> 1 \('Hypopnea'\) <Start> is 'soon', not a number"),
    ],
)  # fmt: skip
def test_profusion_errors_name_the_element(tmp_path, xml, match):
    path = tmp_path / "bad.xml"
    path.write_text(xml)
    with pytest.raises(HypnogramError, match=match) as err:
        read_hypnogram(path)
    assert str(path) in str(err.value)


# --- NSRR PSG annotation XML --------------------------------------------------------------------


def _nsrr_event(event_type: str, concept: str, start: float, duration: float, extra: str = "") -> str:
    kind = f"<EventType>{event_type}</EventType>" if event_type else "<EventType/>"
    return (
        f"<ScoredEvent>{kind}<EventConcept>{concept}</EventConcept><Start>{start}</Start>"
        f"<Duration>{duration}</Duration>{extra}</ScoredEvent>"
    )


def _nsrr(events: list[str], root: str = "<PSGAnnotation>") -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
        f"{root}\n<SoftwareVersion>Compumedics</SoftwareVersion>\n<EpochLength>30</EpochLength>\n"
        "<ScoredEvents>\n" + "\n".join(events) + "\n</ScoredEvents>\n</PSGAnnotation>\n"
    )


NSRR_EVENTS = [
    _nsrr_event("", "Recording Start Time", 0, 32820.0, "<ClockTime>01.01.85 20.29.59</ClockTime>"),
    _nsrr_event("Stages|Stages", "Wake|0", 0.0, 90.0),
    _nsrr_event("", "Lights off|LightsOff", 30.0, 0.0),
    _nsrr_event("Stages|Stages", "Stage 1 sleep|1", 90.0, 30.0),
    _nsrr_event("Stages|Stages", "Stage 2 sleep|2", 120.0, 90.0),
    _nsrr_event("Arousals|Arousals", "Arousal|Arousal ()", 150.0, 5.0),
    "<!-- respiratory events follow -->",
    _nsrr_event("Stages|Stages", "Stage 3 sleep|3", 210.0, 60.0),
    _nsrr_event(
        "Respiratory|Respiratory",
        "Obstructive apnea|Obstructive Apnea",
        220.0,
        12.5,
        "<SignalLocation>ABDO RES</SignalLocation>",
    ),
    _nsrr_event("Stages|Stages", "REM sleep|5", 270.0, 60.0),
    _nsrr_event("Stages|Stages", "Unscored|9", 330.0, 30.0),
    _nsrr_event("", "Lights on|LightsOn", 360.0, 0.0),
]


def test_nsrr_xml_stages_lights_events_and_clock(tmp_path):
    path = tmp_path / "mesa-sleep-0001-nsrr.xml"
    path.write_text(_nsrr(NSRR_EVENTS))
    hyp = read_hypnogram(path)
    assert hyp.label_set is AASM
    assert hyp.stages.tolist() == [0, 0, 0, 1, 2, 2, 2, 3, 3, 4, 4, U]
    assert _counts(hyp) == {"W": 3, "N1": 1, "N2": 3, "N3": 2, "REM": 2, "?": 1}
    assert hyp.start == dt.datetime(1985, 1, 1, 20, 29, 59)
    assert (hyp.lights_off_s, hyp.lights_on_s) == (30.0, 360.0)
    assert hyp.events == [(150.0, "Arousal|Arousal ()"), (220.0, "Obstructive apnea|Obstructive Apnea")]


def test_nsrr_namespace_stage_4_movement_and_late_first_stage(tmp_path):
    # An SHHS-like R&K file in a namespace, whose first stage event starts 60 s after the recording:
    # epoch 0 stays the recording's first, its first two epochs unscored.
    events = [
        _nsrr_event("Stages|Stages", "Stage 4 sleep|4", 90.0, 30.0),
        _nsrr_event("Stages|Stages", "Wake|0", 60.0, 30.0),
        _nsrr_event("Stages|Stages", "Movement|6", 120.0, 30.0),
        _nsrr_event("Stages|Stages", "REM sleep|5", 150.0, 30.0),
    ]
    path = tmp_path / "shhs.csv"  # misleading extension
    path.write_text(_nsrr(events, '<PSGAnnotation xmlns="http://www.example.org/nsrr">').replace(
        "</PSGAnnotation>", "</PSGAnnotation>"))  # fmt: skip
    hyp = read_nsrr_xml(path)
    assert hyp.label_set is RK
    assert hyp.stages.tolist() == [U, U, 0, RK.code("S4"), U, RK.code("REM")]
    assert hyp.start is None  # no Recording Start Time
    assert read_hypnogram(path).stages.tolist() == hyp.stages.tolist()


def test_nsrr_ontology_concepts(tmp_path):
    events = [
        _nsrr_event("", "SDO:WakeState", 0, 30),
        _nsrr_event("", "SDO:NonRapidEyeMovementSleep-N2", 30, 60),
        _nsrr_event("", "SDO:RapidEyeMovementSleep", 90, 30),
    ]
    path = tmp_path / "sdo.xml"
    path.write_text(_nsrr(events))
    assert read_hypnogram(path).stages.tolist() == [0, 2, 2, 4]


def _stages(*events: tuple[str, object, object]) -> list[str]:
    return [_nsrr_event("Stages|Stages", concept, start, duration) for concept, start, duration in events]


@pytest.mark.parametrize(
    ("events", "match"),
    [
        (
            _stages(("Wake|0", 0, 30), ("Stage 7 sleep|7", 30, 30)),
            r"<ScoredEvent> 2 \('Stage 7 sleep\|7'\) has EventType 'Stages\|Stages' and an unknown stage",
        ),
        (
            _stages(("Wake|0", 0, 60), ("Stage 2 sleep|2", 30, 30)),
            r"<ScoredEvent> 2 \('Stage 2 sleep\|2'\) at 30 s overlaps an earlier stage",
        ),
        (_stages(("Wake|0", 0, 30), ("Stage 2 sleep|2", 45, 30)), "at 45 s is not on the 30-s grid"),
        (_stages(("Wake|0", 0, 45)), "lasts 45 s, not a whole number of 30-s epochs"),
        (_stages(("Wake|0", "n/a", 30)), r"<ScoredEvent> 1 \('Wake\|0'\) <Start> is 'n/a'"),
        ([_nsrr_event("Arousals|Arousals", "Arousal|Arousal ()", 0, 3)], "has no sleep-stage <ScoredEvent>"),
    ],
)
def test_nsrr_errors_name_the_event(tmp_path, events, match):
    path = tmp_path / "bad-nsrr.xml"
    path.write_text(_nsrr(events))
    with pytest.raises(HypnogramError, match=match) as err:
        read_hypnogram(path)
    assert str(path) in str(err.value)


def test_nsrr_start_beyond_the_calendar_is_an_error(tmp_path):
    events = [
        _nsrr_event("", "Recording Start Time", 0, 60, "<ClockTime>31.12.9999 23.59.59</ClockTime>"),
        _nsrr_event("Stages|Stages", "Wake|0", 45, 30),  # off the recording's grid: epoch 0 at 45 s
    ]
    path = tmp_path / "y9999.xml"
    path.write_text(_nsrr(events))
    with pytest.raises(HypnogramError, match="beyond the calendar"):
        read_hypnogram(path)


def test_truncated_xml_is_a_clear_error(tmp_path):
    text = _nsrr(NSRR_EVENTS)
    path = tmp_path / "truncated.xml"
    path.write_text(text[: len(text) // 2])
    with pytest.raises(
        HypnogramError, match=r"is not well-formed XML \(.*line \d+.*\); truncated or corrupt"
    ):
        read_hypnogram(path)


def test_xml_entities_are_refused_not_expanded(tmp_path):
    laughs = (
        '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>\n'
        "<PSGAnnotation><ScoredEvents>" + _nsrr_event("Stages|Stages", "&lol2;", 0, 30) + "</ScoredEvents>"
        "</PSGAnnotation>"
    )
    path = tmp_path / "lolz.xml"
    path.write_text(laughs)
    with pytest.raises(HypnogramError, match="declares a DTD or entities"):
        read_hypnogram(path)


def test_xml_of_another_kind_names_its_root(tmp_path):
    path = tmp_path / "other.xml"
    path.write_text('<?xml version="1.0"?><ns:Annotations xmlns:ns="urn:x"><a/></ns:Annotations>')
    with pytest.raises(HypnogramError, match=r"root element <Annotations>, not a scoring format"):
        read_hypnogram(path)


# --- Embla / RemLogic event export --------------------------------------------------------------


def _embla_event(kind: str, start: str, stop: str | None) -> str:
    stop_element = f"<StopTime>{stop}</StopTime>" if stop else ""
    return f"<Event><Type>{kind}</Type><StartTime>{start}</StartTime>{stop_element}</Event>"


def _embla(events: list[tuple[str, str, str | None]], root: str = "<EventExport>") -> str:
    body = "\n".join(_embla_event(*e) for e in events)
    return f'<?xml version="1.0" encoding="utf-8"?>\n{root}\n<Events>\n{body}\n</Events>\n</EventExport>\n'


EMBLA_EVENTS = [
    ("LIGHTS-OFF", "2019-01-01T23:58:10.000000", "2019-01-01T23:58:10.000000"),
    ("SLEEP-S0", "2019-01-01T23:58:30.000000", "2019-01-01T23:59:30.000000"),
    ("SLEEP-S1", "2019-01-01T23:59:30.000000", "2019-01-02T00:00:00.000000"),
    ("SLEEP-S2", "2019-01-02T00:00:00.000000", "2019-01-02T00:01:30.000000"),
    ("AROUSAL", "2019-01-02T00:00:40.500000", "2019-01-02T00:00:47.000000"),
    ("SLEEP-MT", "2019-01-02T00:01:30.000000", "2019-01-02T00:02:00.000000"),
    ("SLEEP-S3", "2019-01-02T00:02:00.000000", "2019-01-02T00:03:00.000000"),
    ("SLEEP-REM", "2019-01-02T00:03:00.000000", "2019-01-02T00:03:30.000000"),
    ("SLEEP-UNSCORED", "2019-01-02T00:03:30.000000", None),
    ("LIGHTS-ON", "2019-01-02T00:04:00.000000", "2019-01-02T00:04:00.000000"),
]


def test_embla_clock_times_across_midnight(tmp_path):
    path = tmp_path / "night.edf"  # an XML export under an EDF name is still read as XML
    path.write_text(_embla(EMBLA_EVENTS))
    hyp = read_hypnogram(path)
    assert hyp.label_set is AASM
    assert hyp.stages.tolist() == [0, 0, 1, 2, 2, 2, U, 3, 3, 4, U]
    assert _counts(hyp) == {"W": 2, "N1": 1, "N2": 3, "N3": 2, "REM": 1, "?": 2}
    assert hyp.start == dt.datetime(2019, 1, 1, 23, 58, 30)
    assert (hyp.lights_off_s, hyp.lights_on_s) == (-20.0, 330.0)
    assert hyp.events == [(130.5, "AROUSAL")]


def test_embla_given_start_namespace_and_s4(tmp_path):
    events = [
        ("SLEEP-S0", "2019-01-01T22:31:00", "2019-01-01T22:31:30"),
        ("SLEEP-S4", "2019-01-01T22:31:30", "2019-01-01T22:32:00"),
    ]
    path = tmp_path / "embla.xml"
    path.write_text(_embla(events, '<EventExport xmlns="http://www.embla.com/EventExport">'))
    hyp = read_embla_xml(path, start=dt.datetime(2019, 1, 1, 22, 30))
    assert hyp.label_set is RK
    assert hyp.stages.tolist() == [U, U, 0, RK.code("S4")]
    assert hyp.start == dt.datetime(2019, 1, 1, 22, 30)
    with pytest.raises(HypnogramError, match="at -30 s lies before epoch 0"):
        read_embla_xml(path, start=dt.datetime(2019, 1, 1, 22, 31, 30))
    with pytest.raises(HypnogramError, match="is not on the 30-s grid of epoch 0"):
        read_embla_xml(path, start=dt.datetime(2019, 1, 1, 22, 30, 10))


@pytest.mark.parametrize(
    ("event", "match"),
    [
        (("SLEEP-S9", "2019-01-01T22:31:00", None), r"<Event> 2 \('SLEEP-S9'\) is an unknown stage type"),
        (("SLEEP-S2", "1 January, evening", None), r"<Event> 2 \('SLEEP-S2'\) <StartTime> is '1 January"),
        (("SLEEP-S2", "2019-01-01T22:31:00", "2019-01-01T22:30:00"), "stops before it starts"),
    ],
)
def test_embla_errors_name_the_event(tmp_path, event, match):
    path = tmp_path / "bad.xml"
    path.write_text(_embla([("SLEEP-S0", "2019-01-01T22:30:30", None), event]))
    with pytest.raises(HypnogramError, match=match):
        read_hypnogram(path)


# --- BIDS events.tsv ----------------------------------------------------------------------------

SLEEP_EDF_BIDS = """onset\tduration\ttrial_type\tvalue\tsample
0.0\t90.0\tSleep stage W\t1\t0
15.0\t0.0\tLights off\tn/a\t1500
90.0\t30.0\tSleep stage 1\t2\t9000
120.0\t60.0\tSleep stage 2\t3\t12000
180.0\t30.0\tSleep stage 3\t4\t18000
210.0\t30.0\tSleep stage 4\t5\t21000
240.0\t60.0\tSleep stage R\t6\t24000
250.0\tn/a\tArousal\tn/a\t25000
300.0\t30.0\tMovement time\t7\t30000
330.0\tn/a\tSleep stage ?\t8\t33000
345.0\t0\tn/a\tn/a\t34500
"""


def test_bids_events_sleep_edf_labels(tmp_path):
    path = tmp_path / "sub-4001_task-sleep_events.tsv"
    path.write_text(SLEEP_EDF_BIDS)
    hyp = read_hypnogram(path)
    assert hyp.label_set is RK
    assert _counts(hyp) == {"W": 3, "S1": 1, "S2": 2, "S3": 1, "S4": 1, "REM": 2, "?": 2}
    assert len(hyp) == 12 and hyp.start is None
    assert hyp.lights_off_s == 15.0 and hyp.lights_on_s is None
    assert hyp.events == [(250.0, "Arousal")]
    moved = tmp_path / "events.txt"  # detected by its header, not its name
    moved.write_text(SLEEP_EDF_BIDS)
    assert read_hypnogram(moved).stages.tolist() == hyp.stages.tolist()


def test_bids_aasm_description_column_and_offset_start(tmp_path):
    path = tmp_path / "events.tsv"
    path.write_text("onset\tduration\tdescription\n45\t30\tSleep stage W\n75\t60\tSleep stage N2\n")
    hyp = read_bids_events(path)
    assert hyp.label_set is AASM
    assert hyp.stages.tolist() == [0, 2, 2]  # 45 s is off the recording's grid: epoch 0 at the first stage


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("onset\tduration\ttrial_type\nabc\t30\tSleep stage W\n", r"row 2: onset is 'abc', not a number"),
        (
            "onset\tduration\ttrial_type\n0\t30\tSleep stage X\n",
            r"unknown sleep stage 'Sleep stage X' in row 2",
        ),
        ("onset\tduration\ttrial_type\n0\t30\tSleep stage 1\n30\t30\tSleep stage N2\n", "mixes R&K"),
        ("onset\tduration\ttrial_type\n0\t30\n", "row 2 has 2 cells, the header 3"),
        ("onset\tduration\ttrial_type\n0\t-30\tSleep stage W\n", r"row 2: duration -30 s is negative"),
        ("onset\tduration\tsample\n0\t30\t0\n", "has none of the columns trial_type"),
        ("onset\tduration\ttrial_type\n0\t0\tLights off\n", "has no sleep-stage rows"),
    ],
)
def test_bids_errors_name_the_row(tmp_path, text, match):
    path = tmp_path / "bad_events.tsv"
    path.write_text(text)
    with pytest.raises(HypnogramError, match=match) as err:
        read_hypnogram(path)
    assert str(path) in str(err.value)


# --- Noxturnal CSV export -----------------------------------------------------------------------

NOX_FRENCH = [
    ["Heure de début", "Heure de fin", "Événement", "Durée"],
    ["[]", "", "", ""],
    ["01/02/2019 23:58:00", "01/02/2019 23:58:00", "Début de l'analyse", "0"],
    ["01/02/2019 23:58:00", "01/02/2019 23:58:30", "Éveil", "30"],
    ["01/02/2019 23:58:30", "01/02/2019 23:59:00", "Éveil", "30"],
    ["01/02/2019 23:59:00", "01/02/2019 23:59:30", "N1", "30"],
    ["01/02/2019 23:59:30", "02/02/2019 00:01:00", "N2", "90"],
    ["02/02/2019 00:00:10", "02/02/2019 00:00:25", "Micro-Éveil", "15"],
    ["02/02/2019 00:01:00", "02/02/2019 00:02:00", "N3", "60"],
    ["02/02/2019 00:02:00", "02/02/2019 00:03:00", "REM", "60"],
    ["02/02/2019 00:03:00", "02/02/2019 00:03:30", "Éveil", "30"],
]


def _utf16(rows: list[list[str]], delimiter: str) -> bytes:
    text = "\r\n".join(delimiter.join(row) for row in rows) + "\r\n"
    return text.encode("utf-16")  # with its byte-order mark, as Noxturnal writes


def test_noxturnal_french_utf16(tmp_path):
    path = tmp_path / "15012016HD.csv"
    path.write_bytes(_utf16(NOX_FRENCH, ","))
    assert path.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff")
    hyp = read_hypnogram(path)
    assert hyp.label_set is AASM
    assert hyp.stages.tolist() == [0, 0, 1, 2, 2, 2, 3, 3, 4, 4, 0]
    assert _counts(hyp) == {"W": 3, "N1": 1, "N2": 3, "N3": 2, "REM": 2}
    assert hyp.start == dt.datetime(2019, 2, 1, 23, 58)
    assert hyp.events == [(0.0, "Début de l'analyse"), (130.0, "Micro-Éveil")]


def test_noxturnal_english_tab_clock_times_alone_across_midnight(tmp_path):
    rows = [
        ["Start Time", "End Time", "Event", "Duration"],
        ["23:58:40", "23:58:40", "Lights Off", "0"],
        ["23:59:00", "23:59:30", "Wake", "30"],
        ["23:59:30", "00:00:00", "Sleep-N1", "30"],
        ["00:00:00", "00:01:00", "N2", "60"],
        ["00:00:12", "00:00:22", "Arousal", "10"],
        ["00:01:00", "00:01:30", "REM", "30"],
        ["00:01:30", "00:02:00", "Unscored", "30"],
        ["00:02:10", "00:02:10", "Lights On", "0"],
    ]
    path = tmp_path / "nox-export.txt"
    path.write_bytes(_utf16(rows, "\t"))
    hyp = read_noxturnal_csv(path)
    assert hyp.stages.tolist() == [0, 1, 2, 2, 4, U]
    assert hyp.start is None  # clock times without a date
    assert (hyp.lights_off_s, hyp.lights_on_s) == (-20.0, 190.0)
    assert hyp.events == [(72.0, "Arousal")]
    assert read_hypnogram(path).stages.tolist() == hyp.stages.tolist()


@pytest.mark.parametrize(
    ("row", "match"),
    [
        (
            ["01/02/2019 25:61:00", "01/02/2019 23:59:30", "N1", "30"],
            "row 3: start time is '01/02/2019 25:61:00'",
        ),
        (
            ["01/02/2019 23:59:30", "01/02/2019 23:59:00", "N1", "30"],
            "row 3: the end time is before the start",
        ),
        (["23:59:00", "23:59:30", "N1", "30"], "gives dates with some start times"),
    ],
)
def test_noxturnal_errors_name_the_row(tmp_path, row, match):
    rows = [NOX_FRENCH[0], ["01/02/2019 23:58:30", "01/02/2019 23:59:00", "Éveil", "30"], row]
    path = tmp_path / "bad.csv"
    path.write_bytes(_utf16(rows, ";"))
    with pytest.raises(HypnogramError, match=match):
        read_hypnogram(path)


# --- one stage per line (YASA) ------------------------------------------------------------------


def test_yasa_stage_names_and_integer_codes(tmp_path):
    names = tmp_path / "hypno.txt"
    names.write_text("WAKE\nN1\nN2\nN3\nREM\nART\nUNS\nW\nR\n")
    hyp = read_hypnogram(names)
    assert hyp.label_set is AASM and hyp.stages.tolist() == [0, 1, 2, 3, 4, U, U, 0, 4]
    ints = tmp_path / "hypno.int"  # np.savetxt(path, yasa_hypnogram.as_int(), fmt="%d")
    np.savetxt(ints, np.array([0, 1, 2, 3, 4, -1, -2, 2]), fmt="%d")
    hyp = read_hypnogram(ints)
    assert hyp.label_set is AASM and hyp.stages.tolist() == [0, 1, 2, 3, 4, U, U, 2]
    assert _counts(hyp) == {"W": 1, "N1": 1, "N2": 2, "N3": 1, "REM": 1, "?": 2}
    rk = read_stage_lines(ints, int_codes=RK)
    assert rk.label_set is RK and rk.stages.tolist() == [0, 1, 2, 3, 4, U, U, 2]


def test_stage_lines_errors(tmp_path):
    path = tmp_path / "h.txt"
    path.write_text("W\nN2\n# comment\ndeep\n")
    with pytest.raises(HypnogramError, match=r"unknown sleep stage 'deep' in row 4"):
        read_hypnogram(path)
    path.write_text("5\n5\n3\n")
    with pytest.raises(HypnogramError, match=r"unknown sleep stage 5 in row 1: .*a DREAMS 5-s hypnogram"):
        read_hypnogram(path)
    path.write_text("S1\nN2\n")
    with pytest.raises(HypnogramError, match="mixes R&K"):
        read_hypnogram(path)


# --- DREAMS 5-s R&K codes -----------------------------------------------------------------------

DREAMS_WINDOWS = (
    [5] * 6 + [3] * 6 + [2] * 6 + [1] * 6 + [0] * 6 + [4] * 6 + [2, 2, 2, 1, 1, 1] + [-1] * 6 + [5] * 4
)


def test_dreams_rk_5_s_windows_grouped_into_30_s(tmp_path):
    path = tmp_path / "HypnogramR&K_subject1.csv"
    path.write_text("[HypnogramR&K]\n" + "\n".join(map(str, DREAMS_WINDOWS)) + "\n")
    hyp = read_hypnogram(path)
    assert hyp.label_set is RK
    assert hyp.stages.tolist() == [0, 1, 2, 3, 4, 5, U, U]
    assert _counts(hyp) == {"W": 1, "S1": 1, "S2": 1, "S3": 1, "S4": 1, "REM": 1, "?": 2}
    assert hyp.info == {"scored_window_s": 5.0, "mixed_epochs": 1, "dropped_windows": 4}


def test_dreams_aasm_header_and_window_length_option(tmp_path):
    path = tmp_path / "HypnogramAASM_subject1.txt"
    path.write_text("[HypnogramAASM]\n" + "\n".join(["5"] * 6 + ["3"] * 6 + ["1"] * 6 + ["0"] * 6) + "\n")
    hyp = read_hypnogram(path)
    assert hyp.label_set is AASM and hyp.stages.tolist() == [0, 1, 3, U]
    bare = tmp_path / "ten_s.txt"  # no header: R&K codes, windows of 10 s
    bare.write_text("\n".join(["2", "2", "2", "4", "4", "4", "0", "0", "1"]) + "\n")
    ten = read_dreams_hypnogram(bare, window_s=10)
    assert ten.label_set is RK and ten.stages.tolist() == [2, 5, U]
    assert ten.info["mixed_epochs"] == 1
    with pytest.raises(ValueError, match="window_s must divide 30 s"):
        read_dreams_hypnogram(bare, window_s=7)
    with pytest.raises(HypnogramError, match=r"declares '\[HypnogramAASM\]', not the rk codes"):
        read_dreams_hypnogram(path, vocabulary="rk")


def test_dreams_unknown_code_names_the_row(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("[hypnogram]\n5\n5\n7\n")
    with pytest.raises(HypnogramError, match=r"unknown DREAMS stage code '7' in row 4 \(rk codes: 5 W"):
        read_hypnogram(path)


# --- detection keeps the older formats ----------------------------------------------------------


def test_existing_formats_are_still_detected(tmp_path):
    table = tmp_path / "t.tsv"
    table.write_text("onset\tStage\n0\t0\n30\t4\n")  # 'onset' without 'duration' stays a table
    assert read_hypnogram(table).stages.tolist() == [0, 4]
    json_txt = tmp_path / "dreem.txt"
    json_txt.write_text(json.dumps([0, 1, -1]))
    assert read_hypnogram(json_txt).stages.tolist() == [0, 1, U]


# --- writers ------------------------------------------------------------------------------------


def _night(label_set=AASM) -> Hypnogram:
    codes = [U, 0, 0, 1, 2, 2, 3, 3, 4, 4, 0, U, U] if label_set is AASM else [0, 1, 2, 3, 4, 4, 5, U, 0]
    return Hypnogram(
        np.array(codes, dtype=np.int8),
        label_set,
        start=dt.datetime(2021, 3, 4, 22, 15, 30),
        lights_off_s=20.0,
        lights_on_s=355.5,
        events=[(100.25, "Arousal (ASDA)"), (200.0, "SpO2 desaturation")],
    )


@pytest.mark.parametrize("label_set", [AASM, RK])
def test_bids_events_round_trip(tmp_path, label_set):
    hyp = _night(label_set)
    path = hyp.to_bids_events(tmp_path / "sub-01_task-sleep_events.tsv")
    lines = path.read_text().splitlines()
    assert lines[0] == "onset\tduration\ttrial_type"
    assert ("Sleep stage N1" in path.read_text()) is (label_set is AASM)
    back = read_hypnogram(path)
    assert back.label_set is label_set
    np.testing.assert_array_equal(back.stages, hyp.stages)
    assert (back.lights_off_s, back.lights_on_s) == (20.0, 355.5)
    assert back.events == hyp.events
    assert back.start is None  # BIDS keeps clock times in scans.tsv
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("label_set", [AASM, RK])
def test_nsrr_xml_round_trip(tmp_path, label_set):
    hyp = _night(label_set)
    path = hyp.to_nsrr_xml(tmp_path / "night-nsrr.xml")
    assert "Stages|Stages" in path.read_text()
    back = read_hypnogram(path)
    assert back.label_set is label_set
    np.testing.assert_array_equal(back.stages, hyp.stages)
    assert back.start == hyp.start
    assert (back.lights_off_s, back.lights_on_s) == (20.0, 355.5)
    assert back.events == hyp.events
    again = write_nsrr_xml(back, path)  # over an existing file
    assert read_nsrr_xml(again).stages.tolist() == hyp.stages.tolist()


def test_writers_refuse_coarse_label_sets(tmp_path):
    coarse = Hypnogram([0, 1, 2], THREE_CLASS)
    with pytest.raises(ValueError, match="3class"):
        write_bids_events(coarse, tmp_path / "e.tsv")
    with pytest.raises(ValueError, match="3class"):
        coarse.to_nsrr_xml(tmp_path / "n.xml")
    assert not list(tmp_path.iterdir())


@pytest.mark.realdata
def test_real_sleep_edf_night_through_both_writers(shared_data, tmp_path):
    real = read_hypnogram(shared_data / "sleep-edf-hypnograms" / "SC4001E0.csv")
    for write in (Hypnogram.to_nsrr_xml, Hypnogram.to_bids_events):
        back = read_hypnogram(write(real, tmp_path / f"night.{write.__name__}"))
        np.testing.assert_array_equal(back.stages, real.stages)
        assert back.label_set is real.label_set


def test_metrics_command_reads_a_profusion_file(tmp_path, capsys):
    from somna.cli import main

    path = tmp_path / "night.xml"
    path.write_text(PROFUSION.format(n3=3))
    assert main(["metrics", str(path), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["tst_min"] == 3.5  # N1, 2 × N2, 2 × N3, 2 × REM: 7 epochs of 30 s


def test_metrics_converts_between_formats_and_score_exports_them(
    tiny_trained_run, tmp_path: Path, capsys
) -> None:
    """`somna metrics X --to Y` converts; `somna score --export bids,nsrr` writes both open formats."""
    from somna.cli import main

    run, psg, scored = tiny_trained_run
    original = read_hypnogram(scored)
    for name in ("night_events.tsv", "night.xml"):
        assert main(["metrics", str(scored), "--to", str(tmp_path / name)]) == 0
        back = read_hypnogram(tmp_path / name)
        assert np.array_equal(back.stages[: len(original)], original.stages), name
    assert main(["metrics", str(scored), "--to", str(tmp_path / "x.docx")]) == 2
    assert "unknown format .docx" in capsys.readouterr().err
    out = tmp_path / "night"
    assert (
        main(
            [
                "score",
                str(psg),
                "--model",
                str(run),
                "--out",
                str(out),
                "--no-report",
                "--export",
                "bids,nsrr",
            ]
        )
        == 0
    )
    staged = read_hypnogram(out / "hypnogram.edf")
    for name in ("hypnogram_events.tsv", "hypnogram_nsrr.xml"):
        assert np.array_equal(read_hypnogram(out / name).stages, staged.stages), name
    assert {"hypnogram_events.tsv", "hypnogram_nsrr.xml"} <= set(
        json.loads((out / "metrics.json").read_text())["outputs"]
    )
    assert main(["score", str(psg), "--model", str(run), "--out", str(out), "--no-report", "--force"]) == 0
    assert not (out / "hypnogram_nsrr.xml").exists()  # a run without --export leaves none behind
