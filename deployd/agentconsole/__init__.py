"""The system console: a small password-protected web page served by `deployd agent --console`.

For the customer's administrator, beside the agent: its status, the three levels of the spec
hierarchy (channel spec < user input values < custom resource) with the merged result and a diff
of what a change would do, the channel's releases (pin one), and apply now / pause / resume.

- `control`: the agent's loop with the console's hand on it (`AgentControl`);
- `password`: the scrypt-hashed password in the cache directory;
- `sessions`: sessions, CSRF tokens and the sign-in limit;
- `uservalues`: where the user values are kept and how an edit is checked and saved;
- `views`: what the pages show (merge preview, diff, license, releases);
- `app`: the Flask app; `server`: serving it from a thread of the agent.
"""
