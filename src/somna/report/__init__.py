"""Reports and figures: the one-page night report, a run's evaluation report, and every figure.

* :mod:`~somna.report.figures`: hypnogram, hypnodensity, stage percentages, confusion matrix,
  Bland–Altman (each returns a matplotlib Figure and takes ``ax=``);
* :mod:`~somna.report.night`: ``report.html`` of one scored night;
* :mod:`~somna.report.run`: ``evaluation.md``/``.json`` of a training run, and the terminal tables;
* :mod:`~somna.report.spectra`: mean spectrum per stage of a recording or a prepared cohort.
"""
