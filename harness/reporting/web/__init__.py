"""`report html`: one self-contained page (data, script and style inline; no network, no
server) with a sortable, filterable leaderboard and quality-versus-cost charts."""
