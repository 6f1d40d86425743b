"""The S3 boundary: the only package that imports botocore, aiobotocore or aiohttp.

client (making clients, lean model loading, the signer choice), calls (``S3.call``: every
request, with asyncup's retry policy, deadlines and throttling), errors (botocore's
exceptions mapped to asyncup's failure kinds), limits (requests in flight, resized by AIMD),
and the send paths: threaded (parts sent from worker threads), payloads (part bodies for
aiohttp) and ranges (a file's byte range as a body). Swapping the HTTP layer means replacing
this package and nothing else.
"""
