"""A class: many attendees' workspaces, their progress, and the instructor's view of it.

``config`` reads class.yml (who, which exercises, where); ``membership`` is how a workspace
knows which class it reports to. The rest (workspaces of a class, the progress store, the
page) each live in their own module here.
"""
