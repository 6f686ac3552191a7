"""``aiotstream console``: the operator's web console for one site (see docs/console.md).

:mod:`~aiotstream.console.state` folds the site's output topics into the latest state;
:mod:`~aiotstream.console.actions` turns operator actions into the feedback/control messages the flow already
consumes; :mod:`~aiotstream.console.feed` is the Kafka side; :mod:`~aiotstream.console.app` the pages.
"""
