"""A small consumer kit, shared by every Kafka consumer in logriver (after Sentry's arroyo).

Each consumer loop (writer, alerter, stream source, relay) is a chain of small
steps built from these parts, each testable on its own:

* :mod:`.records` and :mod:`.protocol`: the slice of aiokafka a loop uses, so a
  unit test drives the loop with :class:`.fake.FakeConsumer` instead of a broker;
* :mod:`.isolation`: per-record isolation: an error while handling one record
  makes that record a dead letter, and the loop goes on;
* :mod:`.dead_letters`: the DLQ producer (reason, source partition and offset in
  headers) and the guard that stops a consumer that would dead-letter almost all;
* :mod:`.commits`: which offsets are done, committed as ``{tp: last + 1}``;
* :mod:`.backoff`: the one retry policy for failing infrastructure.
"""
