"""Sleep-EDF names, pairing and the download wrapper (somna.io.sleepedf)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mne.datasets.sleep_physionet import age, temazepam

from somna.errors import SomnaError
from somna.io import download_sleep_edf, find_sleep_edf_pairs, parse_sleep_edf_name
from somna.io.sleepedf import SleepEdfId, parse_subject_range


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("SC4001E0-PSG.edf", SleepEdfId("SC", 0, 1, "SC4001", "SC00")),
        ("/data/SC4012EC-Hypnogram.edf", SleepEdfId("SC", 1, 2, "SC4012", "SC01")),
        ("SC4822G0-PSG.edf", SleepEdfId("SC", 82, 2, "SC4822", "SC82")),
        ("ST7011J0-PSG.edf", SleepEdfId("ST", 1, 1, "ST7011", "ST01")),
        ("ST7242JO-Hypnogram.edf", SleepEdfId("ST", 24, 2, "ST7242", "ST24")),
        ("SC4001E0.csv", SleepEdfId("SC", 0, 1, "SC4001", "SC00")),
        ("sc4001e0-psg.edf", SleepEdfId("SC", 0, 1, "SC4001", "SC00")),
    ],
)
def test_parse_names(name, expected):
    assert parse_sleep_edf_name(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "night.edf",
        "SC7001E0-PSG.edf",
        "ST4011J0-PSG.edf",
        "SC4003E0-PSG.edf",
        "SC4831E0-PSG.edf",
        "ST7251J0.edf",
    ],
)
def test_parse_rejects_other_names(name):
    with pytest.raises(ValueError, match=name.split("-")[0][:6]):
        parse_sleep_edf_name(name)


def _touch(folder: Path, *names: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        (folder / name).write_bytes(b"0       ")
        paths.append(folder / name)
    return paths


def test_pairing_with_varied_suffixes(tmp_path):
    _touch(
        tmp_path,
        "SC4021E0-PSG.edf", "SC4021EH-Hypnogram.edf",
        "SC4001E0-PSG.edf", "SC4001EC-Hypnogram.edf",
        "SC4011E0-PSG.edf", "SC4011EH-Hypnogram.edf",
        "ST7011J0-PSG.edf", "ST7011JP-Hypnogram.edf",
        "README.txt",
    )  # fmt: skip
    pairs = find_sleep_edf_pairs(tmp_path)
    assert [(p.psg.name, p.hypnogram.name) for p in pairs] == [
        ("SC4001E0-PSG.edf", "SC4001EC-Hypnogram.edf"),
        ("SC4011E0-PSG.edf", "SC4011EH-Hypnogram.edf"),
        ("SC4021E0-PSG.edf", "SC4021EH-Hypnogram.edf"),
        ("ST7011J0-PSG.edf", "ST7011JP-Hypnogram.edf"),
    ]
    assert pairs[3].id.subject_id == "ST01"


def test_unpaired_files_raise_or_warn(tmp_path):
    _touch(
        tmp_path,
        "SC4001E0-PSG.edf", "SC4001EC-Hypnogram.edf",
        "SC4002E0-PSG.edf",
        "SC4012EC-Hypnogram.edf",
    )  # fmt: skip
    with pytest.raises(SomnaError, match="2 Sleep-EDF file") as err:
        find_sleep_edf_pairs(tmp_path)
    assert "SC4002E0-PSG.edf (no hypnogram" in str(err.value)
    assert "SC4012EC-Hypnogram.edf (no PSG" in str(err.value)
    with pytest.warns(UserWarning, match="SC4002E0-PSG.edf"):
        pairs = find_sleep_edf_pairs(tmp_path, on_unpaired="warn")
    assert [p.id.record for p in pairs] == ["SC4001"]
    with pytest.raises(SomnaError, match="not a folder"):
        find_sleep_edf_pairs(tmp_path / "absent")


def test_two_hypnograms_for_one_night(tmp_path):
    _touch(tmp_path, "SC4001E0-PSG.edf", "SC4001EC-Hypnogram.edf", "SC4001EH-Hypnogram.edf")
    with pytest.raises(SomnaError, match="second hypnogram file for SC4001"):
        find_sleep_edf_pairs(tmp_path)


def test_parse_subject_range():
    assert parse_subject_range("0-3,25, 2") == [0, 1, 2, 3, 25]
    assert parse_subject_range("7") == [7]
    for bad in ("", "3-1", "a", "1-", "-2"):
        with pytest.raises(ValueError):
            parse_subject_range(bad)


def _fake_sc_fetcher(folder: Path, calls: list[dict]):
    """Stand-in for MNE's SC fetcher: writes the files it would download, in MNE's return format."""
    import csv

    import mne.datasets.sleep_physionet as sp

    with open(Path(sp.__file__).parent / "age_records.csv", newline="") as f:
        rows = list(csv.DictReader(f))

    def fetch_data(subjects, recording=(1, 2), path=None, on_missing="raise", **kwargs):
        calls.append(
            {"subjects": list(subjects), "recording": list(recording), "path": path, "on_missing": on_missing}
        )
        out = []
        for s in subjects:
            for n in recording:
                names = [r["fname"] for r in rows if int(r["subject"]) == s and int(r["night"]) == n]
                if names:
                    out.append([str(p) for p in _touch(folder, *sorted(names, key=lambda x: "Hyp" in x))])
        return out

    return fetch_data


def test_download_sc_skips_missing_with_warning(tmp_path, monkeypatch):
    calls: list[dict] = []
    monkeypatch.setattr(age, "fetch_data", _fake_sc_fetcher(tmp_path, calls))
    with pytest.warns(UserWarning, match=r"SC4132.*SC4361.*SC4391.*SC4392") as rec:
        pairs = download_sleep_edf([0, 13, 36, 39], study="sc", path=tmp_path)
    assert "SC4001" not in str(rec[0].message)
    assert [p.id.record for p in pairs] == ["SC4001", "SC4002", "SC4131", "SC4362"]
    assert pairs[0].hypnogram.name == "SC4001EC-Hypnogram.edf"
    assert calls == [
        {"subjects": [0, 13, 36], "recording": [1, 2], "path": str(tmp_path), "on_missing": "ignore"}
    ]


def test_download_sc_one_night_no_warning(tmp_path, monkeypatch, recwarn):
    monkeypatch.setattr(age, "fetch_data", _fake_sc_fetcher(tmp_path, []))
    pairs = download_sleep_edf([1], recordings=(2,))
    assert [p.id.record for p in pairs] == ["SC4012"]
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_download_range_checks(tmp_path, monkeypatch):
    monkeypatch.setattr(age, "fetch_data", _fake_sc_fetcher(tmp_path, []))
    with pytest.raises(ValueError, match="SC subjects are 0–82"):
        download_sleep_edf([83])
    with pytest.raises(ValueError, match="ST subjects are 1–24"):
        download_sleep_edf([0], study="st")
    with pytest.raises(ValueError, match="nights among 1 and 2"):
        download_sleep_edf([0], recordings=(3,))
    with pytest.raises(ValueError, match="study"):
        download_sleep_edf([0], study="xx")


def test_download_st_translates_subjects(tmp_path, monkeypatch):
    seen = []

    def fetch_data(subjects, path=None, **kwargs):
        seen.extend(subjects)
        files = {
            0: ("ST7011J0-PSG.edf", "ST7011JP-Hypnogram.edf"),
            1: ("ST7022J0-PSG.edf", "ST7022JM-Hypnogram.edf"),
        }
        return [[str(p) for p in _touch(tmp_path, *files[s])] for s in subjects]

    monkeypatch.setattr(temazepam, "fetch_data", fetch_data)
    with pytest.warns(
        UserWarning, match=r"ST7012 \(temazepam.*ST7021 \(temazepam.*ST7031 \(subject not published"
    ):
        pairs = download_sleep_edf([1, 2, 3], study="st")
    assert seen == [0, 1]  # MNE's own 0-based numbering of the published ST subjects
    assert [(p.id.record, p.hypnogram.name) for p in pairs] == [
        ("ST7011", "ST7011JP-Hypnogram.edf"),
        ("ST7022", "ST7022JM-Hypnogram.edf"),
    ]


# --- PhysioNet's subject tables: lights off of each night -----------------------------------------


def _subject_table(path: Path, rows: list[list[object]], header: list[str]) -> bytes:
    import xlwt

    book = xlwt.Workbook()
    sheet = book.add_sheet("Sheet1")
    for c, text in enumerate(header):
        sheet.write(0, c, text)
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    book.save(str(path))
    return path.read_bytes()


def _fetcher(files: dict[str, bytes], sums: dict[str, str]):
    from somna.io.sleepedf import PHYSIONET_SLEEP_EDF

    text = "".join(f"{digest} {name}\n" for name, digest in sums.items()).encode()
    served = {PHYSIONET_SLEEP_EDF + "SHA256SUMS.txt": text}
    served.update({PHYSIONET_SLEEP_EDF + name: data for name, data in files.items()})
    return lambda url: served[url]


def test_subject_tables_become_a_lights_table_checked_against_physionet_checksums(tmp_path):
    import hashlib

    from somna.io.lights import parse_lights_time, read_lights_table, table_lights
    from somna.io.sleepedf import download_lights_table

    sc = _subject_table(
        tmp_path / "sc.xls",
        [[0, 1, 33, 1, 22 / 24 + 44 / 1440], [0, 2, 33, 1, 23.5 / 24], [1, 1, 54, 2, 0.5 / 24]],
        ["subject", "night", "age", "sex (F=1)", "LightsOff"],
    )
    st = _subject_table(
        tmp_path / "st.xls",
        [[1, 60, 1, 1, 23 / 24, 2, 23.25 / 24]],
        ["Nr", "Age", "M1/F2", "night nr", "lights off", "night nr", "lights off"],
    )
    sums = {
        name: hashlib.sha256(data).hexdigest()
        for name, data in (("SC-subjects.xls", sc), ("ST-subjects.xls", st))
    }
    folder = tmp_path / "physionet-sleep-data"
    folder.mkdir()
    table = download_lights_table("sc", folder, _fetcher({"SC-subjects.xls": sc}, sums))
    download_lights_table("st", folder, _fetcher({"ST-subjects.xls": st}, sums))  # merged into the same table
    rows = read_lights_table(table)
    assert rows["SC4001"] == ("22:44:00", None) and rows["SC4002"] == ("23:30:00", None)
    assert rows["SC4011"] == ("00:30:00", None) and rows["ST7011"] == ("23:00:00", None)
    assert rows["ST7012"] == ("23:15:00", None)
    from datetime import datetime

    off = table_lights(rows, "SC4011E0-PSG.edf")[0]
    assert parse_lights_time(off, datetime(1989, 4, 24, 16, 13)) == (8 * 3600 + 17 * 60)  # after midnight
    tampered = _fetcher({"SC-subjects.xls": sc + b"x"}, sums)
    with pytest.raises(SomnaError, match="does not match its SHA-256"):
        download_lights_table("sc", folder, tampered)
    with pytest.raises(SomnaError, match="lists no checksum"):
        download_lights_table("sc", folder, _fetcher({"SC-subjects.xls": sc}, {}))

    def offline(url: str) -> bytes:
        raise OSError("network unreachable")

    with pytest.raises(SomnaError, match=r"cannot fetch SC-subjects\.xls"):
        download_lights_table("sc", folder, offline)
