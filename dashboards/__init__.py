"""Grafana dashboards as code: `panels` holds what every dashboard is built from (on
grafana-foundation-sdk), `elasticity`, `queues` and `fanout` build the three dashboards, `build`
writes dashboards/generated (JSON and provisioning), `grafana` talks to Grafana's HTTP API,
`queries` reads the PromQL back out of dashboard JSON."""
