"""Grafana dashboards as code: `elasticity` builds the dashboard with grafana-foundation-sdk,
`build` writes dashboards/generated (JSON and provisioning), `grafana` talks to Grafana's HTTP
API, `queries` reads the PromQL back out of dashboard JSON."""
