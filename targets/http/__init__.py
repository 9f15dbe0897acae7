"""The shared HTTP/1.1 engine every proxy hop runs on (load balancer, later gateway and CDN edge).

server.py    HttpServer, ResponseWriter: the client-facing side (asyncio Protocol + httptools)
upstream.py  UpstreamPool, UpstreamError: bounded keep-alive pools to one upstream each
proxy.py     forward(): one request through a pool, both bodies streamed, headers rewritten
client.py    fetch(): one-shot requests for probes and control calls
body.py      BodyReader: a streamed body with flow control
messages.py  Request, Headers and the header rules shared by both sides
loop.py      install uvloop when present
"""
