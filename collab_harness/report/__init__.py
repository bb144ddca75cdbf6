"""Reports from run directories: leaderboards (:mod:`.leaderboard`) and the conversation viewer (:mod:`.viewer`)."""
