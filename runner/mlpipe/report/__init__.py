"""What people read: text renderings of plans and runs, and the terminal / plain-CI progress reporters."""
