"""Self-checks for the notebooks' exercises, one module per notebook.

Notebook NN's self-checks live in ``nbNN.py`` (a notebook imports them with
``from kdteach.exercises import nbNN as exercises``); the feedback helpers they share — the
✓/✗ verdict, "not answered yet", close-enough numbers, known-mistake hints — live in
``feedback.py``.

Each ``check_*`` function takes the learner's answer, prints what is right or — more
usefully — what is wrong and why, and returns ``True`` or ``False``. It never raises for a
wrong answer, so a learner can try again; an unanswered exercise (``None`` or ``...``)
prints a reminder. The hidden solution cells call ``assert exercises.check_…(solution)``.
"""
__all__: list[str] = []
