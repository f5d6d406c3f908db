"""Rollouts that watch themselves: instances report the outcome of each reconcile, deployd counts
them per (channel, release), and a release whose failures cross its `halt:` policy stops admitting
new instances until a publisher resumes it.

- `records`: what is reported and stored (reports, outcome counts, halts);
- `reports`: checking a report body;
- `queue`: the worker's bounded batch of accepted reports, flushed in the background;
- `health`: a release's health and whether its policy is crossed;
- `halts`: halting and resuming releases, by policy or by hand.
"""
