"""vigil-diag: field diagnostics over the serial console or the hub link."""
