"""One companion module per lesson: its checkers, widgets and figures.

``notebooks/NN_<slug>.md`` imports ``metalearn_lab.lessons.<slug>`` (and only that one companion);
the tests are in ``tests/lessons/test_<slug>.py``. No core module imports this package.
"""
