"""The Slack front end.

The pure pieces, which never talk to Slack and are tested by value:

    text.py         escaping, truncation, mentions, dates and Slack's size limits
    ids.py          action_id / callback_id constants and what clicks carry
    blocks.py       messages about runs: the status board, step details
    gate_blocks.py  messages about gates: the question and its outcome, reminders
    modals.py       modals (input, reject reason, run params, edit params)
    submissions.py  what a submitted modal holds: parsers and inline validation
    commands.py     `/ops` text -> a typed command, and the usage text
    scopes.py       the Web API methods the bot calls and the OAuth scopes they need
"""
