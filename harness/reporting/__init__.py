"""Reports over result files: leaderboards and comparisons (`report`), paired statistics and
intervals (`stats`), the paper's claims (`claims`), benchmark summary tables (`aggregate`),
plots (`plots`), mteb's results layout (`mteb_results`) and the HTML page (`web`)."""
