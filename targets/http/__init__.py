"""The shared HTTP/1.1 engine every proxy hop runs on (load balancer, gateway, later CDN edge).

server.py    HttpServer, ResponseWriter: the client-facing side (asyncio Protocol + httptools)
upstream.py  UpstreamPool, UpstreamError: bounded keep-alive pools to one upstream each
proxy.py     forward(): one request through a pool, both bodies streamed, headers rewritten;
             Exchange: the fast path (a bodiless request on an idle connection, callbacks)
hop.py       Hop: the proxy hop the LB and the gateway share (fast path or task, retries
             asked of the policy, the proxy's own 502/503/504 written in one place)
router.py    Router: exact, param and prefix routes (the gateway, the queue's API)
client.py    fetch(): one-shot requests for probes and control calls
body.py      BodyReader: a streamed body with flow control
messages.py  Request, Headers and the header rules shared by both sides
loop.py      install uvloop when present
"""
