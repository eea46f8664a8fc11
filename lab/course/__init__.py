"""The course: exercises, attendees' workspaces, and the grader that checks them.

``exercises.py`` reads the course (``exercises/NN-slug/``, each exercise.yml validated once);
``workspace.py`` is an attendee's workspace (start, reset, solve, the next exercise);
``grader.py`` checks a workspace against its exercise's goals and explains what is missing.

This file imports nothing, so importing one module of the package imports no other.
"""
