"""The sans-IO core: what an upload is, decided without sending anything.

config (TransferConfig), errors (the exception tree), plan (part sizes), params (which
argument goes on which request), checksums and verify (digests, and what S3's answers must
say), retry and aimd (the retry policy, the limit on requests in flight), results, records
(the resume journal's lines) and handle (a parallel upload's handle).

No await, no botocore, no aiohttp, no anyio: stdlib and native digest libraries only (a test
imports every module here and checks), so all of it is tested without a server.
"""
