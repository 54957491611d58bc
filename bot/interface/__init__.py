"""The interface: what people do through Slack or the console, grouped by desk.

- ``runs/``: plan, approve, reject, start, cancel, abort, status, App Home, editing a plan.
- ``schedule/``: the notice before a planned start (Postpone), starting inside a freeze, ``/chaos freeze``,
  and the scheduler's firings.
- ``learning/``: retrospectives, action items, monthly and quarterly summaries.
- ``alarms/``: the loud revert-failure alert, its Acknowledge button and its reminders.

Each desk keeps its handlers and a ``messages.py`` of Block Kit builders. Shared by every desk: ``kit``
(Block Kit's pieces), ``render``, ``ids``, ``metadata``, ``fields`` (form values), ``surface``, the
``publisher`` and its ``outbox``, ``conversation`` (the one error path, ``guarded``), and ``routes``, the one
table of commands, buttons and forms that ``handlers`` delivers through. Layers point down only:
messages → kit/ids/metadata/render; publisher → messages; conversation → publisher; desks → conversation;
routes → desks; handlers → routes (checked by tests/core/test_interface_layers.py).
"""
