"""The console's pure rules: how events fold into a lead's row, who may see what, the metrics."""
