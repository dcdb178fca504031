"""Applying trained models: load them (torch or ONNX backends), stage recordings, stream, score batches.

* :func:`load_stager` / :class:`Stager` (:mod:`~somna.inference.backends`, :mod:`~somna.inference.stager`);
* :func:`~somna.inference.scoring.score_psg` and the output files of one night
  (:mod:`~somna.inference.scoring`);
* many nights in parallel (:mod:`~somna.inference.batch`);
* live staging (:mod:`~somna.inference.streaming`).
"""

from somna.inference.backends import BACKENDS, load_stager
from somna.inference.stager import Stager

__all__ = ["BACKENDS", "Stager", "load_stager"]
