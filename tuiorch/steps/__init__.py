"""The stages of one task. Each returns an outcome and leaves run state (status, order, events) to the
orchestrator; no stage imports another or the orchestrator."""
