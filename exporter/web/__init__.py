"""The HTTP face: the Bottle app, its handlers, the webhook guard and the waitress server."""
