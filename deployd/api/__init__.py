"""HTTP resources: one blueprint module per resource, each with `init_app(app)`."""
