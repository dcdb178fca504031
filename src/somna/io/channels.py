"""Which channels somna reads: modalities, the Sleep-EDF channel list and channel mappings from text.

This is the one place that knows Sleep-EDF's channel names; configs, readers and the command line take
them from here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from somna.errors import ChannelError

__all__ = [
    "MODALITIES",
    "SLEEP_EDF_CHANNELS",
    "ChannelSpec",
    "channel_spec",
    "copy_spec",
    "pick_channels",
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
    spec = copy_spec()
    for modality, value in (("eeg", eeg), ("eog", eog), ("emg", emg)):
        if value:
            spec[modality] = _parse(value)
    return spec


def _norm(label: str) -> str:
    return " ".join(str(label).split()).lower()


def pick_channels(
    channels: Mapping[str, Sequence[Sequence[str]]],
    modalities: Sequence[str],
    labels: Sequence[str],
    path: str | Path | None = None,
) -> dict[str, list[int]]:
    """Find each wanted channel among a recording's channel labels.

    Parameters
    ----------
    channels : ChannelSpec
        Per modality, the wanted channels as alias lists (first preferred). A label matches an alias
        when both are equal ignoring case, surrounding spaces and repeated spaces.
    modalities : sequence of str
        Modalities to find, keys of ``channels``.
    labels : sequence of str
        The recording's channel labels, in its order.
    path : str | Path | None
        The recording, named in errors.

    Returns
    -------
    dict of str to list of int
        Per modality, the index in ``labels`` of each wanted channel, in the spec's order.

    Raises
    ------
    ChannelError
        If a channel is missing (the message lists the recording's channels), ambiguous (two labels
        match), or would serve twice; or if a modality has no entry or an empty one in ``channels``.
    """
    normalised = [_norm(label) for label in labels]
    used: dict[int, str] = {}
    picked: dict[str, list[int]] = {}
    for modality in modalities:
        wanted = channels.get(modality)
        if not wanted:
            raise ChannelError(
                f"no {modality} channel is named in the channel mapping (it names {sorted(channels)})", path
            )
        picked[modality] = []
        for aliases in wanted:
            index = None
            for alias in aliases:
                hits = [i for i, label in enumerate(normalised) if label == _norm(alias)]
                if len(hits) > 1:
                    raise ChannelError(
                        f"{modality} channel {alias!r} is ambiguous: the recording has it {len(hits)} times",
                        path,
                    )
                if hits:
                    index = hits[0]
                    break
            if index is None:
                raise ChannelError(
                    f"no {modality} channel named any of {list(aliases)}; the recording has {list(labels)}",
                    path,
                )
            if index in used:
                raise ChannelError(
                    f"channel {labels[index]!r} would serve both {used[index]} and {modality}; "
                    "name distinct channels",
                    path,
                )
            used[index] = modality
            picked[modality].append(index)
    return picked
