"""The owner's side: password, sessions, login rate limit, and the dashboard's figures."""
