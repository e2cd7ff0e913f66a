"""Watching a served model: reference profiles, drift over the payload log, the HTML report.

The serving side (what is logged, off the request path) is ``conveyor.serving.payloads``; this
package reads what it wrote and judges it against the version's reference profile."""
