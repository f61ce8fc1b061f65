"""``assignment.response``: a salesperson accepted or declined an assignment."""
