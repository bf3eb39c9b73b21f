"""HTTP plumbing shared by every service: errors, request context, health, metrics."""
