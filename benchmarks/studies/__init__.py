"""Studies: runs of the pipeline compared with each other and with peer tools."""
