"""Which channels somna reads: modalities, the Sleep-EDF channel list and channel mappings from text.

This is the one place that knows Sleep-EDF's channel names; configs, readers and the command line take
them from here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from somna.errors import ChannelError

__all__ = [
    "MODALITIES",
    "REFERENCE_SEPARATOR",
    "SLEEP_EDF_CHANNELS",
    "ChannelSpec",
    "Derivation",
    "channel_spec",
    "copy_spec",
    "derivation_label",
    "draw_channels",
    "override_channels",
    "pick_channels",
    "unfamiliar_channels",
]

MODALITIES: tuple[str, ...] = ("eeg", "eog", "emg")
"""Modalities somna stages from, in the order models see them."""

ChannelSpec = dict[str, list[list[str]]]
"""Per modality, one entry per wanted channel: the names it may carry in a file (aliases), first
preferred. Matching ignores case and surrounding spaces."""

SLEEP_EDF_CHANNELS: ChannelSpec = {
    "eeg": [["EEG Fpz-Cz", "Fpz-Cz"], ["EEG Pz-Oz", "Pz-Oz"]],
    "eog": [["EOG horizontal", "EOG", "HEOG", "EOG E1-E2", "E1-E2"]],
    "emg": [["EMG submental", "EMG", "EMG chin", "Chin", "EMG Chin1-Chin2", "Chin1-Chin2"]],
}
"""Sleep-EDF Expanded's channel names (SC and ST), with the aliases other files use."""


def copy_spec(spec: Mapping[str, Sequence[Sequence[str]]] = SLEEP_EDF_CHANNELS) -> ChannelSpec:
    """A mutable copy of a channel mapping (lists of lists), Sleep-EDF's by default."""
    return {m: [list(aliases) for aliases in channels] for m, channels in spec.items()}


def _parse(value: str | Sequence[str]) -> list[list[str]]:
    """One modality's channels from ``"A|a,B"`` text or a list of names (each name may hold ``|``)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    channels = [[name.strip() for name in str(item).split("|") if name.strip()] for item in items]
    return [c for c in channels if c]


def channel_spec(
    eeg: str | Sequence[str] | None = None,
    eog: str | Sequence[str] | None = None,
    emg: str | Sequence[str] | None = None,
) -> ChannelSpec:
    """A channel mapping from names given per modality, Sleep-EDF's names where not given.

    Parameters
    ----------
    eeg, eog, emg : str | sequence of str | None
        Channels of that modality: comma-separated text (as on the command line) or a list of names.
        A channel's alternative names are separated by ``|``: ``eeg="C4-M1,O2-M1"`` asks for two EEG
        channels, ``emg="EMG chin|Chin1-Chin2"`` for one EMG channel under either name.

    Returns
    -------
    ChannelSpec

    Examples
    --------
    >>> channel_spec(eeg="C4-M1")["eeg"]
    [['C4-M1']]
    >>> channel_spec(emg=["EMG chin|Chin1-Chin2"])["emg"]
    [['EMG chin', 'Chin1-Chin2']]
    >>> channel_spec()["eog"][0][0]
    'EOG horizontal'
    """
    return override_channels(SLEEP_EDF_CHANNELS, eeg, eog, emg)


def override_channels(
    spec: Mapping[str, Sequence[Sequence[str]]],
    eeg: str | Sequence[str] | None = None,
    eog: str | Sequence[str] | None = None,
    emg: str | Sequence[str] | None = None,
) -> ChannelSpec:
    """A channel mapping with the modalities named here replaced, the others as in ``spec``.

    Examples
    --------
    >>> spec = override_channels(SLEEP_EDF_CHANNELS, eeg="C4-M1")
    >>> spec["eeg"], spec["eog"][0][0]
    ([['C4-M1']], 'EOG horizontal')
    """
    out = copy_spec(spec)
    for modality, value in (("eeg", eeg), ("eog", eog), ("emg", emg)):
        if value:
            out[modality] = _parse(value)
    return out


def _norm(label: str) -> str:
    return " ".join(str(label).split()).lower()


_MODALITY_PREFIX = re.compile(r"^(eeg|eog|emg)[\s_:-]+")
_MASTOID = {"a1": "m1", "a2": "m2"}


def _loose(label: str) -> str:
    """A label as spelt loosely: no ``EEG``/``EOG``/``EMG`` prefix, earlobe A1/A2 as mastoid M1/M2, no
    spaces or underscores, ``-`` between the two electrodes (``EEG C4-A1`` ~ ``C4-M1`` ~ ``c4_m1``)."""
    text = _MODALITY_PREFIX.sub("", _norm(label)).replace(" ", "").replace("_", "-")
    parts = [_MASTOID.get(part, part) for part in text.split("-")]
    return "-".join(parts)


Derivation = tuple[int, int | None]
"""A picked channel: the index of its active channel and of its reference (``None``: as recorded)."""

REFERENCE_SEPARATOR = ":"
"""Between an active channel and its reference in a channel name: ``C4:M1`` is C4 minus M1."""


def derivation_label(labels: Sequence[str], derivation: Derivation) -> str:
    """The name of a picked channel: its label, or ``active-reference`` for a re-referenced one.

    Examples
    --------
    >>> derivation_label(["C4", "M1"], (0, 1))
    'C4-M1'
    >>> derivation_label(["EEG C4", "EEG M1"], (0, 1))
    'EEG C4-M1'
    """
    active, reference = derivation
    if reference is None:
        return labels[active]
    prefix = _MODALITY_PREFIX.match(_norm(labels[active]))
    ref = labels[reference].strip()
    if prefix and _norm(ref).startswith(prefix.group(0)):
        ref = ref[len(prefix.group(0)) :].strip()
    return f"{labels[active].strip()}-{ref}"


def _find(normalised: list[str], alias: str, modality: str, path: str | Path | None) -> int | None:
    """The label an alias names: spelt the same (ignoring case and spaces), else spelt loosely
    (:func:`_loose`); ``None`` when none."""
    hits = [i for i, label in enumerate(normalised) if label == _norm(alias)]
    if not hits:
        hits = [i for i, label in enumerate(normalised) if _loose(label) == _loose(alias)]
    if len(hits) > 1:
        raise ChannelError(
            f"{modality} channel {alias!r} is ambiguous: the recording has it {len(hits)} times", path
        )
    return hits[0] if hits else None


def _find_derivation(
    normalised: list[str], alias: str, modality: str, path: str | Path | None
) -> Derivation | None:
    """An alias as a channel of the file, else as ``ACTIVE:REFERENCE`` of two channels of the file."""
    index = _find(normalised, alias, modality, path)
    if index is not None:
        return index, None
    if REFERENCE_SEPARATOR not in alias:
        return None
    active, _, reference = alias.partition(REFERENCE_SEPARATOR)
    a, r = _find(normalised, active, modality, path), _find(normalised, reference, modality, path)
    if a is None or r is None:
        return None
    if a == r:
        raise ChannelError(f"{modality} channel {alias!r} references a channel to itself", path)
    return a, r


def pick_channels(
    channels: Mapping[str, Sequence[Sequence[str]]],
    modalities: Sequence[str],
    labels: Sequence[str],
    path: str | Path | None = None,
) -> dict[str, list[Derivation]]:
    """Find each wanted channel among a recording's channel labels.

    Parameters
    ----------
    channels : ChannelSpec
        Per modality, the wanted channels as alias lists (first preferred). A label matches an alias
        when both are equal ignoring case, surrounding spaces and repeated spaces, or failing that when
        both are spelt alike but for an ``EEG``/``EOG``/``EMG`` prefix, A1/A2 for M1/M2, spaces and
        underscores (``EEG C4-A1`` for ``C4-M1``). An alias
        ``ACTIVE:REFERENCE`` (``C4:M1``) that no label matches is the difference of two channels of
        the recording, for monopolar recordings (C4 and M1 stored apart).
    modalities : sequence of str
        Modalities to find, keys of ``channels``.
    labels : sequence of str
        The recording's channel labels, in its order.
    path : str | Path | None
        The recording, named in errors.

    Returns
    -------
    dict of str to list of (int, int | None)
        Per modality, for each wanted channel in the spec's order, the index in ``labels`` of the
        channel and of its reference (``None`` for a channel used as recorded).

    Raises
    ------
    ChannelError
        If a channel is missing (the message lists the recording's channels), ambiguous (two labels
        match), or would serve twice as an active channel (a reference may serve several); or if a
        modality has no entry or an empty one in ``channels``.

    Examples
    --------
    >>> pick_channels({"eeg": [["C4-M1", "C4:M1"]]}, ["eeg"], ["C4", "C3", "M1", "M2"])
    {'eeg': [(0, 2)]}
    """
    normalised = [_norm(label) for label in labels]
    used: dict[int, str] = {}
    picked: dict[str, list[Derivation]] = {}
    for modality in modalities:
        wanted = channels.get(modality)
        if not wanted:
            raise ChannelError(
                f"no {modality} channel is named in the channel mapping (it names {sorted(channels)})", path
            )
        picked[modality] = []
        for aliases in wanted:
            found = None
            for alias in aliases:
                found = _find_derivation(normalised, alias, modality, path)
                if found is not None:
                    break
            if found is None:
                raise ChannelError(
                    f"no {modality} channel named any of {list(aliases)}; the recording has {list(labels)}",
                    path,
                )
            index = found[0]
            if index in used:
                what = (
                    f"two {modality} slots"
                    if used[index] == modality
                    else f"both {used[index]} and {modality}"
                )
                raise ChannelError(
                    f"channel {labels[index]!r} would serve {what}; name distinct channels", path
                )
            used[index] = modality
            picked[modality].append(found)
    return picked


def draw_channels(
    spec: Mapping[str, Sequence[Sequence[str]]], labels: Sequence[str], key: str
) -> ChannelSpec:
    """One name per slot, drawn among those a recording has: what ``channel_choice = "random"`` reads.

    Parameters
    ----------
    spec : ChannelSpec
        Per modality, each slot's names.
    labels : sequence of str
        The recording's channel labels.
    key : str
        What the draw is seeded from (the night's record name): the same night always gets the same
        channels.

    Returns
    -------
    ChannelSpec
        Each slot reduced to one of its names that the recording has (slots it has none of are kept
        whole, for :func:`pick_channels` to report). Slots of one modality get distinct channels.

    Examples
    --------
    >>> spec = {"eeg": [["Fpz-Cz", "Pz-Oz", "C4-M1"]]}
    >>> draw_channels(spec, ["Fpz-Cz", "Pz-Oz", "EOG"], "SC4001")["eeg"][0][0] in ("Fpz-Cz", "Pz-Oz")
    True
    """
    import hashlib

    import numpy as np

    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little"))
    normalised = [_norm(label) for label in labels]
    drawn: ChannelSpec = {}
    for modality, slots in spec.items():
        taken: set[int] = set()
        drawn[modality] = []
        for slot in slots:
            present = []
            for alias in slot:
                try:
                    found = _find_derivation(normalised, alias, modality, None)
                except ChannelError:
                    found = None
                if found is not None and found[0] not in taken and found[0] not in {p[1][0] for p in present}:
                    present.append((alias, found))
            if not present:
                drawn[modality].append(list(slot))
                continue
            alias, found = present[int(rng.integers(len(present)))]
            taken.add(found[0])
            drawn[modality].append([alias])
    return drawn


def unfamiliar_channels(
    spec: Mapping[str, Sequence[Sequence[str]]], names: Mapping[str, Sequence[str]]
) -> list[str]:
    """The channels of a recording that fill a slot under a name the slot does not list.

    A model learns each slot from the derivations its training nights had there (``spec``, what the
    checkpoint stores); a recording read through ``--eeg`` may put another derivation in the slot
    (C4-M1 where the model learnt Fpz-Cz), which it stages less well.

    Parameters
    ----------
    spec : ChannelSpec
        The model's slots and their names.
    names : dict of str to list of str
        Per modality, the recording's channel in each slot (``Recording.channel_names``).

    Returns
    -------
    list of str
        One line per such channel: ``"EEG slot 1 holds C4-M1; the model learnt it from Fpz-Cz"``.

    Examples
    --------
    >>> unfamiliar_channels({"eeg": [["EEG Fpz-Cz", "Fpz-Cz"]]}, {"eeg": ["C4-M1"]})
    ["EEG slot 1 holds 'C4-M1'; the model learnt it from 'EEG Fpz-Cz'"]
    >>> unfamiliar_channels({"eeg": [["C4-M1"]]}, {"eeg": ["EEG C4-A1"]})
    []
    """
    found = []
    for modality, labels in names.items():
        slots = spec.get(modality, [])
        for k, label in enumerate(labels):
            if k >= len(slots):
                continue
            known = {_loose(alias.replace(REFERENCE_SEPARATOR, "-")) for alias in slots[k]}
            if _loose(label) not in known:
                learnt = slots[k][0]
                found.append(
                    f"{modality.upper()} slot {k + 1} holds {label!r}; the model learnt it from {learnt!r}"
                )
    return found
