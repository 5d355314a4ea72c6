"""Pages for everyday learning: recording a learning event, the learning lead's list of events (adding an action,
choosing the learning response), the partnership's themes, and the national body's pseudonymised aggregation.

``/learning/new``             any signed-in person of a partnership records what went wrong, nearly went wrong or
                              went well (``safeguarding.intake.record_learning``, as the JSON API does), then sees
                              ``/learning/recorded/{case id}`` (``record.py``).
``/learning``                 the partnership's learning lead (members of ``learning.learning_lead_role``) and its
                              partnership leads: events by status. Who reported an event is shown only to the
                              learning lead, and only when the reporter gave their name (``events.py``).
``/learning/events/{id}/actions/new``, ``/learning/events/{id}/triage``  the learning lead adds an action
                              (``add_action`` Update) and chooses the learning response (``actions.py``).
``/learning/themes``          everyone of the partnership: counts by theme (learning events beside escalations),
                              factor, kind and month over 12 months, and the events behind each count. No people
                              (``themes.py``).
``/national/learning``        the national body only (everyone else: 404): the same counts for every partnership,
                              by partnership name; no event text, no case references, no people. ``.csv`` too
                              (``national.py``).

One router a module, included here in that order; what they share is in ``web.views.learning`` (the partnership's
learning set-up, labels, who leads) and ``web.views.learning_charts`` (the charts' geometry and the figures' cache).
No module here imports another.

No blame, by construction: nothing here writes the reporter into the audit log (``learning.record`` is audited
with no actor, as the API does), and the themes and national pages never read ``learning_reporter``.
"""

from fastapi import APIRouter

from web.pages.learning import actions, events, national, record, themes

router = APIRouter(include_in_schema=False)
for part in (record, events, actions, themes, national):  # in this order, as they were one module
    router.routes.extend(part.router.routes)  # the routes themselves (include_router would nest the router)
