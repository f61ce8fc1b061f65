"""Runtime plumbing shared by the services. Holds no business rules."""
