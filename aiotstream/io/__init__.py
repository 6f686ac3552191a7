"""Sources and sinks: Kafka, files, the in-process simulator, and the development broker."""
