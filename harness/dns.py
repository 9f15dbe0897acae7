"""The lab's DNS zone, from the topology's `dns` records and where the lab put each process.

Pure: `zone_file` turns the records (harness/topology.py `DnsSpec`) and the addresses of the
load balancers and servers into the zone file `python -m targets.dns` serves (schema in
targets/dns/core.py):

    via load_balancer          one A record: the load balancer's address
    via gateway                one A record: the API gateway's address
    via servers, simple        one A record listing every server (DNS round robin, no health)
    via servers, weighted      one record per server, weight 1, each with a health check
    via servers, failover      the first server PRIMARY, the second SECONDARY, both checked

Health checks probe each server's `/health` on its own address, as Route 53 probes endpoints.
The records are those of the lab at start: servers added later are not in the zone (a record
changes when its health does, which is what `dns-without-lb` shows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.topology import DnsRecordSpec, DnsSpec

Address = tuple[str, int]


def fqdn(dns: DnsSpec, record: DnsRecordSpec) -> str:
    """The record's name in the zone, without the final dot (as a URL host)."""
    return f"{record.name}.{dns.zone}"


def zone_file(
    dns: DnsSpec,
    load_balancers: Mapping[str, Address],
    servers: Mapping[str, Sequence[tuple[str, Address]]],
    gateway: Address | None = None,
) -> dict[str, Any]:
    """The zone as JSON: `servers[service]` lists (instance name, address) in instance order."""
    records: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    for spec in dns.records:
        name = fqdn(dns, spec) + "."
        if spec.via != "servers":
            entry = gateway if spec.via == "gateway" else load_balancers[spec.service or ""]
            if entry is None:
                raise ValueError(f"dns record {spec.name!r} is via gateway, and none runs")
            records.append({"name": name, "ttl": spec.ttl_s, "values": [entry[0]]})
            continue
        members = list(servers[spec.service or ""])
        if spec.policy == "simple":
            hosts = [host for _, (host, _port) in members]
            records.append({"name": name, "ttl": spec.ttl_s, "values": hosts})
            continue
        if spec.policy == "failover":
            members = members[:2]
        for i, (instance, (host, port)) in enumerate(members):
            check = f"{spec.name}-{instance}"
            checks.append(
                {
                    "id": check,
                    "host": host,
                    "port": port,
                    "path": "/health",
                    "interval_s": spec.health.interval_s,
                    "timeout_s": spec.health.timeout_s,
                    "failure_threshold": spec.health.failure_threshold,
                    "success_threshold": spec.health.success_threshold,
                }
            )
            record: dict[str, Any] = {
                "name": name,
                "ttl": spec.ttl_s,
                "set_id": instance,
                "values": [host],
                "health_check": check,
            }
            if spec.policy == "weighted":
                record["weight"] = 1
            else:
                record["failover"] = "PRIMARY" if i == 0 else "SECONDARY"
            records.append(record)
    return {"zone": f"{dns.zone}.", "records": records, "health_checks": checks}
