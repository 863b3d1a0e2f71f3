"""The frame loop: ``InferencePipeline``, its options, the hand-over to sinks, status, progress."""
